#include "seccomp.h"

#include <cerrno>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "errors.h"

namespace seccomp {

bool install(const plan::Seccomp& s) {
  struct sock_fprog prog;
  prog.len = static_cast<unsigned short>(s.program.size() / sizeof(struct sock_filter));
  prog.filter = reinterpret_cast<struct sock_filter*>(const_cast<char*>(s.program.data()));
  unsigned flags = s.tsync ? SECCOMP_FILTER_FLAG_TSYNC : 0;
  long rc = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
  // With TSYNC, a positive result is the id of a thread that could not be synchronised.
  if (rc != 0) return errors::fail("seccomp.install", rc > 0 ? EBUSY : errno);
  return true;
}

}  // namespace seccomp
