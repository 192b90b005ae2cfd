// The addon is deliberately small: facts about the host that only a system call can tell, a
// SOCK_SEQPACKET socketpair for the channel to clawjail-init, and message + fd passing on it
// driven by libuv so the event loop never blocks.
#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

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
    struct iovec iov = {data.Data(), data.Length()};
    struct msghdr msg;
    std::memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control;
    if (!fds.empty()) {
      control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n;
    do n = sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("socketpair", Napi::Function::New(env, SocketPair));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("planPipe", Napi::Function::New(env, PlanPipe));
  exports.Set("Channel", Channel::Init(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(clawjail, Init)
