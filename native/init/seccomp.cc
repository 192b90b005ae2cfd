#include "seccomp.h"

#include <cerrno>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "errors.h"

namespace seccomp {

bool install(const plan::Seccomp& s) {
  struct sock_fprog prog;
  prog.len = static_cast<unsigned short>(s.program.size() / sizeof(struct sock_filter));
  prog.filter = reinterpret_cast<struct sock_filter*>(const_cast<char*>(s.program.data()));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errors::fail("process.no_new_privs", errno);
  // TSYNC: a workload is single-threaded here, but the flag makes the filter apply to every
  // thread should that ever change, instead of silently covering one.
  long rc = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
  if (rc != 0) return errors::fail("seccomp.install", rc > 0 ? EBUSY : errno);
  return true;
}

}  // namespace seccomp
