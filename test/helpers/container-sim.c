/*
 * container-sim: stands in for a container runtime's default seccomp profile (Docker's refuses
 * namespace creation and mounting), then execs. Installed in this throwaway process only.
 *
 *   container-sim PROGRAM [ARG...]           Docker-like
 *   container-sim --podman PROGRAM [ARG...]  podman-like: namespaces allowed, sethostname → EPERM
 *
 * Docker-like: clone/unshare with any CLONE_NEW* flag and setns → EPERM; clone3 → ENOSYS (as
 * Docker's profile does, so glibc falls back to clone); mount, umount2 and the new mount API →
 * EPERM. podman-like: a user namespace can be created, but sethostname in it fails with EPERM,
 * which a probe that only creates a user namespace does not predict.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "unsupported architecture"
#endif

#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)
#define LOAD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define ERRNO(e) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (e))
#define ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
/* nr == N → EPERM */
#define DENY(n) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (n), 0, 1), ERRNO(EPERM)
/* nr == N and (arg0 & NS_FLAGS) != 0 → EPERM */
#define DENY_NS(n)                                                            \
  BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (n), 0, 4),                             \
  BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])), \
  BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS, 0, 1), ERRNO(EPERM), LOAD_NR

int main(int argc, char **argv) {
  int podman = argc > 1 && strcmp(argv[1], "--podman") == 0;
  if (argc < 2 + podman) {
    fprintf(stderr, "usage: container-sim [--podman] PROGRAM [ARG...]\n");
    return 125;
  }
  struct sock_filter podmanFilter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      LOAD_NR,
      DENY(__NR_sethostname),
      ALLOW,
  };
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      LOAD_NR,
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1), ERRNO(ENOSYS),
      DENY_NS(__NR_clone),
      DENY_NS(__NR_unshare),
      DENY(__NR_setns),
      DENY(__NR_mount),
      DENY(__NR_umount2),
      DENY(__NR_fsopen),
      DENY(__NR_fsmount),
      DENY(__NR_move_mount),
      DENY(__NR_open_tree),
      ALLOW,
  };
  struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
  if (podman) prog = (struct sock_fprog){.len = sizeof podmanFilter / sizeof podmanFilter[0], .filter = podmanFilter};
  /* Root may install a filter without no_new_privs (CAP_SYS_ADMIN); others need it, as Docker sets it then. */
  if (geteuid() != 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    perror("container-sim: PR_SET_NO_NEW_PRIVS");
    return 125;
  }
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
    perror("container-sim: seccomp");
    return 125;
  }
  execvp(argv[1 + podman], argv + 1 + podman);
  fprintf(stderr, "container-sim: exec %s: %s\n", argv[1 + podman], strerror(errno));
  return 127;
}
