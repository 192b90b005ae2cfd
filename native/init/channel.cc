#include "channel.h"

#include "../common/fdpass.h"
#include "../common/json.h"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <unistd.h>

namespace channel {

bool send(int fd, const std::string& record, const std::vector<int>& fds) {
  return fdpass::send(fd, record.data(), record.size(), fds, MSG_NOSIGNAL) == static_cast<ssize_t>(record.size());
}

long recv(int fd, std::string* record) {
  char buf[4096];
  ssize_t n;
  do n = ::recv(fd, buf, sizeof buf, 0);
  while (n < 0 && errno == EINTR);
  if (n > 0) record->assign(buf, static_cast<size_t>(n));
  return static_cast<long>(n);
}

bool parseConnect(const std::string& record, long long* id, int* port) {
  json::Value v;
  std::string err;
  if (!json::parse(record, &v, &err)) return false;
  const json::Value* t = v.get("t");
  const json::Value* i = v.get("id");
  const json::Value* p = v.get("port");
  if (!t || t->string != "connect" || !i || !i->isInteger || !p || !p->isInteger || p->integer < 1 || p->integer > 65535) return false;
  *id = i->integer;
  *port = static_cast<int>(p->integer);
  return true;
}

void replyConnected(int channelFd, long long id, int fd) {
  std::string reply = "{\"t\":\"connected\",\"id\":" + std::to_string(id) + ",\"errno\":" + std::to_string(fd < 0 ? -fd : 0) + "}";
  if (fd >= 0) {
    send(channelFd, reply, {fd});
    close(fd);
  } else {
    send(channelFd, reply);
  }
}

}  // namespace channel
