#include "net.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "errors.h"

namespace net {

bool loopbackUp() {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errors::fail("net.lo_up", errno, "lo");
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  if (ok) {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    ok = ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  }
  int err = errno;
  close(fd);
  return ok || errors::fail("net.lo_up", err, "lo");
}

bool listenServices(const std::vector<plan::Service>& services, std::vector<int>* fds) {
  for (const auto& s : services) {
    int fd;
    if (s.unixSocket) {
      fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) return errors::fail("net.service_socket", errno, s.path);
      struct sockaddr_un addr;
      std::memset(&addr, 0, sizeof addr);
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, s.path.c_str(), sizeof addr.sun_path - 1);
      if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        int err = errno;
        close(fd);
        return errors::fail("net.service_bind", err, s.path);
      }
      // The workload runs as the same uid; 0666 also serves a workload that changes uid.
      chmod(s.path.c_str(), 0666);
    } else {
      fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) return errors::fail("net.service_socket", errno, s.name);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      struct sockaddr_in addr;
      std::memset(&addr, 0, sizeof addr);
      addr.sin_family = AF_INET;
      addr.sin_port = htons(s.port);
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        int err = errno;
        close(fd);
        return errors::fail("net.service_bind", err, "127.0.0.1:" + std::to_string(s.port));
      }
    }
    if (listen(fd, 511) != 0) {
      int err = errno;
      close(fd);
      return errors::fail("net.service_listen", err, s.name);
    }
    fds->push_back(fd);
  }
  return true;
}

int connectInside(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct sockaddr_in addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int r;
  do r = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  while (r != 0 && errno == EINTR);
  if (r != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

}  // namespace net
