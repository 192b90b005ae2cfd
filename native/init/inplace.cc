// The in-place sequence. The helper stays where the container put it (same pid, mount and
// network namespaces) and becomes the workload's child subreaper, so when clawjail is a
// container's PID 1 every orphan the workload leaves is reaped here rather than becoming a zombie.
//
//   helper    subreaper → fork → report ready → forward signals, answer connects, reap →
//             kill what the workload left behind → exit with the workload's status.
//   workload  new session → rlimits → bounding set dropped → identity → pdeathsig → chdir →
//             capabilities cleared → no_new_privs → landlock → fds closed on exec → seccomp
//             (last) → execve.
#include "inplace.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "../common/json.h"
#include "channel.h"
#include "errors.h"
#include "landlock.h"
#include "net.h"
#include "process.h"
#include "seccomp.h"

namespace inplace {
namespace {

constexpr int kSetupFailed = 125;


// Without CAP_SETPCAP (an unprivileged caller) the bounding set cannot shrink; the plan asks for
// it only from root. An empty permitted set plus no_new_privs already keeps exec from adding any.
bool dropBoundingSet() {
  for (int cap = 0; cap <= 63; cap++)
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return errors::fail("caps.bounding", errno, std::to_string(cap));
  return true;
}

bool clearCapabilities() {
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return errors::fail("caps.ambient", errno);
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  std::memset(data, 0, sizeof data);
  if (syscall(SYS_capset, &hdr, data) != 0) return errors::fail("caps.capset", errno);
  return true;
}

bool changeIdentity(const plan::Identity& id) {
  // Supplementary groups were cleared by the helper (monitor.setgroups) before it forked.
  if (setresgid(id.gid, id.gid, id.gid) != 0) return errors::fail("identity.setresgid", errno, std::to_string(id.gid));
  if (setresuid(id.uid, id.uid, id.uid) != 0) return errors::fail("identity.setresuid", errno, std::to_string(id.uid));
  return true;
}

// The parent-death signal is cleared by a uid change, so it is set after it; a helper that died
// in between is caught by the parent check.
bool dieWithHelper(pid_t helper) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return errors::fail("process.pdeathsig", errno);
  if (getppid() != helper) return errors::fail("process.pdeathsig", ESRCH);
  return true;
}

[[noreturn]] void workloadMain(const plan::Plan& plan, pid_t helper, int execReport) {
  const plan::Workload& w = plan.workload;
  process::resetSignals();
  bool ok = (w.newSession ? setsid() >= 0 || errors::fail("process.setsid", errno) : process::takeTerminal()) &&
            process::applyRlimits(w.rlimits) &&
            (!plan.inPlace.dropBoundingSet || dropBoundingSet()) &&
            (!plan.inPlace.changeIdentity || changeIdentity(plan.identity)) &&
            dieWithHelper(helper) &&
            (chdir(w.cwd.c_str()) == 0 || errors::fail("process.chdir", errno, w.cwd)) &&
            clearCapabilities() &&
            process::setNoNewPrivs() &&
            (!w.landlock.enabled || landlock::apply(w.landlock)) &&
            process::closeFdsOnExec() &&
            (!w.seccomp.enabled || seccomp::install(w.seccomp));
  process::execOrReport(w, ok, execReport, kSetupFailed);
}

void answerConnect(int channelFd, const std::string& record) {
  long long id;
  int port;
  // No namespace here: the workload's published port is on the container's own loopback.
  if (channel::parseConnect(record, &id, &port)) channel::replyConnected(channelFd, id, net::connectInside(static_cast<uint16_t>(port)));
}

// Our direct children (orphans of the workload's tree are reparented to us): the kernel's list
// when it keeps one (CONFIG_PROC_CHILDREN), else every /proc/PID/stat whose parent is us.
std::vector<pid_t> children() {
  std::vector<pid_t> out;
  std::string text;
  char buf[4096];
  ssize_t n;
  std::string path = "/proc/self/task/" + std::to_string(getpid()) + "/children";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    while ((n = read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    close(fd);
    size_t i = 0;
    while (i < text.size()) {
      size_t j = text.find(' ', i);
      if (j == std::string::npos) j = text.size();
      if (j > i) out.push_back(static_cast<pid_t>(std::stol(text.substr(i, j - i))));
      i = j + 1;
    }
    return out;
  }
  DIR* proc = opendir("/proc");
  if (!proc) return out;
  const pid_t self = getpid();
  while (struct dirent* e = readdir(proc)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    int sfd = open(("/proc/" + std::string(e->d_name) + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
    if (sfd < 0) continue;
    n = read(sfd, buf, sizeof buf - 1);
    close(sfd);
    if (n <= 0) continue;
    buf[n] = '\0';
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so parse after the last ')'.
    const char* commEnd = strrchr(buf, ')');
    int ppid = 0;
    if (commEnd && sscanf(commEnd + 1, " %*c %d", &ppid) == 1 && ppid == self) out.push_back(static_cast<pid_t>(atoi(e->d_name)));
  }
  closedir(proc);
  return out;
}

// Nothing the workload started may outlive it (namespaces mode gets this from the pid namespace):
// its process group, then every descendant as it is reparented to us, until none is left.
void killLeftovers(pid_t workload) {
  kill(-workload, SIGKILL);
  while (true) {
    for (pid_t p : children()) kill(p, SIGKILL);
    int ws;
    pid_t p = waitpid(-1, &ws, 0);
    if (p < 0 && errno == ECHILD) return;
  }
}

[[noreturn]] void exitLike(int signaled, int value) {
  if (!signaled) _exit(value);
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  signal(value, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, value);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);
  raise(value);
  _exit(128 + value);
}

[[noreturn]] void failAndExit(int channelFd) {
  channel::send(channelFd, errors::toJson(errors::last()));
  _exit(kSetupFailed);
}

}  // namespace

void run(const plan::Plan& plan, int channelFd) {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) errors::fail("inplace.subreaper", errno), failAndExit(channelFd);
  // Without a pid namespace nothing kills the workload's own children for us: when the
  // supervisor dies (the channel hangs up) this process must live on to kill and reap them, so it
  // does not die with its parent.
  prctl(PR_SET_PDEATHSIG, 0);
  if (getppid() != static_cast<pid_t>(plan.supervisorPid)) errors::fail("monitor.parent", ESRCH), failAndExit(channelFd);
  int execPipe[2];
  if (pipe2(execPipe, O_CLOEXEC) != 0) errors::fail("inplace.pipe", errno), failAndExit(channelFd);
  pid_t helper = getpid();
  pid_t workload = fork();
  if (workload < 0) errors::fail("inplace.fork", errno), failAndExit(channelFd);
  if (workload == 0) {
    close(execPipe[0]);
    workloadMain(plan, helper, execPipe[1]);
  }
  close(execPipe[1]);
  std::string report;
  char buf[4096];
  ssize_t n;
  while ((n = read(execPipe[0], buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    report.append(buf, static_cast<size_t>(n));
  }
  close(execPipe[0]);
  channel::send(channelFd, report.empty() ? "{\"t\":\"ready\",\"pid\":" + std::to_string(workload) + "}" : report);

  // Blocked since the plan was read (main.cc); the workload reset its own mask before exec.
  sigset_t set = process::waitedSignals(plan.forwardSignals);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  int signaled = 0, value = kSetupFailed;
  bool channelOpen = true, done = false;
  while (!done) {
    struct pollfd fds[2] = {{sfd, POLLIN, 0}, {channelFd, POLLIN, 0}};
    if (poll(fds, channelOpen ? 2 : 1, -1) < 0) continue;
    if (fds[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) == sizeof si && si.ssi_signo != SIGCHLD) kill(workload, static_cast<int>(si.ssi_signo));
      int ws;
      pid_t p;
      while ((p = waitpid(-1, &ws, WNOHANG)) > 0) {
        if (p != workload) continue;
        signaled = WIFSIGNALED(ws) ? 1 : 0;
        value = signaled ? WTERMSIG(ws) : WEXITSTATUS(ws);
        done = true;
      }
    }
    if (!done && channelOpen && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      std::string record;
      long got = channel::recv(channelFd, &record);
      if (got > 0) {
        answerConnect(channelFd, record);
      } else if (got == 0 || (got < 0 && errno != EAGAIN)) {
        // The supervisor is gone: nothing may outlive it.
        kill(-workload, SIGKILL);
        kill(workload, SIGKILL);
        channelOpen = false;
      }
    }
  }
  killLeftovers(workload);
  exitLike(signaled, value);
}

}  // namespace inplace
