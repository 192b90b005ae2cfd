// The egress proxy's tunnel relay: once a CONNECT tunnel has passed every check (policy, address,
// SNI) its two sockets only need bytes moved between them. Doing that in JS costs a JS callback,
// buffer management and a stream write per read; here native code moves them on the same libuv
// loop (one level-triggered uv_poll per socket, no threads).
//
// Two engines move the bytes of one direction:
// - splice: socket → pipe → socket with splice(SPLICE_F_MOVE): the kernel passes page references
//   and the proxy never touches the data (the least proxy CPU per byte);
// - copy: recv() into a native buffer and send() it on, in batches of up to 4 MiB.
// Which one is faster depends on where the pages come from. On loopback (the benchmark: upstream
// server on the same host) splice hands the client pages the server wrote long before, and the
// client's copy of those cold pages costs more than the proxy saves; the copy engine's large
// batches beat both it and the JS path there. The caller chooses; see the proxy for the numbers.
//
// Per direction the state is simple because the holder (pipe or buffer) is always drained before
// the next read: either it is empty (wait until the source is readable) or it holds bytes the
// destination did not take yet (wait until the destination is writable, and read nothing
// meanwhile: that is the back-pressure). Empty holders go back to small per-thread pools, so an
// idle tunnel holds only its two sockets; with no relay left the pools are freed too.
#include "relay.h"

#include <uv.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

namespace clawjail {
namespace {

// splice: pipe capacity asked for (best effort: above /proc/sys/fs/pipe-max-size, or over the
// user's pipe-pages quota, the default 64 KiB stays). Bigger batches, fewer syscalls per byte.
constexpr int kPipeSize = 1 << 20;
// copy: buffer sizes. A direction starts small and grows while its reads fill the buffer (a bulk
// transfer), shrinks when they come back mostly empty (interactive traffic).
constexpr size_t kBufSizes[] = {64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024};
constexpr int kBufClasses = 4;
// copy: buffers above the smallest size stop being handed out past this much buffer memory per
// thread (many stalled bulk tunnels); the smallest size is always available.
constexpr size_t kBufBudget = 64 * 1024 * 1024;
// Batches one direction may move per wake-up before yielding to the rest of the loop; the poll is
// level-triggered, so leftover bytes bring it back on the next iteration.
constexpr int kMaxRounds = 16;
// Empty pipes / buffers (per size) kept for reuse per thread; more are freed.
constexpr size_t kMaxFreePipes = 16;
constexpr size_t kMaxFreeBufs = 4;

struct Pipe {
  int r = -1;
  int w = -1;
};

struct Buf {
  char* data = nullptr;
  int cls = 0;
};

class Core;

// Per thread, i.e. per Node environment (main thread or a worker): its live relays, by the id
// that their JS handles carry (a handle never points at freed memory), and its pools.
struct ThreadState {
  std::unordered_map<uint32_t, Core*> live;
  std::vector<Pipe> freePipes;
  std::vector<char*> freeBufs[kBufClasses];
  size_t bufBytes = 0;  // allocated copy buffers, pooled ones included
  uint32_t nextId = 1;
  bool hookAdded = false;
};
thread_local ThreadState state;

bool TakePipe(Pipe& p) {
  if (!state.freePipes.empty()) {
    p = state.freePipes.back();
    state.freePipes.pop_back();
    return true;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return false;
  fcntl(fds[1], F_SETPIPE_SZ, kPipeSize);
  p.r = fds[0];
  p.w = fds[1];
  return true;
}

// Only a pipe known to be empty may be reused; one that still holds bytes is closed with them.
void ReleasePipe(Pipe& p, bool empty) {
  if (p.r < 0) return;
  if (empty && state.freePipes.size() < kMaxFreePipes) {
    state.freePipes.push_back(p);
  } else {
    close(p.r);
    close(p.w);
  }
  p = Pipe{};
}

bool TakeBuf(Buf& b, int cls) {
  if (cls > 0 && state.freeBufs[cls].empty() && state.bufBytes + kBufSizes[cls] > kBufBudget) cls = 0;
  if (!state.freeBufs[cls].empty()) {
    b.data = state.freeBufs[cls].back();
    state.freeBufs[cls].pop_back();
  } else {
    b.data = static_cast<char*>(malloc(kBufSizes[cls]));
    if (!b.data) return false;
    state.bufBytes += kBufSizes[cls];
  }
  b.cls = cls;
  return true;
}

void ReleaseBuf(Buf& b) {
  if (!b.data) return;
  if (state.freeBufs[b.cls].size() < kMaxFreeBufs) {
    state.freeBufs[b.cls].push_back(b.data);
  } else {
    free(b.data);
    state.bufBytes -= kBufSizes[b.cls];
  }
  b = Buf{};
}

void DrainPools() {
  for (Pipe& p : state.freePipes) {
    close(p.r);
    close(p.w);
  }
  state.freePipes.clear();
  for (int c = 0; c < kBufClasses; c++) {
    for (char* d : state.freeBufs[c]) {
      free(d);
      state.bufBytes -= kBufSizes[c];
    }
    state.freeBufs[c].clear();
  }
}

enum class End { Done, Error, Idle, Cancelled };

struct Direction {
  int src = 0;  // side index (0 = A, 1 = B)
  int dst = 1;
  Pipe pipe;          // splice engine
  Buf buf;            // copy engine
  int nextCls = 0;    // copy engine: size class for the next read
  size_t off = 0;     // copy engine: first unsent byte in buf
  size_t pending = 0;  // read from src, not yet written to dst
  bool eof = false;    // read 0 from src
  bool done = false;   // eof and everything forwarded; dst shut down for writing
  uint64_t bytes = 0;  // written to dst
};

class Core {
 public:
  Core(Napi::Env env, int fdA, int fdB, bool copy, uint64_t idleMs) : env_(env), copy_(copy), idleMs_(idleMs) {
    fd_[0] = fdA;
    fd_[1] = fdB;
    dir_[0].src = 0;
    dir_[0].dst = 1;
    dir_[1].src = 1;
    dir_[1].dst = 0;
    napi_get_uv_event_loop(env, &loop_);
  }

  // Sets up the libuv handles. On failure the Core frees itself once libuv is done with the
  // handles that were set up; the fds stay open (the caller closes them).
  static Core* Start(Napi::Env env, int fdA, int fdB, Napi::Function onDone, bool copy, uint64_t idleMs) {
    auto* self = new Core(env, fdA, fdB, copy, idleMs);
    int rc = 0;
    for (int s = 0; s < 2 && rc == 0; s++) {
      rc = uv_poll_init(self->loop_, &self->poll_[s], self->fd_[s]);
      if (rc == 0) {
        self->poll_[s].data = self;
        self->open_++;
      }
    }
    if (rc != 0) {
      self->finished_ = true;
      int opened = self->open_;
      if (opened == 0) delete self;
      for (int s = 0; s < opened; s++) uv_close(reinterpret_cast<uv_handle_t*>(&self->poll_[s]), &Core::OnClosed);
      throw Napi::Error::New(env, std::string("relay: uv_poll_init: ") + uv_strerror(rc));
    }
    uv_timer_init(self->loop_, &self->timer_);
    self->timer_.data = self;
    self->open_++;
    self->onDone_ = Napi::Persistent(onDone);
    self->id_ = state.nextId++;
    if (self->id_ == 0) self->id_ = state.nextId++;
    state.live[self->id_] = self;
    self->last_ = uv_now(self->loop_);
    if (idleMs > 0) uv_timer_start(&self->timer_, &Core::OnTimer, idleMs, 0);
    // No pumping here: whatever already waits in the sockets shows up as readiness on the next
    // loop iteration, so onDone is never called from inside relay().
    self->UpdatePolls();
    return self;
  }

  uint32_t id() const { return id_; }

  void Cancel() { Finish(End::Cancelled, 0, -1, /*fromJs=*/true); }

  // Environment teardown: release everything, call nothing.
  void Abandon() {
    { Napi::FunctionReference dropped = std::move(onDone_); }
    Release();
  }

 private:
  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* self = static_cast<Core*>(h->data);
    self->OnEvent(h == &self->poll_[0] ? 0 : 1, status, events);
  }

  static void OnTimer(uv_timer_t* t) {
    auto* self = static_cast<Core*>(t->data);
    uint64_t quiet = uv_now(self->loop_) - self->last_;
    if (quiet >= self->idleMs_) self->Finish(End::Idle, 0, -1, false);
    else uv_timer_start(&self->timer_, &Core::OnTimer, self->idleMs_ - quiet, 0);
  }

  static void OnClosed(uv_handle_t* h) {
    auto* self = static_cast<Core*>(h->data);
    if (--self->open_ == 0) delete self;
  }

  void OnEvent(int side, int status, int events) {
    if (finished_) return;
    if (status < 0) {
      // libuv reports POLLERR as a status and stops the poll. Try both directions through this
      // socket: reads return what was still queued and then the socket's error, writes fail.
      current_[side] = -1;
      events = UV_READABLE | UV_WRITABLE;
    }
    // Reading from `side` is direction `side`; writing to it is the other one.
    if (events & (UV_READABLE | UV_DISCONNECT)) {
      if (!Pump(dir_[side])) return;
    }
    if (events & UV_WRITABLE) {
      if (!Pump(dir_[1 - side])) return;
    }
    if (dir_[0].done && dir_[1].done) {
      Finish(End::Done, 0, -1, false);
      return;
    }
    if (status < 0) {
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(fd_[side], SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
        Finish(End::Error, err, side, false);
        return;
      }
    }
    UpdatePolls();
  }

  // Writes what the direction holds to its destination: bytes written, or -1 with errno.
  // (A write to a peer that is gone raises SIGPIPE for splice; Node ignores SIGPIPE.)
  ssize_t Put(Direction& d) {
    if (copy_) return send(fd_[d.dst], d.buf.data + d.off, d.pending, MSG_NOSIGNAL | MSG_DONTWAIT);
    return splice(d.pipe.r, nullptr, fd_[d.dst], nullptr, d.pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  }

  // Reads from the direction's source into a holder taken from the pool: bytes read, 0 at EOF,
  // or -1 with errno.
  ssize_t Get(Direction& d) {
    if (copy_) {
      if (!TakeBuf(d.buf, d.nextCls)) return -1;
      size_t size = kBufSizes[d.buf.cls];
      ssize_t n = recv(fd_[d.src], d.buf.data, size, MSG_DONTWAIT);
      if (n > 0) {
        if (static_cast<size_t>(n) == size && d.buf.cls + 1 < kBufClasses) d.nextCls = d.buf.cls + 1;
        else if (static_cast<size_t>(n) < size / 8 && d.buf.cls > 0) d.nextCls = d.buf.cls - 1;
      }
      return n;
    }
    if (!TakePipe(d.pipe)) return -1;
    return splice(fd_[d.src], nullptr, d.pipe.w, nullptr, kPipeSize, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  }

  void ReleaseHolder(Direction& d) {
    ReleasePipe(d.pipe, d.pending == 0);
    ReleaseBuf(d.buf);
    d.off = 0;
  }

  // Moves what it can in one direction; false when the relay ended (on an error).
  bool Pump(Direction& d) {
    int rounds = 0;
    while (!d.done) {
      if (d.pending > 0) {
        ssize_t n = Put(d);
        if (n > 0) {
          d.pending -= static_cast<size_t>(n);
          d.off += static_cast<size_t>(n);
          d.bytes += static_cast<uint64_t>(n);
          last_ = uv_now(loop_);
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;  // wait for writable dst
        Finish(End::Error, n == 0 ? EPIPE : errno, d.dst, false);
        return false;
      }
      ReleaseHolder(d);
      if (d.eof) {
        // Half-close: the other direction keeps running. ENOTCONN (peer already gone) is fine.
        shutdown(fd_[d.dst], SHUT_WR);
        d.done = true;
        return true;
      }
      if (++rounds > kMaxRounds) return true;
      ssize_t n = Get(d);
      if (n > 0) {
        d.pending = static_cast<size_t>(n);
        last_ = uv_now(loop_);
        continue;
      }
      if (n == 0) {
        d.eof = true;
        continue;
      }
      int err = errno;
      ReleaseHolder(d);
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return true;  // wait for readable src
      Finish(End::Error, err, (err == ENOMEM || err == EMFILE || err == ENFILE) ? -1 : d.src, false);
      return false;
    }
    return true;
  }

  // Level-triggered interest per socket: a direction holding bytes waits for its destination to
  // be writable and reads nothing; an empty one waits for its source.
  void UpdatePolls() {
    int want[2] = {0, 0};
    for (const Direction& d : dir_) {
      if (d.done) continue;
      if (d.pending > 0) want[d.dst] |= UV_WRITABLE;
      else want[d.src] |= UV_READABLE;
    }
    for (int s = 0; s < 2; s++) {
      if (want[s] == current_[s]) continue;
      if (want[s] == 0) uv_poll_stop(&poll_[s]);
      else uv_poll_start(&poll_[s], want[s], &Core::OnPoll);
      current_[s] = want[s];
    }
  }

  // Closes the libuv handles (which drops the fds from epoll at once), then the fds and holders.
  void Release() {
    finished_ = true;
    state.live.erase(id_);
    for (int s = 0; s < 2; s++) uv_close(reinterpret_cast<uv_handle_t*>(&poll_[s]), &Core::OnClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &Core::OnClosed);
    for (int s = 0; s < 2; s++) {
      close(fd_[s]);
      fd_[s] = -1;
    }
    for (Direction& d : dir_) ReleaseHolder(d);
    // The pools serve concurrent tunnels; with none left they go too, so a proxy without
    // tunnels holds no fds or buffer memory for them.
    if (state.live.empty()) DrainPools();
  }

  void Finish(End end, int err, int side, bool fromJs) {
    if (finished_) return;
    Release();
    // Moved out: the Core may be gone (deleted by the handles' close callbacks) by the time this
    // reference dies, and its destructor never throws.
    Napi::FunctionReference cb = std::move(onDone_);
    if (cb.IsEmpty()) return;
    if (fromJs) {
      // JS is on the stack (cancel()): an exception goes back to that caller.
      Napi::HandleScope scope(env_);
      cb.Call({Result(end, err, side)});
      return;
    }
    // From the loop: nothing in C++ can handle a JS exception, so report it as uncaught, as for
    // any other callback. While a worker is being terminated N-API calls fail; then say nothing.
    napi_handle_scope scope;
    if (napi_open_handle_scope(env_, &scope) != napi_ok) return;
    try {
      cb.MakeCallback(env_.Global(), {Result(end, err, side)});
    } catch (const Napi::Error& e) {
      napi_value v = e.Value();
      if (v != nullptr) napi_fatal_exception(env_, v);
    } catch (...) {
    }
    napi_close_handle_scope(env_, scope);
  }

  Napi::Object Result(End end, int err, int side) {
    Napi::Env env = env_;
    Napi::Object r = Napi::Object::New(env);
    r.Set("bytesAtoB", Napi::Number::New(env, static_cast<double>(dir_[0].bytes)));
    r.Set("bytesBtoA", Napi::Number::New(env, static_cast<double>(dir_[1].bytes)));
    if (end == End::Error) {
      char name[64];
      uv_err_name_r(-err, name, sizeof name);
      r.Set("error", Napi::String::New(env, name));
      if (side >= 0) r.Set("errorSide", Napi::String::New(env, side == 0 ? "a" : "b"));
    } else if (end == End::Idle) {
      r.Set("error", Napi::String::New(env, "idle-timeout"));
    } else if (end == End::Cancelled) {
      r.Set("error", Napi::String::New(env, "cancelled"));
    }
    return r;
  }

  Napi::Env env_;
  uv_loop_t* loop_ = nullptr;
  uint32_t id_ = 0;
  int fd_[2];
  Direction dir_[2];
  bool copy_;
  uv_poll_t poll_[2];
  int current_[2] = {0, 0};
  uv_timer_t timer_;
  uint64_t idleMs_;
  uint64_t last_ = 0;
  int open_ = 0;
  bool finished_ = false;
  Napi::FunctionReference onDone_;
};

Napi::Error ErrnoError(Napi::Env env, int err, const char* what) {
  Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  return e;
}

// A private, close-on-exec duplicate of a connected stream socket, non-blocking.
int DupSocket(Napi::Env env, int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) throw ErrnoError(env, errno, "fstat");
  int type = 0;
  socklen_t len = sizeof type;
  if (!S_ISSOCK(st.st_mode) || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
    throw Napi::TypeError::New(env, "relay: fd " + std::to_string(fd) + " is not a stream socket");
  }
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0) throw ErrnoError(env, errno, "fcntl(F_DUPFD_CLOEXEC)");
  int flags = fcntl(d, F_GETFL);
  if (flags < 0 || fcntl(d, F_SETFL, flags | O_NONBLOCK) != 0) {
    int err = errno;
    close(d);
    throw ErrnoError(env, err, "fcntl(O_NONBLOCK)");
  }
  return d;
}

void OnEnvCleanup(void*) {
  std::vector<Core*> live;
  for (auto& kv : state.live) live.push_back(kv.second);
  for (Core* c : live) c->Abandon();
  DrainPools();
  state.hookAdded = false;
}

}  // namespace

Napi::Value Relay(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsFunction()) {
    throw Napi::TypeError::New(env, "relay(fdA, fdB, onDone, options?)");
  }
  int fdA = info[0].As<Napi::Number>().Int32Value();
  int fdB = info[1].As<Napi::Number>().Int32Value();
  if (fdA < 0 || fdB < 0 || fdA == fdB) throw Napi::TypeError::New(env, "relay: two distinct fds are needed");
  uint64_t idleMs = 0;
  bool copy = false;
  if (info.Length() > 3 && info[3].IsObject()) {
    Napi::Object o = info[3].As<Napi::Object>();
    Napi::Value v = o.Get("idleTimeoutMs");
    if (v.IsNumber()) {
      double ms = v.As<Napi::Number>().DoubleValue();
      if (ms > 0) idleMs = static_cast<uint64_t>(ms);
    }
    Napi::Value e = o.Get("engine");
    if (e.IsString()) {
      std::string engine = e.As<Napi::String>().Utf8Value();
      if (engine == "copy") copy = true;
      else if (engine != "splice") throw Napi::TypeError::New(env, "relay: engine is 'splice' or 'copy'");
    }
  }
  int a = DupSocket(env, fdA);
  int b;
  try {
    b = DupSocket(env, fdB);
  } catch (...) {
    close(a);
    throw;
  }
  Core* core;
  try {
    core = Core::Start(env, a, b, info[2].As<Napi::Function>(), copy, idleMs);
  } catch (...) {
    close(a);
    close(b);
    throw;
  }
  if (!state.hookAdded) {
    napi_add_env_cleanup_hook(env, OnEnvCleanup, nullptr);
    state.hookAdded = true;
  }
  uint32_t id = core->id();
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("cancel", Napi::Function::New(
                           env,
                           [id](const Napi::CallbackInfo& ci) -> Napi::Value {
                             auto it = state.live.find(id);
                             if (it != state.live.end()) it->second->Cancel();
                             return ci.Env().Undefined();
                           },
                           "cancel"));
  return handle;
}

}  // namespace clawjail
