import { constants } from 'node:os';

const byNumber = new Map<number, string>();
for (const [name, n] of Object.entries(constants.errno)) if (!byNumber.has(n)) byNumber.set(n, name);

/** "EPERM" for 1, …; "E<n>" for numbers Node does not name. */
export function errnoName(n: number): string {
  return byNumber.get(n) ?? `E${n}`;
}

const DESCRIPTIONS: Record<string, string> = {
  EPERM: 'operation not permitted',
  EACCES: 'permission denied',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'not a directory',
  EINVAL: 'invalid argument',
  ENOSYS: 'no such system call on this kernel',
  EOPNOTSUPP: 'operation not supported',
  ENOSPC: 'no space left, or a limit reached',
  EBUSY: 'busy',
  EEXIST: 'already exists',
  EADDRINUSE: 'address already in use',
  ECONNREFUSED: 'connection refused',
  EROFS: 'read-only file system',
  ENOEXEC: 'not an executable format',
  ESRCH: 'no such process',
};

export function errnoText(n: number): string {
  const name = errnoName(n);
  return DESCRIPTIONS[name] ? `${name} (${DESCRIPTIONS[name]})` : name;
}
