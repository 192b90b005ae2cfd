// The addon is deliberately small: facts about the host that only a system call can tell, a
// SOCK_SEQPACKET socketpair for the channel to clawjail-init, and message + fd passing on it
// driven by libuv so the event loop never blocks.
#include <napi.h>

#include "../common/fdpass.h"
#include "relay.h"
#include <spawn.h>
#include <sys/stat.h>
#include <uv.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#endif

namespace {

Napi::Error errnoError(Napi::Env env, int err, const char* syscallName) {
  Napi::Error e = Napi::Error::New(env, std::string(syscallName) + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscallName));
  return e;
}

// Tries to create a user namespace in a throwaway child. clone() with CLONE_NEWUSER is allowed
// from a multi-threaded process (unshare() is not); the child only calls _exit.
int tryUserNamespace() {
  long pid = syscall(SYS_clone, static_cast<unsigned long>(CLONE_NEWUSER) | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) return errno;
  if (pid == 0) _exit(0);
  int status;
  while (waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {}
  return 0;
}

Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  struct utsname u;
  if (uname(&u) == 0) {
    out.Set("kernelRelease", u.release);
    out.Set("machine", u.machine);
  }
  long abi = syscall(__NR_landlock_create_ruleset, nullptr, 0, 1 /* LANDLOCK_CREATE_RULESET_VERSION */);
  out.Set("landlockAbi", Napi::Number::New(env, abi < 0 ? 0 : abi));
  out.Set("landlockErrno", Napi::Number::New(env, abi < 0 ? errno : 0));
  int seccompMode = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
  out.Set("seccompMode", Napi::Number::New(env, seccompMode));
  out.Set("seccompErrno", Napi::Number::New(env, seccompMode < 0 ? errno : 0));
  bool checkUserns = info.Length() < 1 || !info[0].IsObject() ||
                     !info[0].As<Napi::Object>().Get("skipUserns").ToBoolean().Value();
  if (checkUserns) out.Set("usernsErrno", Napi::Number::New(env, tryUserNamespace()));
  out.Set("uid", Napi::Number::New(env, getuid()));
  out.Set("gid", Napi::Number::New(env, getgid()));
  out.Set("euid", Napi::Number::New(env, geteuid()));
  out.Set("pid", Napi::Number::New(env, getpid()));
  // Node has no getrlimit; the planner clamps requested limits to what the host allows.
  static const std::pair<const char*, int> limits[] = {
      {"core", RLIMIT_CORE},   {"nofile", RLIMIT_NOFILE}, {"nproc", RLIMIT_NPROC},       {"fsize", RLIMIT_FSIZE},
      {"as", RLIMIT_AS},       {"cpu", RLIMIT_CPU},       {"stack", RLIMIT_STACK},       {"memlock", RLIMIT_MEMLOCK},
      {"sigpending", RLIMIT_SIGPENDING}, {"msgqueue", RLIMIT_MSGQUEUE}};
  Napi::Object rl = Napi::Object::New(env);
  for (const auto& l : limits) {
    struct rlimit r;
    if (getrlimit(l.second, &r) != 0) continue;
    Napi::Object o = Napi::Object::New(env);
    auto val = [&](rlim_t v) -> Napi::Value {
      if (v == RLIM_INFINITY) return Napi::String::New(env, "unlimited");
      return Napi::Number::New(env, static_cast<double>(v));
    };
    o.Set("soft", val(r.rlim_cur));
    o.Set("hard", val(r.rlim_max));
    rl.Set(l.first, o);
  }
  out.Set("rlimits", rl);
  return out;
}

Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) throw errnoError(info.Env(), errno, "socketpair");
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, sv[0]);
  out.Set(1u, sv[1]);
  return out;
}

// The plan goes into a pipe before the helper starts, so the helper reads it at once instead of
// waiting for the event loop to write it. Returns the read end (close-on-exec).
Napi::Value PlanPipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<char> data = info[0].As<Napi::Buffer<char>>();
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) throw errnoError(env, errno, "pipe2");
  size_t need = data.Length() + 1;
  int size = fcntl(p[1], F_GETPIPE_SZ);
  if (size >= 0 && static_cast<size_t>(size) < need) {
    size_t want = 4096;
    while (want < need) want <<= 1;
    if (fcntl(p[1], F_SETPIPE_SZ, static_cast<int>(want)) < 0) {
      int err = errno;
      close(p[0]);
      close(p[1]);
      throw errnoError(env, err, "fcntl(F_SETPIPE_SZ)");
    }
  }
  size_t off = 0;
  while (off < data.Length()) {
    ssize_t n = write(p[1], data.Data() + off, data.Length() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(p[0]);
      close(p[1]);
      throw errnoError(env, err, "write");
    }
    off += static_cast<size_t>(n);
  }
  close(p[1]);
  return Napi::Number::New(env, p[0]);
}

Napi::Value Pipe(const Napi::CallbackInfo& info) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) throw errnoError(info.Env(), errno, "pipe2");
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, p[0]);
  out.Set(1u, p[1]);
  return out;
}

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

// Starts the helper with posix_spawn (a vfork-style clone: no copy of the supervisor's page
// tables, whatever its size), a given fd layout, an empty environment, default signal
// dispositions and an empty mask. Returns {pid, pidfd}; pidfd is -1 on kernels without it.
Napi::Value SpawnHelper(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  std::string path = o.Get("path").As<Napi::String>().Utf8Value();
  // argv[0] apart from the path: the sandbox's PID 1 shows it in /proc/1/cmdline, where the host
  // path of the install has no business.
  Napi::Value argv0Value = o.Get("argv0");
  std::string argv0 = argv0Value.IsString() ? argv0Value.As<Napi::String>().Utf8Value() : path;
  Napi::Array fdsArr = o.Get("fds").As<Napi::Array>();
  bool setsid = o.Get("setsid").ToBoolean().Value();
  std::vector<int> fds;
  for (uint32_t i = 0; i < fdsArr.Length(); i++) fds.push_back(fdsArr.Get(i).As<Napi::Number>().Int32Value());

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  // Move every source fd above the target range first, so dup2 into 0..n-1 never clobbers a
  // source that is still needed.
  int base = static_cast<int>(fds.size());
  for (int fd : fds) base = std::max(base, fd + 1);
  for (size_t i = 0; i < fds.size(); i++) posix_spawn_file_actions_adddup2(&fa, fds[i], base + static_cast<int>(i));
  for (size_t i = 0; i < fds.size(); i++) posix_spawn_file_actions_adddup2(&fa, base + static_cast<int>(i), static_cast<int>(i));
  for (size_t i = 0; i < fds.size(); i++) posix_spawn_file_actions_addclose(&fa, base + static_cast<int>(i));
  posix_spawn_file_actions_addchdir_np(&fa, "/");
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (setsid) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&attr, flags);
  char* argv[] = {const_cast<char*>(argv0.c_str()), nullptr};
  char* envp[] = {nullptr};
  pid_t pid;
  int rc = posix_spawn(&pid, path.c_str(), &fa, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw errnoError(env, rc, "posix_spawn");
  int pidfd = static_cast<int>(syscall(__NR_pidfd_open, pid, 0));
  if (pidfd >= 0) fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", pid);
  out.Set("pidfd", pidfd);
  return out;
}

// Watches a child started by SpawnHelper and reaps it: onExit(code, signal) once. With a pidfd
// the wait is event-driven; without one (kernels < 5.3) a 10 ms timer polls waitpid(WNOHANG).
class ExitWatch {
 public:
  static void Start(Napi::Env env, pid_t pid, int pidfd, Napi::Function cb) {
    auto* w = new ExitWatch();
    w->env_ = env;
    w->pid_ = pid;
    w->pidfd_ = pidfd;
    w->cb_ = Napi::Persistent(cb);
    uv_loop_t* loop;
    napi_get_uv_event_loop(env, &loop);
    if (pidfd >= 0) {
      uv_poll_init(loop, &w->poll_, pidfd);
      w->poll_.data = w;
      uv_poll_start(&w->poll_, UV_READABLE, [](uv_poll_t* h, int, int) { static_cast<ExitWatch*>(h->data)->Check(); });
    } else {
      uv_timer_init(loop, &w->timer_);
      w->timer_.data = w;
      uv_timer_start(&w->timer_, [](uv_timer_t* h) { static_cast<ExitWatch*>(h->data)->Check(); }, 10, 10);
    }
  }

 private:
  void Check() {
    int status;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR)) return;
    Napi::HandleScope scope(env_);
    Napi::Value code = env_.Null(), sig = env_.Null();
    if (r == pid_) {
      if (WIFEXITED(status)) code = Napi::Number::New(env_, WEXITSTATUS(status));
      else if (WIFSIGNALED(status)) sig = Napi::Number::New(env_, WTERMSIG(status));
    } else {
      code = Napi::Number::New(env_, -1);
    }
    Napi::FunctionReference cb = std::move(cb_);
    if (pidfd_ >= 0) {
      uv_poll_stop(&poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(&poll_), [](uv_handle_t* h) {
        auto* self = static_cast<ExitWatch*>(h->data);
        close(self->pidfd_);
        delete self;
      });
    } else {
      uv_timer_stop(&timer_);
      uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) { delete static_cast<ExitWatch*>(h->data); });
    }
    cb.MakeCallback(env_.Global(), {code, sig});
  }

  Napi::Env env_ = nullptr;
  pid_t pid_ = 0;
  int pidfd_ = -1;
  uv_poll_t poll_;
  uv_timer_t timer_;
  Napi::FunctionReference cb_;
};

Napi::Value WatchExit(const Napi::CallbackInfo& info) {
  ExitWatch::Start(info.Env(), info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(), info[2].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd >= 0) close(fd);
  return info.Env().Undefined();
}

// A channel end watched by libuv. onMessage(buffer, fds) per packet; onMessage(null, []) at EOF.
class Channel : public Napi::ObjectWrap<Channel> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Channel", {InstanceMethod("send", &Channel::Send), InstanceMethod("close", &Channel::Close)});
  }

  explicit Channel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Channel>(info) {
    Napi::Env env = info.Env();
    fd_ = info[0].As<Napi::Number>().Int32Value();
    onMessage_ = Napi::Persistent(info[1].As<Napi::Function>());
    int flags = fcntl(fd_, F_GETFL);
    if (flags < 0 || fcntl(fd_, F_SETFL, flags | O_NONBLOCK) != 0) throw errnoError(env, errno, "fcntl");
    uv_loop_t* loop;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    poll_->data = this;
    if (uv_poll_init(loop, poll_, fd_) != 0) {
      delete poll_;
      poll_ = nullptr;
      throw Napi::Error::New(env, "uv_poll_init failed");
    }
    uv_poll_start(poll_, UV_READABLE | UV_DISCONNECT, &Channel::OnPoll);
    env_ = env;
    Ref();  // alive while polling
  }

 private:
  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<Channel*>(handle->data);
    self->Drain();
  }

  void Drain() {
    Napi::HandleScope scope(env_);
    while (fd_ >= 0) {
      char buf[65536];
      char control[CMSG_SPACE(sizeof(int) * 16)];
      struct iovec iov = {buf, sizeof buf};
      struct msghdr msg;
      std::memset(&msg, 0, sizeof msg);
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      ssize_t n = recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      Napi::Array fds = Napi::Array::New(env_);
      if (n > 0) {
        uint32_t k = 0;
        for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
          if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
          size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
          int* data = reinterpret_cast<int*>(CMSG_DATA(c));
          for (size_t i = 0; i < count; i++) fds.Set(k++, data[i]);
        }
        Napi::Buffer<char> payload = Napi::Buffer<char>::Copy(env_, buf, static_cast<size_t>(n));
        onMessage_.MakeCallback(env_.Global(), {payload, fds});
        continue;
      }
      // EOF or error: the other end is gone.
      StopPolling();
      onMessage_.MakeCallback(env_.Global(), {env_.Null(), fds});
      return;
    }
  }

  void StopPolling() {
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
      if (fd_ >= 0) close(fd_);
      fd_ = -1;
      Unref();
    }
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) throw Napi::Error::New(env, "channel is closed");
    Napi::Buffer<char> data = info[0].As<Napi::Buffer<char>>();
    std::vector<int> fds;
    if (info.Length() > 1 && info[1].IsArray()) {
      Napi::Array a = info[1].As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) fds.push_back(a.Get(i).As<Napi::Number>().Int32Value());
    }
    ssize_t n = fdpass::send(fd_, data.Data(), data.Length(), fds, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) throw errnoError(env, errno, "sendmsg");
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    StopPolling();
    return info.Env().Undefined();
  }

  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::Env env_ = nullptr;
  Napi::FunctionReference onMessage_;
};

// In-place mode: a listening TCP socket on 127.0.0.1 with a port the kernel picks, made before
// the plan (whose environment and landlock rules name the port). Returns {fd, port}.
Napi::Value ListenLoopback(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw errnoError(env, errno, "socket");
  struct sockaddr_in addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 511) != 0 ||
      getsockname(fd, reinterpret_cast<struct sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    close(fd);
    throw errnoError(env, err, "listen");
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", fd);
  out.Set("port", ntohs(addr.sin_port));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("socketpair", Napi::Function::New(env, SocketPair));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("planPipe", Napi::Function::New(env, PlanPipe));
  exports.Set("pipe", Napi::Function::New(env, Pipe));
  exports.Set("listenLoopback", Napi::Function::New(env, ListenLoopback));
  exports.Set("spawnHelper", Napi::Function::New(env, SpawnHelper));
  exports.Set("watchExit", Napi::Function::New(env, WatchExit));
  exports.Set("Channel", Channel::Init(env));
  exports.Set("relay", Napi::Function::New(env, clawjail::Relay));
  return exports;
}

}  // namespace

NODE_API_MODULE(clawjail, Init)
