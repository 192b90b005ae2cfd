#include "channel.h"

#include "../common/fdpass.h"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>

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

}  // namespace channel
