// clawjail-init: started by the supervisor with a clean environment, the plan on fd 3 and the
// channel (a SOCK_SEQPACKET socket) on fd 4. Three processes, one sequence:
//
//   monitor   (host namespaces; monitorMain) reads the plan, joins the cgroup, clones init into
//             new namespaces, writes its id maps, forwards the plan's signals, and exits with the
//             workload's status (or dies by its signal).
//   init      (PID 1 inside; initMain) builds the root, pivots, brings lo up, hands listening
//             service sockets to the supervisor, starts the workload, reaps orphans, forwards
//             signals, and answers "connect to port P inside" requests with a connected fd.
//   (in-place mode, no namespaces: see inplace.cc; the helper forks the workload itself.)
//   workload  (workloadMain) new session → pdeathsig → rlimits → chdir → caps dropped →
//             no_new_privs → landlock → fds closed on exec → seccomp (last) → execve.
//
// main(), at the end, is that sequence. This program decides nothing: every path, id, limit,
// device, signal and rule comes from the plan.
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
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
#include "inplace.h"
#include "landlock.h"
#include "mounts.h"
#include "net.h"
#include "plan.h"
#include "process.h"
#include "seccomp.h"
#include "userns.h"

namespace {

constexpr int kPlanFd = 3;
constexpr int kChannelFd = 4;
constexpr int kSetupFailed = 125;

// How the workload ended, passed from init to the monitor.
struct Status {
  int32_t signaled;
  int32_t value;
};

[[noreturn]] void failAndExit() {
  channel::send(kChannelFd, errors::toJson(errors::last()));
  _exit(kSetupFailed);
}

bool readAll(int fd, std::string* out) {
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > (64u << 20)) {
      errno = EFBIG;
      return false;
    }
  }
}

// Until the plan says which signals are forwarded, every signal waits (blocked, not lost).
void holdSignals() {
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, nullptr);
}

// From here on exactly the plan's forwarded signals (and SIGCHLD) are held for sigwaitinfo or a
// signalfd; anything else pending or later takes its default action, as for any process.
void holdOnly(const std::vector<int>& forwarded) {
  sigset_t set = process::waitedSignals(forwarded);
  sigprocmask(SIG_SETMASK, &set, nullptr);
}

// ---- workload --------------------------------------------------------------------------------

// Interactive use: the workload becomes the terminal's foreground process group, so keyboard
// signals reach it alone (not the supervisor, which would forward them a second time).

[[noreturn]] void workloadMain(const plan::Plan& plan, int execReport) {
  const plan::Workload& w = plan.workload;
  process::resetSignals();
  bool ok = (w.newSession ? setsid() >= 0 || errors::fail("process.setsid", errno) : process::takeTerminal()) &&
            (prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 || errors::fail("process.pdeathsig", errno)) &&
            process::applyRlimits(w.rlimits) &&
            (chdir(w.cwd.c_str()) == 0 || errors::fail("process.chdir", errno, w.cwd)) &&
            process::dropCapabilities() &&
            process::setNoNewPrivs() &&
            (!w.landlock.enabled || landlock::apply(w.landlock)) &&
            process::closeFdsOnExec() &&
            (!w.seccomp.enabled || seccomp::install(w.seccomp));
  process::execOrReport(w, ok, execReport, kSetupFailed);
}

// ---- init ------------------------------------------------------------------------------------

void answerConnect(const std::string& record) {
  long long id;
  int port;
  if (channel::parseConnect(record, &id, &port)) channel::replyConnected(kChannelFd, id, net::connectInside(static_cast<uint16_t>(port)));
}

[[noreturn]] void initMain(const plan::Plan& plan, int syncRead, int statusWrite) {
  // Die with the monitor. The sync read below also catches a monitor that died before this line.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  char go;
  if (read(syncRead, &go, 1) != 1) _exit(kSetupFailed);
  close(syncRead);

  mountns::Sources sources;
  bool ok = mountns::makePrivate() &&
            mountns::openSources(plan, &sources) &&
            userns::becomeSandboxUser(plan.identity) &&
            // After the uid change (which resets the flag to fs.suid_dumpable): the workload shares
            // init's uid, and must not read its memory, fds or maps, nor /proc/1/exe (the helper's
            // host path). The workload's own execve makes it dumpable again.
            (prctl(PR_SET_DUMPABLE, 0) == 0 || errors::fail("init.dumpable", errno)) &&
            (!(plan.namespaces & CLONE_NEWUTS) || sethostname(plan.hostname.data(), plan.hostname.size()) == 0 ||
             errors::fail("uts.sethostname", errno, plan.hostname)) &&
            mountns::buildRootAndPivot(plan, sources) &&
            (!(plan.namespaces & CLONE_NEWNET) || net::loopbackUp());
  std::vector<int> serviceFds;
  ok = ok && net::listenServices(plan.services, &serviceFds) && mountns::sealRoot();
  if (!ok) failAndExit();
  if (!serviceFds.empty()) {
    std::string names = "[";
    for (size_t i = 0; i < plan.services.size(); i++) names += (i ? "," : "") + json::quote(plan.services[i].name);
    if (!channel::send(kChannelFd, "{\"t\":\"services\",\"names\":" + names + "]}", serviceFds))
      errors::fail("channel.send_services", errno), failAndExit();
    for (int fd : serviceFds) close(fd);
  }

  int execPipe[2];
  if (pipe2(execPipe, O_CLOEXEC) != 0) errors::fail("init.pipe", errno), failAndExit();
  pid_t workload = fork();
  if (workload < 0) errors::fail("init.fork", errno), failAndExit();
  if (workload == 0) {
    close(execPipe[0]);
    close(statusWrite);
    workloadMain(plan, execPipe[1]);
  }
  close(execPipe[1]);
  std::string report;
  readAll(execPipe[0], &report);
  close(execPipe[0]);
  // A report means the workload never reached execve; it exits 125/126/127 on its own.
  channel::send(kChannelFd, report.empty() ? "{\"t\":\"ready\",\"pid\":" + std::to_string(workload) + "}" : report);

  sigset_t set = process::waitedSignals(plan.forwardSignals);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  Status status{0, kSetupFailed};
  bool channelOpen = true;
  while (true) {
    struct pollfd fds[2] = {{sfd, POLLIN, 0}, {kChannelFd, POLLIN, 0}};
    if (poll(fds, channelOpen ? 2 : 1, -1) < 0) continue;
    if (fds[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) == sizeof si && si.ssi_signo != SIGCHLD) kill(workload, static_cast<int>(si.ssi_signo));
      // Reap everything: orphans are reparented to us.
      bool done = false;
      int ws;
      pid_t p;
      while ((p = waitpid(-1, &ws, WNOHANG)) > 0) {
        if (p != workload) continue;
        status = WIFSIGNALED(ws) ? Status{1, WTERMSIG(ws)} : Status{0, WEXITSTATUS(ws)};
        done = true;
      }
      if (done) break;
    }
    if (channelOpen && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      std::string record;
      long n = channel::recv(kChannelFd, &record);
      if (n > 0) {
        answerConnect(record);
      } else if (n == 0 || (n < 0 && errno != EAGAIN)) {
        // The supervisor is gone: nothing may outlive it.
        kill(workload, SIGKILL);
        channelOpen = false;
      }
    }
  }
  ssize_t n = write(statusWrite, &status, sizeof status);
  (void)n;
  // Exiting as PID 1 kills whatever the workload left behind in the namespace.
  _exit(status.signaled ? 128 + status.value : status.value);
}

// ---- monitor ---------------------------------------------------------------------------------

// The helper's start: fds 3 and 4 must be there (and stay out of every exec).
bool takeStartFds() {
  for (int fd : {kPlanFd, kChannelFd}) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) {
      static const char msg[] = "clawjail-init: started without the plan (fd 3) and channel (fd 4); it is run by clawjail, not by hand\n";
      ssize_t n = write(2, msg, sizeof msg - 1);
      (void)n;
      return false;
    }
    fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
  return true;
}

bool readPlan(plan::Plan* plan) {
  std::string text, decodeError;
  if (!readAll(kPlanFd, &text)) return errors::fail("plan.read", errno);
  close(kPlanFd);
  if (!plan::decode(text, plan, &decodeError)) return errors::fail("plan.decode", EINVAL, "", decodeError);
  return true;
}

// Dies with the supervisor (and checks it is still the parent, which the death signal alone
// would miss), leaves the root caller's groups, and joins the sandbox's cgroup: in-place too.
bool attachToSupervisor(const plan::Plan& plan) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != plan.supervisorPid) return errors::fail("monitor.parent", ESRCH);
  if (plan.identity.dropSupplementaryGroups && setgroups(0, nullptr) != 0) return errors::fail("monitor.setgroups", errno);
  if (!plan.cgroupProcs.empty()) {
    int fd = open(plan.cgroupProcs.c_str(), O_WRONLY | O_CLOEXEC);
    bool joined = fd >= 0 && write(fd, "0", 1) == 1;
    int err = errno;
    if (fd >= 0) close(fd);
    if (!joined) return errors::fail("cgroup.join", err, plan.cgroupProcs);
  }
  return true;
}

// The monitor's ends of its two pipes to init.
struct Init {
  pid_t pid;
  int go;      // one byte once init's id maps are written
  int status;  // the workload's Status, written by init before it exits
};

// init, in the plan's new namespaces. A raw clone without a new stack behaves like fork() but
// takes the namespace flags. Only the monitor returns.
Init cloneInit(const plan::Plan& plan) {
  int sync[2], statusPipe[2];
  if (pipe2(sync, O_CLOEXEC) != 0 || pipe2(statusPipe, O_CLOEXEC) != 0) errors::fail("monitor.pipe", errno), failAndExit();
  long child = syscall(SYS_clone, static_cast<unsigned long>(plan.namespaces) | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (child < 0) errors::fail("namespaces.clone", errno), failAndExit();
  if (child == 0) {
    close(sync[1]);
    close(statusPipe[0]);
    initMain(plan, sync[0], statusPipe[1]);
  }
  close(sync[0]);
  close(statusPipe[1]);
  return Init{static_cast<pid_t>(child), sync[1], statusPipe[0]};
}

[[noreturn]] void mirror(const Status& s) {
  if (!s.signaled) _exit(s.value);
  // Die by the same signal so the supervisor sees what the workload saw; no core file of ours.
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  signal(s.value, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, s.value);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);
  raise(s.value);
  _exit(128 + s.value);
}

// In the host's namespaces: writes init's id maps and lets it go, then only waits. It forwards
// the plan's signals to init (which passes them to the workload) and exits as the workload did,
// or as init did if init ended first.
[[noreturn]] void monitorMain(const plan::Plan& plan, const Init& init) {
  if (!userns::writeMapsFromParent(init.pid, plan.identity)) kill(init.pid, SIGKILL), failAndExit();
  if (write(init.go, "g", 1) != 1) errors::fail("monitor.sync", errno), kill(init.pid, SIGKILL), failAndExit();
  close(init.go);
  // The channel belongs to init from here on.
  close(kChannelFd);

  sigset_t set = process::waitedSignals(plan.forwardSignals);
  while (true) {
    siginfo_t si;
    int sig = sigwaitinfo(&set, &si);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      kill(init.pid, sig);
      continue;
    }
    int ws;
    if (waitpid(init.pid, &ws, WNOHANG) != init.pid) continue;
    Status status;
    if (read(init.status, &status, sizeof status) == sizeof status) mirror(status);
    // init died before the workload finished (setup failure, or killed from outside).
    if (WIFEXITED(ws)) _exit(WEXITSTATUS(ws));
    mirror(Status{1, WTERMSIG(ws)});
  }
}

}  // namespace

int main() {
  if (!takeStartFds()) return kSetupFailed;
  holdSignals();
  plan::Plan plan;
  if (!readPlan(&plan)) failAndExit();
  holdOnly(plan.forwardSignals);
  if (!attachToSupervisor(plan)) failAndExit();
  // A container that forbids namespaces: the workload is confined where the helper stands.
  if (plan.inPlace.enabled) inplace::run(plan, kChannelFd);
  Init init = cloneInit(plan);  // init → workload, in the child
  monitorMain(plan, init);
}
