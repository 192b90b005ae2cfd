// The launch plan as the helper sees it: plain data decoded from the JSON the supervisor wrote.
// Every field is validated in plan.cc; the helper carries out exactly this and decides nothing.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace plan {

// Mask: hide what is at dest (a directory under an empty read-only tmpfs, anything else under an
// empty read-only file); ReadOnly: make the subtree at dest read-only where it is. Both are for
// paths inside a kernel filesystem whose entries depend on the kernel's build, so nothing at dest
// means nothing to hide.
enum class MountOp { Bind, Tmpfs, Proc, Dev, File, Dir, Symlink, Mqueue, Mask, ReadOnly };

struct Mount {
  MountOp op = MountOp::Dir;
  std::string src;      // Bind: host path (opened before the new root is built)
  std::string dest;     // absolute path inside the sandbox
  std::string target;   // Symlink: link text
  std::string content;  // File: bytes to write
  bool readonly = false;
  bool noexec = false;
  bool dirOnly = false;  // Bind: the source must be a directory
  uint64_t size = 0;     // Tmpfs, Dev: bytes (0 = kernel default)
  uint32_t mode = 0755;  // Tmpfs/Dir/File
  // Dev: everything of the /dev the plan describes (the helper adds nothing of its own).
  std::vector<std::string> devices;  // names of host /dev character devices to bind
  bool pts = false;                  // a new devpts instance at dest/pts
  uint64_t shmSize = 0;              // a tmpfs at dest/shm of this many bytes (0 = none)
  std::vector<std::pair<std::string, std::string>> links;  // dest/NAME -> TARGET
};

struct Service {
  std::string name;
  bool unixSocket = false;
  uint16_t port = 0;   // tcp: 127.0.0.1:port inside the sandbox
  std::string path;    // unix: path inside the sandbox
};

struct Rlimit {
  int resource = 0;
  uint64_t soft = 0;
  uint64_t hard = 0;
};

struct LandlockPathRule {
  std::string path;
  uint64_t access = 0;
};

struct LandlockNetRule {
  uint16_t port = 0;
  uint64_t access = 0;
};

struct Landlock {
  bool enabled = false;
  int abi = 0;
  uint64_t handledFs = 0;
  uint64_t handledNet = 0;
  uint64_t scoped = 0;
  uint32_t restrictFlags = 0;
  std::vector<LandlockPathRule> rules;
  std::vector<LandlockNetRule> netRules;
};

struct Seccomp {
  bool enabled = false;
  std::string program;  // raw struct sock_filter array
  bool tsync = false;   // install with SECCOMP_FILTER_FLAG_TSYNC
};

struct Identity {
  uint32_t uid = 0;      // inside
  uint32_t gid = 0;
  uint32_t hostUid = 0;  // what the inside id maps to on the host
  uint32_t hostGid = 0;
  bool dropSupplementaryGroups = false;  // the monitor is root and clears its groups first
};

struct Workload {
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd = "/";
  bool newSession = true;
  std::vector<Rlimit> rlimits;
  Landlock landlock;
  Seccomp seccomp;
};

// In-place mode: no namespaces, mounts or services; the helper forks the workload itself.
struct InPlace {
  bool enabled = false;
  bool changeIdentity = false;  // setgroups/setresgid/setresuid to identity.uid/gid (a root caller)
  bool dropBoundingSet = false; // the caller holds CAP_SETPCAP (root)
  bool allowRoot = false;       // identity uid/gid 0 is what the plan asks for
};

struct Plan {
  int version = 0;
  int64_t supervisorPid = 0;
  std::string hostname;
  int namespaces = 0;  // CLONE_NEW* flags
  Identity identity;
  std::vector<Mount> mounts;
  std::vector<Service> services;
  std::string cgroupProcs;  // a cgroup.procs file the monitor joins before cloning ("" = none)
  std::vector<int> forwardSignals;  // SIG* numbers passed on to the workload by every hop
  InPlace inPlace;
  Workload workload;
};

// Decodes and validates; on failure returns false with a message naming the field.
bool decode(const std::string& text, Plan* out, std::string* error);

}  // namespace plan
