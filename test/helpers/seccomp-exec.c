/*
 * seccomp-exec: installs a compiled seccomp filter on itself, then execs a program, as the
 * workload's last setup step does (native/init/seccomp.cc). Tests use it so filters are only
 * ever installed in throwaway child processes, never in the test runner.
 *
 *   seccomp-exec FILTER.bpf PROGRAM [ARG...]     FILTER.bpf: struct sock_filter[], host order
 *   seccomp-exec none PROGRAM [ARG...]           no_new_privs only (the control run)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: seccomp-exec FILTER.bpf|none PROGRAM [ARG...]\n");
    return 125;
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    perror("seccomp-exec: PR_SET_NO_NEW_PRIVS");
    return 125;
  }
  if (strcmp(argv[1], "none") != 0) {
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
      perror("seccomp-exec: open filter");
      return 125;
    }
    static struct sock_filter insns[BPF_MAXINSNS + 1];
    size_t n = fread(insns, sizeof insns[0], BPF_MAXINSNS + 1, f);
    fclose(f);
    if (n == 0 || n > BPF_MAXINSNS) {
      fprintf(stderr, "seccomp-exec: filter must hold 1..%d instructions\n", BPF_MAXINSNS);
      return 125;
    }
    struct sock_fprog prog = {.len = (unsigned short)n, .filter = insns};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0) {
      perror("seccomp-exec: seccomp(SECCOMP_SET_MODE_FILTER)");
      return 125;
    }
  }
  execvp(argv[2], argv + 2);
  fprintf(stderr, "seccomp-exec: exec %s: %s\n", argv[2], strerror(errno));
  return 127;
}
