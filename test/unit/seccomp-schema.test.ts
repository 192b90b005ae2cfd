import { describe, expect, it } from 'vitest';
import { z } from 'zod';

import { resolveArgValue } from '../../src/policy/seccomp/values.js';
import { SeccompSchema } from '../../src/profile/seccomp.js';

function issues(input: unknown): string[] {
  const r = SeccompSchema.safeParse(input);
  expect(r.success).toBe(false);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('SeccompSchema', () => {
  it('defaults to enforce with no entries, also when nested under a profile with prefault', () => {
    expect(SeccompSchema.parse({})).toEqual({ mode: 'enforce', deny: [], allow: [] });
    const Profile = z.object({ seccomp: SeccompSchema.prefault({}) });
    expect(Profile.parse({}).seccomp).toEqual({ mode: 'enforce', deny: [], allow: [] });
  });

  it('fills errno EPERM, args [] and width 64 in entries', () => {
    const s = SeccompSchema.parse({
      deny: [{ syscall: 'ptrace', reason: 'r' }, { syscall: 'socket', args: [{ index: 0, op: 'eq', value: 'AF_PACKET' }], reason: 'r' }],
    });
    expect(s.deny[0]).toEqual({ syscall: 'ptrace', args: [], errno: 'EPERM', reason: 'r' });
    expect(s.deny[1]!.args[0]).toEqual({ index: 0, op: 'eq', value: 'AF_PACKET', width: 64 });
  });

  it('names an unknown syscall and suggests close ones', () => {
    expect(issues({ deny: [{ syscall: 'ptrac', reason: 'r' }] })).toEqual([
      'deny.0.syscall: unknown system call "ptrac" (not in the x86_64 or aarch64 tables); did you mean ptrace? Use the name from man 2 syscalls, without a sys_ prefix.',
    ]);
    expect(issues({ deny: [{ syscall: 'sys_unshare', reason: 'r' }] })[0]).toContain('did you mean unshare');
    expect(issues({ allow: [{ syscall: 'io_uring_setpu', reason: 'r' }] })[0]).toContain('io_uring_setup');
  });

  it('accepts names that exist on only one architecture', () => {
    expect(SeccompSchema.parse({ deny: [{ syscall: 'iopl', reason: 'x86 only' }] }).deny).toHaveLength(1);
  });

  it('rejects unknown errno names with a suggestion', () => {
    expect(issues({ deny: [{ syscall: 'ptrace', errno: 'EPRM', reason: 'r' }] })[0]).toMatch(/unknown errno "EPRM"; did you mean EPERM/);
  });

  it('requires a reason and rejects unknown keys', () => {
    expect(issues({ deny: [{ syscall: 'ptrace' }] })[0]).toMatch(/^deny\.0\.reason/);
    expect(issues({ deny: [{ syscall: 'ptrace', reason: 'r', action: 'kill' }] })[0]).toMatch(/action/);
    expect(issues({ allow: [{ syscall: 'ptrace', reason: 'r', errno: 'EPERM' }] })[0]).toMatch(/errno/);
    expect(issues({ mode: 'audit' })[0]).toMatch(/^mode/);
  });

  it('teaches about masks', () => {
    const base = { syscall: 'clone', reason: 'r' };
    expect(issues({ deny: [{ ...base, args: [{ index: 0, op: 'masked-eq', value: 0 }] }] })[0]).toMatch(/needs a mask/);
    expect(issues({ deny: [{ ...base, args: [{ index: 0, op: 'eq', value: 0, mask: 1 }] }] })[0]).toMatch(/mask only applies to op masked-eq/);
    expect(issues({ deny: [{ ...base, args: [{ index: 0, op: 'masked-eq', mask: 'CLONE_NEWUSER', value: 'CLONE_NEWNS' }] }] })[0]).toMatch(/bits outside mask .* can never match/);
    expect(issues({ deny: [{ ...base, args: [{ index: 0, op: 'masked-eq', mask: 0, value: 0 }] }] })[0]).toMatch(/mask of 0/);
  });

  it('rejects values that do not fit the width, imprecise numbers and unknown constant names', () => {
    const arg = (value: unknown, width?: number) => ({ deny: [{ syscall: 'ioctl', reason: 'r', args: [{ index: 1, op: 'eq', value, ...(width ? { width } : {}) }] }] });
    expect(issues(arg('0x100000000', 32))[0]).toMatch(/does not fit in 32 bits; use width: 64/);
    expect(issues(arg(2 ** 60))[0]).toMatch(/not an exact integer .* a string such as "0xffffffffffffffff"/);
    expect(issues(arg('TIOCST'))[0]).toMatch(/"TIOCST" is neither a number nor a known constant \(did you mean TIOCSTI/);
    expect(issues(arg('AF_UNIX |'))[0]).toMatch(/empty term/);
    expect(issues({ deny: [{ syscall: 'ioctl', reason: 'r', args: [{ index: 6, op: 'eq', value: 1 }] }] })[0]).toMatch(/^deny\.0\.args\.0\.index/);
  });
});

describe('resolveArgValue', () => {
  it('reads numbers, hex, negative numbers as two\'s complement, and OR-ed constant names', () => {
    expect(resolveArgValue(0x5412, 32)).toBe(0x5412n);
    expect(resolveArgValue('0x5412', 32)).toBe(0x5412n);
    expect(resolveArgValue('TIOCSTI', 32)).toBe(0x5412n);
    expect(resolveArgValue(-1, 32)).toBe(0xffffffffn);
    expect(resolveArgValue('-1', 64)).toBe(0xffffffffffffffffn);
    expect(resolveArgValue('0xffffffffffffffff', 64)).toBe(0xffffffffffffffffn);
    expect(resolveArgValue('CLONE_NEWUSER | CLONE_NEWNS', 64)).toBe(0x10020000n);
    expect(resolveArgValue('AF_NETLINK', 32)).toBe(16n);
    expect(() => resolveArgValue('-0x80000001', 32)).toThrow(/does not fit in 32 bits/);
  });
});
