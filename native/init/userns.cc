#include "userns.h"

#include <cerrno>
#include <fcntl.h>
#include <linux/securebits.h>
#include <string>
#include <sys/prctl.h>
#include <unistd.h>

#include "errors.h"

namespace userns {
namespace {

bool writeFile(const std::string& path, const std::string& content, const char* step) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errors::fail(step, errno, path);
  ssize_t n = write(fd, content.data(), content.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(content.size())) return errors::fail(step, n < 0 ? err : EIO, path, content);
  return true;
}

}  // namespace

bool writeMapsFromParent(pid_t child, const plan::Identity& id) {
  std::string base = "/proc/" + std::to_string(child) + "/";
  // "deny" first: an unprivileged writer may not map gids otherwise, and the sandbox must not be
  // able to drop a supplementary group to escape a group-deny permission.
  if (!writeFile(base + "setgroups", "deny", "userns.setgroups")) return false;
  if (!writeFile(base + "uid_map", std::to_string(id.uid) + " " + std::to_string(id.hostUid) + " 1\n",
                 "userns.uid_map"))
    return false;
  return writeFile(base + "gid_map", std::to_string(id.gid) + " " + std::to_string(id.hostGid) + " 1\n",
                   "userns.gid_map");
}

bool becomeSandboxUser(const plan::Identity& id) {
  // Without NO_SETUID_FIXUP a uid change would clear the capabilities init still needs.
  if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP) != 0) return errors::fail("userns.securebits", errno);
  if (setresgid(id.gid, id.gid, id.gid) != 0) return errors::fail("userns.setresgid", errno);
  if (setresuid(id.uid, id.uid, id.uid) != 0) return errors::fail("userns.setresuid", errno);
  return true;
}

}  // namespace userns
