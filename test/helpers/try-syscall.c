/*
 * try-syscall: performs one raw system call and prints what happened, for tests that prove a
 * boundary by attempting to cross it.
 *
 *   try-syscall [--int80] NR [ARG...]
 *
 * NR and ARGs are numbers (decimal, 0x hex, or negative); an ARG of "@buf" is a pointer to a
 * zeroed 4 KiB scratch buffer. Prints "OK <return value>" or the errno name (EPERM, ENOSYS…)
 * and exits 0 either way; a seccomp kill shows up as the process dying of SIGSYS.
 * --int80 makes the call through the i386 ABI (int $0x80) on x86_64.
 * Calls are made with arguments that fail harmlessly when nothing blocks them (bad pointers,
 * invalid flags), so that the errno tells which layer answered.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char scratch[4096];

static long parse(const char *s) {
  if (strcmp(s, "@buf") == 0) return (long)scratch;
  char *end;
  errno = 0;
  long v = s[0] == '-' ? strtol(s, &end, 0) : (long)strtoull(s, &end, 0);
  if (errno || *end) {
    fprintf(stderr, "try-syscall: bad number %s\n", s);
    exit(2);
  }
  return v;
}

#ifdef __x86_64__
/* i386 ABI: nr in eax, arguments in ebx ecx edx esi edi (the sixth, in ebp, is not needed). */
static long int80(long nr, long a, long b, long c, long d, long e) {
  long ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e) : "memory", "r8", "r9", "r10", "r11");
  return ret;
}
#endif

int main(int argc, char **argv) {
  int i386 = 0;
  int first = 1;
  if (argc > 1 && strcmp(argv[1], "--int80") == 0) {
    i386 = 1;
    first = 2;
  }
  if (argc <= first) {
    fprintf(stderr, "usage: try-syscall [--int80] NR [ARG...]\n");
    return 2;
  }
  long nr = parse(argv[first]);
  long a[6] = {0};
  for (int i = 0; i < 6 && first + 1 + i < argc; i++) a[i] = parse(argv[first + 1 + i]);

  long ret;
  int err = 0;
  if (i386) {
#ifdef __x86_64__
    ret = int80(nr, a[0], a[1], a[2], a[3], a[4]);
    if (ret < 0 && ret > -4096) {
      err = (int)-ret;
      ret = -1;
    }
#else
    fprintf(stderr, "try-syscall: --int80 exists only on x86_64\n");
    return 2;
#endif
  } else {
    errno = 0;
    ret = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    err = ret == -1 ? errno : 0;
  }
#ifdef SYS_clone
  /* A successful raw clone without CLONE_VM is a fork: the child leaves at once, the parent
   * reaps it, so only one line is printed. */
  if (!i386 && nr == SYS_clone && ret == 0) _exit(0);
  if (!i386 && nr == SYS_clone && ret > 0) waitpid((pid_t)ret, NULL, __WALL);
#endif
  if (err) {
    const char *name = strerrorname_np(err);
    printf("%s\n", name ? name : "E?");
  } else {
    printf("OK %ld\n", ret);
  }
  return 0;
}
