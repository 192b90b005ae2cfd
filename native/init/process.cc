#include "process.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "errors.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif

namespace process {

bool dropCapabilities() {
  for (int cap = 0; cap <= 63; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      return errors::fail("caps.bounding", errno, std::to_string(cap));
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return errors::fail("caps.ambient", errno);
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  std::memset(data, 0, sizeof data);
  if (syscall(SYS_capset, &hdr, data) != 0) return errors::fail("caps.capset", errno);
  return true;
}

bool setNoNewPrivs() {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errors::fail("process.no_new_privs", errno);
  return true;
}

bool applyRlimits(const std::vector<plan::Rlimit>& limits) {
  for (const auto& l : limits) {
    struct rlimit r = {static_cast<rlim_t>(l.soft), static_cast<rlim_t>(l.hard)};
    if (setrlimit(l.resource, &r) != 0) return errors::fail("limits.setrlimit", errno, std::to_string(l.resource));
  }
  return true;
}

bool closeFdsOnExec() {
  if (syscall(__NR_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    if (errno != ENOSYS && errno != EINVAL) return errors::fail("process.close_fds", errno);
    // Kernels before 5.11: walk the open descriptors.
    long max = sysconf(_SC_OPEN_MAX);
    for (int fd = 3; fd < max && fd < (1 << 20); fd++) {
      int flags = fcntl(fd, F_GETFD);
      if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
  }
  return true;
}

sigset_t waitedSignals(const std::vector<int>& forwarded) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : forwarded) sigaddset(&set, s);
  sigaddset(&set, SIGCHLD);
  return set;
}

void resetSignals() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &sa, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

void execWorkload(const plan::Workload& w) {
  std::vector<char*> argv, envp;
  for (const auto& a : w.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // Only the PATH the plan gives (the planner always sets one); none means no search at all.
  std::string path;
  bool hasPath = false;
  for (const auto& e : w.env) {
    envp.push_back(const_cast<char*>(e.c_str()));
    if (e.compare(0, 5, "PATH=") == 0) {
      path = e.substr(5);
      hasPath = true;
    }
  }
  envp.push_back(nullptr);
  const std::string& cmd = w.argv[0];
  if (cmd.find('/') != std::string::npos) {
    execve(cmd.c_str(), argv.data(), envp.data());
    return;
  }
  int best = ENOENT;
  size_t i = 0;
  while (hasPath && i <= path.size()) {
    size_t j = path.find(':', i);
    if (j == std::string::npos) j = path.size();
    std::string dir = path.substr(i, j - i);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + cmd;
    execve(candidate.c_str(), argv.data(), envp.data());
    if (errno == EACCES || errno == ENOEXEC || errno == EPERM) best = errno;
    else if (errno != ENOENT && errno != ENOTDIR && best == ENOENT) best = errno;
    i = j + 1;
  }
  errno = best;
}

bool takeTerminal() {
  if (setpgid(0, 0) != 0) return errors::fail("process.setpgid", errno);
  if (!isatty(0)) return true;
  sigset_t ttou, old;
  sigemptyset(&ttou);
  sigaddset(&ttou, SIGTTOU);
  sigprocmask(SIG_BLOCK, &ttou, &old);
  int rc = tcsetpgrp(0, getpgrp());
  int err = errno;
  sigprocmask(SIG_SETMASK, &old, nullptr);
  // ENOTTY: stdin is a terminal that is not ours (no controlling tty); keep going without it.
  return rc == 0 || err == ENOTTY || errors::fail("process.tcsetpgrp", err);
}

[[noreturn]] void execOrReport(const plan::Workload& w, bool setupOk, int execReport, int setupFailedCode) {
  int code = setupFailedCode;
  if (setupOk) {
    execWorkload(w);
    errors::fail("exec", errno, w.argv[0]);
    code = errno == ENOENT ? 127 : 126;
  }
  std::string record = errors::toJson(errors::last());
  ssize_t n = write(execReport, record.data(), record.size());
  (void)n;
  _exit(code);
}

}  // namespace process
