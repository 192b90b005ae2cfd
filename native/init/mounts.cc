#include "mounts.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <string>

#include "errors.h"

#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif

namespace mountns {
namespace {

// Local copies of the uapi structs so older headers still build.
struct OpenHow {
  uint64_t flags;
  uint64_t mode;
  uint64_t resolve;
};
constexpr uint64_t kResolveNoMagiclinks = 0x02;
constexpr uint64_t kResolveNoSymlinks = 0x04;
constexpr uint64_t kResolveInRoot = 0x10;

struct MountAttr {
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
};
constexpr uint64_t kAttrRdonly = 0x00000001;
constexpr uint64_t kAttrNosuid = 0x00000002;
constexpr uint64_t kAttrNodev = 0x00000004;
constexpr uint64_t kAttrNoexec = 0x00000008;
constexpr unsigned kAtRecursive = 0x8000;

const char* kBase = "/tmp";
const char* kNewRoot = "/tmp/newroot";
const char* kStaging = "/tmp/staging";

std::string fdPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { if (fd_ >= 0) close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
 private:
  int fd_;
};

// Resolves path inside the new root: absolute symlinks (say /etc/resolv.conf -> /run/…) land
// inside it, as they will after pivot_root, never on the host.
int openInRoot(int root, const std::string& path, uint64_t flags) {
  OpenHow how{flags | O_CLOEXEC, 0, kResolveInRoot | kResolveNoMagiclinks};
  std::string rel = path.size() > 1 ? path.substr(1) : ".";
  return static_cast<int>(syscall(__NR_openat2, root, rel.c_str(), &how, sizeof how));
}

void splitParent(const std::string& path, std::string* parent, std::string* name) {
  size_t slash = path.find_last_of('/');
  *parent = slash == 0 ? "/" : path.substr(0, slash);
  *name = path.substr(slash + 1);
}

int ensureDir(int root, const std::string& path, mode_t mode);

// Opens the parent of path (created as needed) as a real directory fd, for the *at() calls that
// create the last component; sets *name to that component.
int openParentDir(int root, const std::string& path, std::string* name) {
  std::string parent;
  splitParent(path, &parent, name);
  Fd pfd(ensureDir(root, parent, 0755));
  if (!pfd.ok()) return -1;
  // mkdirat/openat need a real directory fd, not O_PATH.
  return openInRoot(root, parent, O_RDONLY | O_DIRECTORY);
}

// mkdir -p inside the new root; returns an O_PATH fd of the directory.
int ensureDir(int root, const std::string& path, mode_t mode) {
  int fd = openInRoot(root, path, O_PATH | O_DIRECTORY);
  if (fd >= 0 || errno != ENOENT) return fd;
  std::string name;
  Fd dir(openParentDir(root, path, &name));
  if (!dir.ok()) return -1;
  if (mkdirat(dir.get(), name.c_str(), mode) != 0 && errno != EEXIST) return -1;
  return openInRoot(root, path, O_PATH | O_DIRECTORY);
}

// Creates an empty file to mount a file onto (if nothing is there yet); returns an O_PATH fd.
int ensureFile(int root, const std::string& path) {
  int fd = openInRoot(root, path, O_PATH);
  if (fd >= 0 || errno != ENOENT) return fd;
  std::string name;
  Fd dir(openParentDir(root, path, &name));
  if (!dir.ok()) return -1;
  int f = openat(dir.get(), name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0444);
  if (f < 0 && errno != EEXIST) return -1;
  if (f >= 0) close(f);
  return openInRoot(root, path, O_PATH);
}

bool setAttr(const std::string& target, uint64_t set, bool recursive, const char* step, const std::string& dest) {
  MountAttr attr{set, 0, 0, 0};
  unsigned flags = recursive ? kAtRecursive : 0;
  if (syscall(__NR_mount_setattr, AT_FDCWD, target.c_str(), flags, &attr, sizeof attr) == 0) return true;
  if (errno != ENOSYS) return errors::fail(step, errno, dest);
  // Kernels before 5.12: remount the top mount, keeping the flags the kernel locks in a user
  // namespace (nosuid/nodev/noexec/ro the source already has), or the remount fails with EPERM.
  struct statvfs st;
  if (statvfs(target.c_str(), &st) != 0) return errors::fail(step, errno, dest);
  unsigned long f = MS_REMOUNT | MS_BIND;
  if (set & kAttrRdonly || st.f_flag & ST_RDONLY) f |= MS_RDONLY;
  if (set & kAttrNosuid || st.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (set & kAttrNodev || st.f_flag & ST_NODEV) f |= MS_NODEV;
  if (set & kAttrNoexec || st.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (mount(nullptr, target.c_str(), nullptr, f, nullptr) != 0) return errors::fail(step, errno, dest);
  return true;
}

bool doBind(int root, const plan::Mount& m, int srcFd) {
  struct stat st;
  if (fstat(srcFd, &st) != 0) return errors::fail("mount.bind_source", errno, m.src);
  if (m.dirOnly && !S_ISDIR(st.st_mode)) return errors::fail("mount.bind_source", ENOTDIR, m.src);
  Fd dest(S_ISDIR(st.st_mode) ? ensureDir(root, m.dest, 0755) : ensureFile(root, m.dest));
  if (!dest.ok()) return errors::fail("mount.bind_target", errno, m.dest);
  std::string target = fdPath(dest.get());
  if (mount(fdPath(srcFd).c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
    return errors::fail("mount.bind", errno, m.dest, m.src);
  // Reopen: the fd above names the directory under the new mount, not the mount itself.
  Fd mounted(openInRoot(root, m.dest, O_PATH));
  if (!mounted.ok()) return errors::fail("mount.bind_target", errno, m.dest);
  uint64_t attrs = kAttrNosuid | kAttrNodev | (m.readonly ? kAttrRdonly : 0) | (m.noexec ? kAttrNoexec : 0);
  return setAttr(fdPath(mounted.get()), attrs, true, m.readonly ? "mount.remount_ro" : "mount.remount", m.dest);
}

bool doTmpfs(int root, const plan::Mount& m) {
  Fd dest(ensureDir(root, m.dest, 0755));
  if (!dest.ok()) return errors::fail("mount.tmpfs_target", errno, m.dest);
  char opts[64];
  if (m.size) snprintf(opts, sizeof opts, "mode=%o,size=%llu", m.mode, static_cast<unsigned long long>(m.size));
  else snprintf(opts, sizeof opts, "mode=%o", m.mode);
  unsigned long flags = MS_NOSUID | MS_NODEV | (m.noexec ? MS_NOEXEC : 0);
  if (mount("tmpfs", fdPath(dest.get()).c_str(), "tmpfs", flags, opts) != 0)
    return errors::fail("mount.tmpfs", errno, m.dest);
  return true;
}

// A fresh kernel filesystem (proc, mqueue) with no setuid, devices or executables. Steps are
// "mount.<fstype>_target" and "mount.<fstype>".
bool mountKernelFs(int root, const plan::Mount& m, const std::string& fstype, mode_t mode) {
  Fd dest(ensureDir(root, m.dest, mode));
  if (!dest.ok()) return errors::fail(("mount." + fstype + "_target").c_str(), errno, m.dest);
  if (mount(fstype.c_str(), fdPath(dest.get()).c_str(), fstype.c_str(), MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    return errors::fail(("mount." + fstype).c_str(), errno, m.dest);
  return true;
}

bool symlinkIn(int root, const std::string& target, const std::string& path) {
  std::string name;
  Fd dir(openParentDir(root, path, &name));
  if (!dir.ok()) return errors::fail("mount.symlink", errno, path);
  if (symlinkat(target.c_str(), dir.get(), name.c_str()) != 0) return errors::fail("mount.symlink", errno, path, target);
  return true;
}

// The /dev the plan describes, and nothing more (see plan::Mount).
bool doDev(int root, const plan::Mount& m, const std::vector<int>& deviceFds) {
  plan::Mount base;
  base.dest = m.dest;
  base.mode = 0755;
  base.size = m.size;
  if (!doTmpfs(root, base)) return false;
  for (size_t i = 0; i < m.devices.size(); i++) {
    std::string path = m.dest + "/" + m.devices[i];
    Fd dest(ensureFile(root, path));
    if (!dest.ok()) return errors::fail("mount.dev_node", errno, path);
    // Device nodes cannot be created in a user namespace; bind the host's.
    if (mount(fdPath(deviceFds[i]).c_str(), fdPath(dest.get()).c_str(), nullptr, MS_BIND, nullptr) != 0)
      return errors::fail("mount.dev_node", errno, path);
  }
  if (m.pts) {
    // A new instance: the sandbox's ptys are its own, none of the host's are visible. Anyone may
    // open ptmx (as /dev/ptmx links to it); a new pty is its owner's, group-writable as usual.
    Fd pts(ensureDir(root, m.dest + "/pts", 0755));
    if (!pts.ok()) return errors::fail("mount.devpts", errno, m.dest + "/pts");
    if (mount("devpts", fdPath(pts.get()).c_str(), "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620") != 0)
      return errors::fail("mount.devpts", errno, m.dest + "/pts");
  }
  if (m.shmSize) {
    plan::Mount shm;
    shm.dest = m.dest + "/shm";
    shm.mode = 01777;
    shm.size = m.shmSize;
    if (!doTmpfs(root, shm)) return false;
  }
  for (const auto& l : m.links)
    if (!symlinkIn(root, l.second, m.dest + "/" + l.first)) return false;
  Fd top(openInRoot(root, m.dest, O_PATH));
  return top.ok() && setAttr(fdPath(top.get()), kAttrNosuid | kAttrNoexec, false, "mount.dev_seal", m.dest);
}

bool doFile(int root, const plan::Mount& m, int index) {
  // Written to a staging tmpfs outside the new root, then bound onto the destination, so it can
  // replace a file inside a read-only bind (/etc/hosts) without touching the host's copy.
  std::string staged = std::string(kStaging) + "/" + std::to_string(index);
  int fd = open(staged.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, m.mode);
  if (fd < 0) return errors::fail("mount.file_stage", errno, m.dest);
  ssize_t n = write(fd, m.content.data(), m.content.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(m.content.size())) return errors::fail("mount.file_stage", n < 0 ? err : EIO, m.dest);
  if (chmod(staged.c_str(), m.mode) != 0) return errors::fail("mount.file_stage", errno, m.dest);
  Fd dest(ensureFile(root, m.dest));
  if (!dest.ok()) return errors::fail("mount.file_target", errno, m.dest);
  if (mount(staged.c_str(), fdPath(dest.get()).c_str(), nullptr, MS_BIND, nullptr) != 0)
    return errors::fail("mount.file", errno, m.dest);
  Fd mounted(openInRoot(root, m.dest, O_PATH));
  return mounted.ok() && setAttr(fdPath(mounted.get()), kAttrRdonly | kAttrNosuid | kAttrNodev, false, "mount.file_seal", m.dest);
}

// Opens what a Mask/ReadOnly op names; *absent is set when there is nothing there (these ops name
// kernel files that exist only with some kernel builds).
int openOptional(int root, const plan::Mount& m, const char* step, bool* absent) {
  int fd = openInRoot(root, m.dest, O_PATH);
  *absent = fd < 0 && errno == ENOENT;
  if (fd < 0 && !*absent) errors::fail(step, errno, m.dest);
  return fd;
}

// The empty, read-only file masked files are replaced with (one for all of them).
bool stageEmptyFile(std::string* path) {
  *path = std::string(kStaging) + "/empty";
  int fd = open(path->c_str(), O_CREAT | O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0444);
  if (fd < 0) return errors::fail("mount.mask_stage", errno, *path);
  close(fd);
  return true;
}

bool doMask(int root, const plan::Mount& m) {
  bool absent = false;
  Fd dest(openOptional(root, m, "mount.mask_target", &absent));
  if (absent) return true;
  if (!dest.ok()) return false;
  struct stat st;
  if (fstat(dest.get(), &st) != 0) return errors::fail("mount.mask_target", errno, m.dest);
  std::string target = fdPath(dest.get());
  if (S_ISDIR(st.st_mode)) {
    if (mount("tmpfs", target.c_str(), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555") != 0)
      return errors::fail("mount.mask", errno, m.dest);
    return true;
  }
  std::string empty;
  if (!stageEmptyFile(&empty)) return false;
  if (mount(empty.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) return errors::fail("mount.mask", errno, m.dest);
  Fd mounted(openInRoot(root, m.dest, O_PATH));
  if (!mounted.ok()) return errors::fail("mount.mask_target", errno, m.dest);
  return setAttr(fdPath(mounted.get()), kAttrRdonly | kAttrNosuid | kAttrNodev | kAttrNoexec, false, "mount.mask_seal", m.dest);
}

bool doReadOnly(int root, const plan::Mount& m) {
  bool absent = false;
  Fd dest(openOptional(root, m, "mount.readonly_target", &absent));
  if (absent) return true;
  if (!dest.ok()) return false;
  // A bind of the path onto itself gives it a mount of its own, which can then be read-only alone.
  std::string target = fdPath(dest.get());
  if (mount(target.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
    return errors::fail("mount.readonly", errno, m.dest);
  Fd mounted(openInRoot(root, m.dest, O_PATH));
  if (!mounted.ok()) return errors::fail("mount.readonly_target", errno, m.dest);
  return setAttr(fdPath(mounted.get()), kAttrRdonly | kAttrNosuid | kAttrNodev | kAttrNoexec, true, "mount.readonly_seal", m.dest);
}

bool doDir(int root, const plan::Mount& m) {
  Fd dir(ensureDir(root, m.dest, m.mode));
  if (!dir.ok()) return errors::fail("mount.dir", errno, m.dest);
  return true;
}

}  // namespace

bool makePrivate() {
  if (mount(nullptr, "/", nullptr, MS_SLAVE | MS_REC, nullptr) != 0) return errors::fail("mount.make_slave", errno, "/");
  return true;
}

bool openSources(const plan::Plan& plan, Sources* out) {
  out->mountFds.assign(plan.mounts.size(), -1);
  out->deviceFds.assign(plan.mounts.size(), {});
  for (size_t i = 0; i < plan.mounts.size(); i++) {
    const plan::Mount& m = plan.mounts[i];
    if (m.op == plan::MountOp::Bind) {
      // The planner resolved every symlink; one here means the path changed since (ELOOP).
      OpenHow how{O_PATH | O_CLOEXEC, 0, kResolveNoSymlinks};
      int fd = static_cast<int>(syscall(__NR_openat2, AT_FDCWD, m.src.c_str(), &how, sizeof how));
      if (fd < 0 && errno == ENOSYS) fd = open(m.src.c_str(), O_PATH | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) return errors::fail("mount.bind_source", errno, m.src);
      out->mountFds[i] = fd;
    } else if (m.op == plan::MountOp::Dev) {
      for (const auto& name : m.devices) {
        std::string path = "/dev/" + name;
        int fd = open(path.c_str(), O_PATH | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) return errors::fail("mount.dev_source", errno, path);
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode)) {
          close(fd);
          return errors::fail("mount.dev_source", ENODEV, path, "not a character device");
        }
        out->deviceFds[i].push_back(fd);
      }
    }
  }
  return true;
}

bool buildRootAndPivot(const plan::Plan& plan, Sources& sources) {
  if (mount("tmpfs", kBase, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m") != 0)
    return errors::fail("mount.base_tmpfs", errno, kBase);
  if (mkdir(kNewRoot, 0755) != 0) return errors::fail("mount.newroot", errno, kNewRoot);
  if (mkdir(kStaging, 0700) != 0) return errors::fail("mount.staging", errno, kStaging);
  if (mount("tmpfs", kNewRoot, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0)
    return errors::fail("mount.root_tmpfs", errno, kNewRoot);
  Fd root(open(kNewRoot, O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.ok()) return errors::fail("mount.newroot", errno, kNewRoot);

  for (size_t i = 0; i < plan.mounts.size(); i++) {
    const plan::Mount& m = plan.mounts[i];
    bool ok = true;
    switch (m.op) {
      case plan::MountOp::Bind: ok = doBind(root.get(), m, sources.mountFds[i]); break;
      case plan::MountOp::Tmpfs: ok = doTmpfs(root.get(), m); break;
      case plan::MountOp::Proc: ok = mountKernelFs(root.get(), m, "proc", 0555); break;
      case plan::MountOp::Mqueue: ok = mountKernelFs(root.get(), m, "mqueue", 0755); break;
      case plan::MountOp::Dev: ok = doDev(root.get(), m, sources.deviceFds[i]); break;
      case plan::MountOp::File: ok = doFile(root.get(), m, static_cast<int>(i)); break;
      case plan::MountOp::Dir: ok = doDir(root.get(), m); break;
      case plan::MountOp::Symlink: ok = symlinkIn(root.get(), m.target, m.dest); break;
      case plan::MountOp::Mask: ok = doMask(root.get(), m); break;
      case plan::MountOp::ReadOnly: ok = doReadOnly(root.get(), m); break;
    }
    if (!ok) return false;
  }
  for (int fd : sources.mountFds) if (fd >= 0) close(fd);
  for (auto& v : sources.deviceFds) for (int fd : v) close(fd);
  sources = Sources{};

  if (chdir(kNewRoot) != 0) return errors::fail("mount.pivot_root", errno, kNewRoot);
  if (syscall(SYS_pivot_root, ".", ".") != 0) return errors::fail("mount.pivot_root", errno, kNewRoot);
  // The old root is now stacked under ".": detach it so nothing of the host stays reachable.
  if (umount2(".", MNT_DETACH) != 0) return errors::fail("mount.detach_old_root", errno, "/");
  if (chdir("/") != 0) return errors::fail("mount.chdir", errno, "/");
  return true;
}

bool sealRoot() {
  return setAttr("/", kAttrRdonly | kAttrNosuid | kAttrNodev, false, "mount.seal_root", "/");
}

}  // namespace mountns
