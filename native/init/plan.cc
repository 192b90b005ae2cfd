#include "plan.h"

#include <sched.h>
#include <csignal>
#include <sys/resource.h>

#include <set>

#include "../common/json.h"

namespace plan {
namespace {

using json::Type;
using json::Value;

// Each reader checks the type and range and records the first error with its field path.
struct Reader {
  std::string* error;

  bool fail(const std::string& path, const std::string& what) {
    if (error->empty()) *error = "plan field " + path + ": " + what;
    return false;
  }
  bool onlyKeys(const Value& v, const std::string& path, std::initializer_list<const char*> keys) {
    if (v.type != Type::Object) return fail(path, "expected an object");
    std::set<std::string> allowed(keys.begin(), keys.end());
    for (const auto& kv : v.object)
      if (!allowed.count(kv.first)) return fail(path + "." + kv.first, "unknown field");
    return true;
  }
  const Value* need(const Value& v, const std::string& path, const char* key) {
    const Value* f = v.get(key);
    if (!f) fail(path + "." + key, "missing");
    return f;
  }
  bool str(const Value& v, const std::string& path, std::string* out) {
    if (v.type != Type::String) return fail(path, "expected a string");
    if (v.string.find('\0') != std::string::npos) return fail(path, "NUL byte");
    *out = v.string;
    return true;
  }
  bool absPath(const Value& v, const std::string& path, std::string* out) {
    if (!str(v, path, out)) return false;
    if (out->empty() || (*out)[0] != '/') return fail(path, "expected an absolute path");
    // Reject any ".." component: the TypeScript side normalises paths, so one here is tampering.
    size_t i = 0;
    while (i <= out->size()) {
      size_t j = out->find('/', i);
      if (j == std::string::npos) j = out->size();
      if (out->compare(i, j - i, "..") == 0 && j - i == 2) return fail(path, "'..' component");
      i = j + 1;
    }
    return true;
  }
  bool integer(const Value& v, const std::string& path, int64_t lo, int64_t hi, int64_t* out) {
    if (v.type != Type::Number || !v.isInteger) return fail(path, "expected an integer");
    if (v.integer < lo || v.integer > hi) return fail(path, "out of range");
    *out = v.integer;
    return true;
  }
  bool u64(const Value& v, const std::string& path, uint64_t* out) {
    // 2^53 bounds what a JSON number carries exactly; "unlimited" is sent as the string "infinity".
    if (v.type == Type::String && v.string == "infinity") {
      *out = RLIM_INFINITY;
      return true;
    }
    int64_t n;
    if (!integer(v, path, 0, (int64_t(1) << 53), &n)) return false;
    *out = static_cast<uint64_t>(n);
    return true;
  }
  bool boolean(const Value& v, const std::string& path, bool* out) {
    if (v.type != Type::Bool) return fail(path, "expected a boolean");
    *out = v.boolean;
    return true;
  }
  bool strings(const Value& v, const std::string& path, std::vector<std::string>* out) {
    if (v.type != Type::Array) return fail(path, "expected an array");
    for (size_t k = 0; k < v.array.size(); k++) {
      std::string s;
      if (!str(v.array[k], path + "[" + std::to_string(k) + "]", &s)) return false;
      out->push_back(s);
    }
    return true;
  }
};

bool base64Decode(const std::string& in, std::string* out) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    int a = val(in[i]), b = val(in[i + 1]);
    int c = in[i + 2] == '=' ? -2 : val(in[i + 2]);
    int d = in[i + 3] == '=' ? -2 : val(in[i + 3]);
    if (a < 0 || b < 0 || c == -1 || d == -1) return false;
    if ((c == -2 || d == -2) && i + 4 != in.size()) return false;
    if (c == -2 && d != -2) return false;
    out->push_back(static_cast<char>((a << 2) | (b >> 4)));
    if (c >= 0) out->push_back(static_cast<char>(((b & 15) << 4) | (c >> 2)));
    if (d >= 0) out->push_back(static_cast<char>(((c & 3) << 6) | d));
  }
  return true;
}

int namespaceFlag(const std::string& name) {
  if (name == "user") return CLONE_NEWUSER;
  if (name == "mount") return CLONE_NEWNS;
  if (name == "pid") return CLONE_NEWPID;
  if (name == "net") return CLONE_NEWNET;
  if (name == "ipc") return CLONE_NEWIPC;
  if (name == "uts") return CLONE_NEWUTS;
  if (name == "cgroup") return CLONE_NEWCGROUP;
  return 0;
}

int rlimitResource(const std::string& name) {
  static const std::pair<const char*, int> table[] = {
      {"as", RLIMIT_AS},         {"core", RLIMIT_CORE},       {"cpu", RLIMIT_CPU},
      {"data", RLIMIT_DATA},     {"fsize", RLIMIT_FSIZE},     {"locks", RLIMIT_LOCKS},
      {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
      {"nofile", RLIMIT_NOFILE}, {"nproc", RLIMIT_NPROC},     {"rss", RLIMIT_RSS},
      {"rtprio", RLIMIT_RTPRIO}, {"rttime", RLIMIT_RTTIME},   {"sigpending", RLIMIT_SIGPENDING},
      {"stack", RLIMIT_STACK},
  };
  for (const auto& e : table)
    if (name == e.first) return e.second;
  return -1;
}

// The signals a plan may ask the helper to forward: those a terminal or an orchestrator sends,
// which the helper can hold blocked until it passes them on. Never SIGKILL or SIGSTOP (they
// cannot be held), SIGCHLD (the helper's own), nor a fault the kernel raises (SIGSEGV, SIGSYS…).
int forwardableSignal(const std::string& name) {
  static const std::pair<const char*, int> table[] = {
      {"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT}, {"SIGUSR1", SIGUSR1},
      {"SIGUSR2", SIGUSR2}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM}, {"SIGWINCH", SIGWINCH},
  };
  for (const auto& e : table)
    if (name == e.first) return e.second;
  return 0;
}

bool decodeMount(Reader& r, const Value& v, const std::string& p, Mount* m) {
  if (v.type != Type::Object) return r.fail(p, "expected an object");
  const Value* opv = r.need(v, p, "op");
  if (!opv) return false;
  std::string op;
  if (!r.str(*opv, p + ".op", &op)) return false;
  const Value* dest = r.need(v, p, "dest");
  if (!dest || !r.absPath(*dest, p + ".dest", &m->dest)) return false;
  if (op == "bind") {
    m->op = MountOp::Bind;
    if (!r.onlyKeys(v, p, {"op", "dest", "src", "readonly", "noexec", "dirOnly"})) return false;
    const Value* src = r.need(v, p, "src");
    if (!src || !r.absPath(*src, p + ".src", &m->src)) return false;
    if (const Value* f = v.get("readonly"); f && !r.boolean(*f, p + ".readonly", &m->readonly)) return false;
    if (const Value* f = v.get("noexec"); f && !r.boolean(*f, p + ".noexec", &m->noexec)) return false;
    if (const Value* f = v.get("dirOnly"); f && !r.boolean(*f, p + ".dirOnly", &m->dirOnly)) return false;
    if (m->dest == "/" && !m->readonly) return r.fail(p, "refusing a writable bind over /");
    return true;
  }
  if (op == "tmpfs") {
    m->op = MountOp::Tmpfs;
    if (!r.onlyKeys(v, p, {"op", "dest", "size", "mode", "noexec"})) return false;
    if (const Value* f = v.get("size"); f && !r.u64(*f, p + ".size", &m->size)) return false;
    if (const Value* f = v.get("noexec"); f && !r.boolean(*f, p + ".noexec", &m->noexec)) return false;
    int64_t mode = 01777;
    if (const Value* f = v.get("mode"); f && !r.integer(*f, p + ".mode", 0, 07777, &mode)) return false;
    m->mode = static_cast<uint32_t>(mode);
    return true;
  }
  if (op == "proc" || op == "mqueue") {
    m->op = op == "proc" ? MountOp::Proc : MountOp::Mqueue;
    return r.onlyKeys(v, p, {"op", "dest"});
  }
  if (op == "mask" || op == "readonly") {
    m->op = op == "mask" ? MountOp::Mask : MountOp::ReadOnly;
    if (!r.onlyKeys(v, p, {"op", "dest"})) return false;
    if (m->dest == "/") return r.fail(p + ".dest", "refusing to " + op + " /");
    return true;
  }
  if (op == "dev") {
    m->op = MountOp::Dev;
    if (!r.onlyKeys(v, p, {"op", "dest", "size", "devices", "pts", "shm", "links"})) return false;
    const Value* f;
    if (!(f = r.need(v, p, "size")) || !r.u64(*f, p + ".size", &m->size)) return false;
    if (m->size == 0 || m->size > (uint64_t(1) << 30)) return r.fail(p + ".size", "must be 1 byte..1 GiB");
    if (!(f = r.need(v, p, "devices")) || !r.strings(*f, p + ".devices", &m->devices)) return false;
    if (!(f = r.need(v, p, "pts")) || !r.boolean(*f, p + ".pts", &m->pts)) return false;
    if (!(f = r.need(v, p, "shm"))) return false;
    if (f->type != Type::Null) {
      const Value* g;
      if (!r.onlyKeys(*f, p + ".shm", {"size"}) || !(g = r.need(*f, p + ".shm", "size")) || !r.u64(*g, p + ".shm.size", &m->shmSize))
        return false;
      if (m->shmSize == 0 || m->shmSize > (uint64_t(1) << 40)) return r.fail(p + ".shm.size", "must be 1 byte..1 TiB");
    }
    if (!(f = r.need(v, p, "links")) || f->type != Type::Array) return r.fail(p + ".links", "expected an array");
    for (size_t k = 0; k < f->array.size(); k++) {
      const Value& e = f->array[k];
      std::string ep = p + ".links[" + std::to_string(k) + "]";
      std::string name, target;
      const Value* g;
      if (!r.onlyKeys(e, ep, {"name", "target"})) return false;
      if (!(g = r.need(e, ep, "name")) || !r.str(*g, ep + ".name", &name)) return false;
      if (!(g = r.need(e, ep, "target")) || !r.str(*g, ep + ".target", &target)) return false;
      if (target.empty()) return r.fail(ep + ".target", "empty");
      m->links.emplace_back(name, target);
    }
    // Every entry is a plain name directly in /dev, and no two are the same.
    std::set<std::string> names;
    if (m->pts) names.insert("pts");
    if (m->shmSize) names.insert("shm");
    std::vector<std::string> all = m->devices;
    for (const auto& l : m->links) all.push_back(l.first);
    for (const auto& name : all) {
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        return r.fail(p, "bad name in /dev '" + name + "'");
      if (!names.insert(name).second) return r.fail(p, "'" + name + "' twice in /dev");
    }
    return true;
  }
  if (op == "file") {
    m->op = MountOp::File;
    if (!r.onlyKeys(v, p, {"op", "dest", "content", "mode"})) return false;
    const Value* c = r.need(v, p, "content");
    if (!c || !r.str(*c, p + ".content", &m->content)) return false;
    int64_t mode = 0444;
    if (const Value* f = v.get("mode"); f && !r.integer(*f, p + ".mode", 0, 0777, &mode)) return false;
    m->mode = static_cast<uint32_t>(mode);
    return true;
  }
  if (op == "dir") {
    m->op = MountOp::Dir;
    if (!r.onlyKeys(v, p, {"op", "dest", "mode"})) return false;
    int64_t mode = 0755;
    if (const Value* f = v.get("mode"); f && !r.integer(*f, p + ".mode", 0, 07777, &mode)) return false;
    m->mode = static_cast<uint32_t>(mode);
    return true;
  }
  if (op == "symlink") {
    m->op = MountOp::Symlink;
    if (!r.onlyKeys(v, p, {"op", "dest", "target"})) return false;
    const Value* t = r.need(v, p, "target");
    if (!t || !r.str(*t, p + ".target", &m->target) || m->target.empty()) return r.fail(p + ".target", "empty");
    return true;
  }
  return r.fail(p + ".op", "unknown mount op '" + op + "'");
}

bool decodeLandlock(Reader& r, const Value& v, const std::string& p, Landlock* l) {
  if (v.type == Type::Null) return true;
  if (!r.onlyKeys(v, p, {"abi", "handledFs", "handledNet", "scoped", "restrictFlags", "rules", "netRules"})) return false;
  l->enabled = true;
  int64_t n;
  const Value* f;
  if (!(f = r.need(v, p, "abi")) || !r.integer(*f, p + ".abi", 1, 64, &n)) return false;
  l->abi = static_cast<int>(n);
  if (!(f = r.need(v, p, "handledFs")) || !r.u64(*f, p + ".handledFs", &l->handledFs)) return false;
  if ((f = v.get("handledNet")) && !r.u64(*f, p + ".handledNet", &l->handledNet)) return false;
  if ((f = v.get("scoped")) && !r.u64(*f, p + ".scoped", &l->scoped)) return false;
  if ((f = v.get("restrictFlags")) && !r.integer(*f, p + ".restrictFlags", 0, 0xffff, &n)) return false;
  if (f) l->restrictFlags = static_cast<uint32_t>(n);
  if (const Value* rules = v.get("rules")) {
    if (rules->type != Type::Array) return r.fail(p + ".rules", "expected an array");
    for (size_t k = 0; k < rules->array.size(); k++) {
      const Value& e = rules->array[k];
      std::string ep = p + ".rules[" + std::to_string(k) + "]";
      if (!r.onlyKeys(e, ep, {"path", "access"})) return false;
      LandlockPathRule rule;
      if (!(f = r.need(e, ep, "path")) || !r.absPath(*f, ep + ".path", &rule.path)) return false;
      if (!(f = r.need(e, ep, "access")) || !r.u64(*f, ep + ".access", &rule.access)) return false;
      l->rules.push_back(rule);
    }
  }
  if (const Value* rules = v.get("netRules")) {
    if (rules->type != Type::Array) return r.fail(p + ".netRules", "expected an array");
    for (size_t k = 0; k < rules->array.size(); k++) {
      const Value& e = rules->array[k];
      std::string ep = p + ".netRules[" + std::to_string(k) + "]";
      if (!r.onlyKeys(e, ep, {"port", "access"})) return false;
      LandlockNetRule rule;
      if (!(f = r.need(e, ep, "port")) || !r.integer(*f, ep + ".port", 0, 65535, &n)) return false;
      rule.port = static_cast<uint16_t>(n);
      if (!(f = r.need(e, ep, "access")) || !r.u64(*f, ep + ".access", &rule.access)) return false;
      l->netRules.push_back(rule);
    }
  }
  return true;
}

bool decodeWorkload(Reader& r, const Value& v, const std::string& p, Workload* w) {
  if (!r.onlyKeys(v, p, {"argv", "env", "cwd", "newSession", "rlimits", "landlock", "seccomp"})) return false;
  const Value* f;
  if (!(f = r.need(v, p, "argv")) || !r.strings(*f, p + ".argv", &w->argv)) return false;
  if (w->argv.empty() || w->argv[0].empty()) return r.fail(p + ".argv", "empty command");
  if (!(f = r.need(v, p, "env")) || !r.strings(*f, p + ".env", &w->env)) return false;
  for (const auto& e : w->env)
    if (e.find('=') == std::string::npos || e[0] == '=') return r.fail(p + ".env", "entry without NAME=");
  if (!(f = r.need(v, p, "cwd")) || !r.absPath(*f, p + ".cwd", &w->cwd)) return false;
  if ((f = v.get("newSession")) && !r.boolean(*f, p + ".newSession", &w->newSession)) return false;
  if ((f = v.get("rlimits"))) {
    if (f->type != Type::Array) return r.fail(p + ".rlimits", "expected an array");
    for (size_t k = 0; k < f->array.size(); k++) {
      const Value& e = f->array[k];
      std::string ep = p + ".rlimits[" + std::to_string(k) + "]";
      if (!r.onlyKeys(e, ep, {"resource", "soft", "hard"})) return false;
      std::string name;
      const Value* g;
      if (!(g = r.need(e, ep, "resource")) || !r.str(*g, ep + ".resource", &name)) return false;
      Rlimit lim;
      lim.resource = rlimitResource(name);
      if (lim.resource < 0) return r.fail(ep + ".resource", "unknown resource '" + name + "'");
      if (!(g = r.need(e, ep, "soft")) || !r.u64(*g, ep + ".soft", &lim.soft)) return false;
      if (!(g = r.need(e, ep, "hard")) || !r.u64(*g, ep + ".hard", &lim.hard)) return false;
      if (lim.soft > lim.hard) return r.fail(ep, "soft limit above hard limit");
      w->rlimits.push_back(lim);
    }
  }
  if ((f = v.get("landlock")) && !decodeLandlock(r, *f, p + ".landlock", &w->landlock)) return false;
  if ((f = v.get("seccomp")) && f->type != Type::Null) {
    std::string b64;
    if (!r.onlyKeys(*f, p + ".seccomp", {"program", "tsync"})) return false;
    const Value* g = r.need(*f, p + ".seccomp", "tsync");
    if (!g || !r.boolean(*g, p + ".seccomp.tsync", &w->seccomp.tsync)) return false;
    g = r.need(*f, p + ".seccomp", "program");
    if (!g || !r.str(*g, p + ".seccomp.program", &b64)) return false;
    if (!base64Decode(b64, &w->seccomp.program)) return r.fail(p + ".seccomp.program", "bad base64");
    if (w->seccomp.program.empty() || w->seccomp.program.size() % 8 != 0 || w->seccomp.program.size() > 4096 * 8)
      return r.fail(p + ".seccomp.program", "not a whole BPF program of 1..4096 instructions");
    w->seccomp.enabled = true;
  }
  return true;
}

}  // namespace

bool decode(const std::string& text, Plan* out, std::string* error) {
  Value root;
  std::string perr;
  if (!json::parse(text, &root, &perr)) {
    *error = "plan is not valid JSON: " + perr;
    return false;
  }
  Reader r{error};
  const std::string p = "plan";
  if (!r.onlyKeys(root, p, {"version", "supervisorPid", "hostname", "namespaces", "identity", "mounts", "services",
                            "cgroupProcs", "forwardSignals", "inPlace", "workload"}))
    return false;
  const Value* f;
  int64_t n;
  if (!(f = r.need(root, p, "version")) || !r.integer(*f, p + ".version", 1, 1, &n)) return false;
  out->version = static_cast<int>(n);
  if (!(f = r.need(root, p, "supervisorPid")) || !r.integer(*f, p + ".supervisorPid", 1, INT32_MAX, &n)) return false;
  out->supervisorPid = n;
  if (!(f = r.need(root, p, "hostname")) || !r.str(*f, p + ".hostname", &out->hostname)) return false;
  if (out->hostname.empty() || out->hostname.size() > 64) return r.fail(p + ".hostname", "must be 1..64 bytes");

  std::vector<std::string> ns;
  if (!(f = r.need(root, p, "namespaces")) || !r.strings(*f, p + ".namespaces", &ns)) return false;
  for (const auto& name : ns) {
    int flag = namespaceFlag(name);
    if (!flag) return r.fail(p + ".namespaces", "unknown namespace '" + name + "'");
    out->namespaces |= flag;
  }
  if ((f = root.get("inPlace")) && f->type != Type::Null) {
    if (!r.onlyKeys(*f, p + ".inPlace", {"changeIdentity", "dropBoundingSet", "allowRoot"})) return false;
    out->inPlace.enabled = true;
    const char* keys[] = {"changeIdentity", "dropBoundingSet", "allowRoot"};
    bool* dest[] = {&out->inPlace.changeIdentity, &out->inPlace.dropBoundingSet, &out->inPlace.allowRoot};
    for (int k = 0; k < 3; k++) {
      const Value* g = r.need(*f, p + ".inPlace", keys[k]);
      if (!g || !r.boolean(*g, p + ".inPlace." + keys[k], dest[k])) return false;
    }
    if (out->namespaces != 0) return r.fail(p + ".namespaces", "in-place mode creates no namespaces");
  } else if (!(out->namespaces & CLONE_NEWUSER) || !(out->namespaces & CLONE_NEWNS)) {
    // The namespaces sequence needs a user namespace (unprivileged mounts) and a mount namespace.
    return r.fail(p + ".namespaces", "user and mount namespaces are required");
  }

  const Value* id = r.need(root, p, "identity");
  if (!id || !r.onlyKeys(*id, p + ".identity", {"uid", "gid", "hostUid", "hostGid", "dropSupplementaryGroups"})) return false;
  const char* idKeys[] = {"uid", "gid", "hostUid", "hostGid"};
  uint32_t* idOut[] = {&out->identity.uid, &out->identity.gid, &out->identity.hostUid, &out->identity.hostGid};
  for (int k = 0; k < 4; k++) {
    if (!(f = r.need(*id, p + ".identity", idKeys[k])) ||
        !r.integer(*f, p + ".identity." + idKeys[k], 0, 0xfffffffe, &n))
      return false;
    *idOut[k] = static_cast<uint32_t>(n);
  }
  if ((out->identity.hostUid == 0 || out->identity.hostGid == 0) && !(out->inPlace.enabled && out->inPlace.allowRoot))
    return r.fail(p + ".identity", "the sandbox never maps to host root");
  if (out->inPlace.enabled && (out->identity.uid != out->identity.hostUid || out->identity.gid != out->identity.hostGid))
    return r.fail(p + ".identity", "in-place mode has no id mapping");
  if ((f = id->get("dropSupplementaryGroups")) &&
      !r.boolean(*f, p + ".identity.dropSupplementaryGroups", &out->identity.dropSupplementaryGroups))
    return false;

  if (!(f = r.need(root, p, "mounts")) || f->type != Type::Array) return r.fail(p + ".mounts", "expected an array");
  if (out->inPlace.enabled && !f->array.empty()) return r.fail(p + ".mounts", "in-place mode mounts nothing");
  for (size_t k = 0; k < f->array.size(); k++) {
    out->mounts.emplace_back();
    if (!decodeMount(r, f->array[k], p + ".mounts[" + std::to_string(k) + "]", &out->mounts.back())) return false;
  }
  if ((f = root.get("services"))) {
    if (f->type != Type::Array) return r.fail(p + ".services", "expected an array");
    for (size_t k = 0; k < f->array.size(); k++) {
      const Value& e = f->array[k];
      std::string ep = p + ".services[" + std::to_string(k) + "]";
      if (!r.onlyKeys(e, ep, {"name", "kind", "port", "path"})) return false;
      Service s;
      std::string kind;
      const Value* g;
      if (!(g = r.need(e, ep, "name")) || !r.str(*g, ep + ".name", &s.name)) return false;
      if (!(g = r.need(e, ep, "kind")) || !r.str(*g, ep + ".kind", &kind)) return false;
      if (kind == "tcp") {
        if (!(g = r.need(e, ep, "port")) || !r.integer(*g, ep + ".port", 1, 65535, &n)) return false;
        s.port = static_cast<uint16_t>(n);
      } else if (kind == "unix") {
        s.unixSocket = true;
        if (!(g = r.need(e, ep, "path")) || !r.absPath(*g, ep + ".path", &s.path)) return false;
        if (s.path.size() >= 108) return r.fail(ep + ".path", "longer than a unix socket path can be");
      } else {
        return r.fail(ep + ".kind", "expected tcp or unix");
      }
      out->services.push_back(s);
    }
  }
  if (out->inPlace.enabled && !out->services.empty()) return r.fail(p + ".services", "in-place services are the supervisor's");
  if ((f = root.get("cgroupProcs")) && f->type != Type::Null && !r.absPath(*f, p + ".cgroupProcs", &out->cgroupProcs))
    return false;
  std::vector<std::string> signals;
  if (!(f = r.need(root, p, "forwardSignals")) || !r.strings(*f, p + ".forwardSignals", &signals)) return false;
  for (const auto& name : signals) {
    int sig = forwardableSignal(name);
    if (!sig) return r.fail(p + ".forwardSignals", "not a signal the helper forwards: '" + name + "'");
    for (int seen : out->forwardSignals)
      if (seen == sig) return r.fail(p + ".forwardSignals", "'" + name + "' twice");
    out->forwardSignals.push_back(sig);
  }
  const Value* w = r.need(root, p, "workload");
  return w && decodeWorkload(r, *w, p + ".workload", &out->workload);
}

}  // namespace plan
