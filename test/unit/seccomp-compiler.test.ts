import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { ClawjailError } from '../../src/errors.js';
import { buildSeccompIr, compileSeccomp, disassembleBpf, syscallTable, SECCOMP_INSTALL_FLAGS } from '../../src/plan/seccomp/index.js';
import { describeRet, runSeccompProgram } from '../helpers/bpf-interp.js';

const X86 = 0xc000003e;

function thrown(fn: () => unknown): ClawjailError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ClawjailError);
    return e as ClawjailError;
  }
  return expect.fail('expected a ClawjailError');
}

const run = (program: Buffer, nr: number, args: bigint[] = [], arch = X86) => describeRet(runSeccompProgram(program, { nr, arch, args }).ret);
const nr = (name: string, arch: 'x86_64' | 'aarch64' = 'x86_64') => syscallTable(arch).byName.get(name)!;

describe('generated syscall tables', () => {
  it('hold the well-known numbers of both ABIs', () => {
    expect([nr('read'), nr('getppid'), nr('clone'), nr('clone3'), nr('io_uring_setup')]).toEqual([0, 110, 56, 435, 425]);
    expect([nr('read', 'aarch64'), nr('getppid', 'aarch64'), nr('clone', 'aarch64'), nr('clone3', 'aarch64'), nr('newfstatat', 'aarch64')]).toEqual([63, 173, 220, 435, 79]);
    // aarch64 has the generic table only: no legacy open/fork, no x86 port I/O.
    for (const name of ['open', 'fork', 'iopl', 'ioperm', 'stat']) expect(syscallTable('aarch64').byName.has(name)).toBe(false);
    expect(syscallTable('aarch64').byName.has('renameat')).toBe(true); // __ARCH_WANT_RENAMEAT
    expect(syscallTable('aarch64').byName.has('memfd_secret')).toBe(true); // __ARCH_WANT_MEMFD_SECRET
  });

  const headers = existsSync('/usr/include/x86_64-linux-gnu/asm/unistd_64.h') && existsSync('/usr/include/asm-generic/unistd.h');
  const cc = spawnSync('cc', ['--version']).status === 0;
  describe.skipIf(!headers || !cc)('regeneration (needs cc and the Debian x86_64 uapi headers)', () => {
    it('scripts/gen-syscalls.mjs --check finds the committed tables up to date', () => {
      const script = fileURLToPath(new URL('../../scripts/gen-syscalls.mjs', import.meta.url));
      expect(() => execFileSync(process.execPath, [script, '--check'], { stdio: 'pipe' })).not.toThrow();
    });
  });
  if (!headers || !cc) console.warn('seccomp: skipping the table regeneration check: cc or /usr/include uapi headers missing');
});

describe('compileSeccomp', () => {
  it('checks the architecture first and kills a foreign one', () => {
    const { program, auditArch, flags } = compileSeccomp({}, 'x86_64');
    expect(auditArch).toBe(X86);
    expect(flags).toBe(SECCOMP_INSTALL_FLAGS);
    expect(disassembleBpf(program).slice(0, 4)).toEqual([
      '0000: ld arch',
      '0001: jeq #0xc000003e ? 3 : 2',
      '0002: ret KILL_PROCESS',
      '0003: ld nr',
    ]);
  });

  it('with no entries still kills x32 and answers ENOSYS beyond the table', () => {
    const { program } = compileSeccomp({}, 'x86_64');
    expect(run(program, nr('getpid'))).toBe('allow');
    expect(run(program, 0x40000000 | nr('getpid'))).toBe('kill_process');
    expect(run(program, syscallTable('x86_64').maxNr + 1)).toBe('errno:38');
    expect(run(program, nr('getpid'), [], 0x40000003)).toBe('kill_process');
  });

  it('refuses i386 and unknown architectures with ERR_CLAWJAIL_PLAN', () => {
    const e = thrown(() => compileSeccomp({}, 'i386' as never));
    expect(e.code).toBe('ERR_CLAWJAIL_PLAN');
    expect(e.message).toMatch(/i386 is refused on purpose: .*socketcall/);
    expect(e.hint).toMatch(/x86_64, aarch64/);
    expect(thrown(() => compileSeccomp({}, 'riscv64' as never)).message).toMatch(/no syscall table for "riscv64"/);
  });

  it('rejects an invalid section with the path of each problem', () => {
    const e = thrown(() => compileSeccomp({ deny: [{ syscall: 'ptrac', reason: 'r' }] } as never, 'x86_64'));
    expect(e.code).toBe('ERR_CLAWJAIL_PLAN');
    expect(e.message).toMatch(/seccomp\.deny\.0\.syscall: unknown system call "ptrac".*did you mean ptrace/);
  });

  it('refuses a program over 4096 instructions and says what to do', () => {
    const names = [...syscallTable('x86_64').byName.keys()].slice(0, 300);
    const deny = names.flatMap((syscall) =>
      [0, 1, 2].map((i) => ({ syscall, reason: 'r', args: [{ index: i, op: 'gt' as const, value: '0x1234567800000000' }, { index: i + 3, op: 'ne' as const, value: 7 }] })),
    );
    const e = thrown(() => compileSeccomp({ deny }, 'x86_64'));
    expect(e.code).toBe('ERR_CLAWJAIL_PLAN');
    expect(e.message).toMatch(/is \d+ instructions, over the kernel's limit of 4096/);
    expect(e.hint).toMatch(/remove or merge/);
  });

  it('mode off gives an empty program (install nothing)', () => {
    const c = compileSeccomp({ mode: 'off', deny: [{ syscall: 'ptrace', reason: 'r' }] }, 'x86_64');
    expect(c.program.length).toBe(0);
    expect(c.instructions).toBe(0);
  });

  it('skips names the architecture lacks and reports them', () => {
    const c = compileSeccomp({ deny: [{ syscall: 'iopl', reason: 'r' }, { syscall: 'ptrace', reason: 'r' }] }, 'aarch64');
    expect(c.skipped).toEqual(['iopl']);
    expect(c.denied).toEqual(['ptrace']);
  });

  it('lets an unconditional allow override deny entries (a debugging profile re-enables ptrace)', () => {
    const c = compileSeccomp({ deny: [{ syscall: 'ptrace', reason: 'r' }], allow: [{ syscall: 'ptrace', reason: 'debugging' }] }, 'x86_64');
    expect(c.denied).toEqual([]);
    expect(run(c.program, nr('ptrace'))).toBe('allow');
  });

  it('gives the errno of the first matching deny entry', () => {
    const c = compileSeccomp({
      deny: [
        { syscall: 'kill', args: [{ index: 1, op: 'eq', value: 9 }], errno: 'EACCES', reason: 'r' },
        { syscall: 'kill', errno: 'ENOSYS', reason: 'r' },
        { syscall: 'kill', errno: 'EPERM', reason: 'never reached' },
      ],
    }, 'x86_64');
    expect(run(c.program, nr('kill'), [1n, 9n])).toBe('errno:13');
    expect(run(c.program, nr('kill'), [1n, 15n])).toBe('errno:38');
  });

  it('drops clauses that cannot change the outcome', () => {
    const ir = buildSeccompIr({
      mode: 'enforce',
      deny: [{ syscall: 'kill', args: [{ index: 1, op: 'eq', value: 9, width: 64 }], errno: 'EPERM', reason: 'r' }],
      allow: [{ syscall: 'getpid', args: [{ index: 0, op: 'eq', value: 1, width: 64 }], reason: 'nothing denies getpid' }],
    }, 'x86_64');
    expect(ir.decisions.map((d) => d.name)).toEqual(['kill']);
  });

  it('compares only the low 32 bits when width is 32, and all 64 otherwise', () => {
    const c = compileSeccomp({
      deny: [
        { syscall: 'ioctl', args: [{ index: 1, op: 'eq', value: 'TIOCSTI', width: 32 }], reason: 'r' },
        { syscall: 'kill', args: [{ index: 1, op: 'eq', value: 9 }], reason: 'r' },
      ],
    }, 'x86_64');
    expect(run(c.program, nr('ioctl'), [0n, 0x5412n | (1n << 32n)])).toBe('errno:1');
    expect(run(c.program, nr('kill'), [0n, 9n | (1n << 32n)])).toBe('allow');
  });
});
