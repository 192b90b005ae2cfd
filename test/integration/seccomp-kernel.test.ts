import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

import { cachedInstallPaths, OPENCLAW_VERSION, resolveCacheDir } from '../../src/openclaw/install.js';
import { compileSeccomp, syscallTable } from '../../src/plan/seccomp/index.js';
import { SeccompSchema } from '../../src/profile/seccomp.js';
import { buildSeccompTools, hostSeccompArch, runUnder, seccompUnsupportedReason, type SeccompTools } from '../helpers/seccomp-native.js';

// Real-kernel checks of the default filter. Every filter is installed by seccomp-exec in a
// child process. Each denied call is made with arguments that fail harmlessly when nothing
// blocks it (bad pointers, invalid flags), and the same call is also made without the filter:
// the test requires the filtered errno to be the policy's AND the unfiltered one to differ,
// so it is the filter, not the kernel's own checks, that answered.

const unsupported = seccompUnsupportedReason();
if (unsupported) console.warn(`seccomp kernel tests skipped: ${unsupported}`);
const isRoot = process.getuid?.() === 0;
if (!unsupported && !isRoot) console.warn('seccomp denied-call table skipped: unprivileged, the kernel itself answers EPERM to most of these calls, so the filter\'s EPERM would prove nothing');

const arch = hostSeccompArch() ?? 'x86_64';
const table = syscallTable(arch);
const defaultSection = SeccompSchema.parse(parse(readFileSync(fileURLToPath(new URL('../../profiles/default.yaml', import.meta.url)), 'utf8')).seccomp);

type Case = [name: string, args: string[], expected: string];
const P = '1'; // a pointer into unmapped memory: EFAULT when nothing blocks the call
const DENIED: Case[] = [
  ['ptrace', ['2', '0x7fffffff', '0', '0'], 'EPERM'],
  ['process_vm_readv', ['0x7fffffff', '0', '0', '0', '0', '1'], 'EPERM'],
  ['process_vm_writev', ['0x7fffffff', '0', '0', '0', '0', '1'], 'EPERM'],
  ['bpf', ['0x7fffffff', '0', '0'], 'EPERM'],
  ['perf_event_open', ['0', '0', '-1', '-1', '0xffffffff'], 'EPERM'],
  ['userfaultfd', ['0xffffffff'], 'EPERM'],
  ['keyctl', ['0x7fffffff'], 'EPERM'],
  ['add_key', [P, P, '0', '0', '0'], 'EPERM'],
  ['request_key', [P, P, '0', '0'], 'EPERM'],
  ['memfd_secret', ['0xffffffff'], 'EPERM'], // bad flags: EINVAL unfiltered (ENOSYS where secretmem is off)
  ['modify_ldt', ['0x7fffffff', '0', '0'], 'EPERM'], // unknown function: ENOSYS unfiltered; x86_64 only
  ['io_uring_setup', ['0', '0'], 'ENOSYS'],
  ['io_uring_enter', ['-1', '0', '0', '0', '0', '0'], 'ENOSYS'],
  ['io_uring_register', ['-1', '0', '0', '0'], 'ENOSYS'],
  ['kexec_load', ['0', '0xffff', '0', '0xffffffff'], 'EPERM'],
  ['kexec_file_load', ['-1', '-1', '0', '0', '0xffffffff'], 'EPERM'],
  ['init_module', ['0', '0', '0'], 'EPERM'],
  ['finit_module', ['-1', '0', '0xffffffff'], 'EPERM'],
  ['delete_module', [P, '0'], 'EPERM'],
  ['acct', [P], 'EPERM'],
  ['swapon', [P, '0'], 'EPERM'],
  ['swapoff', [P], 'EPERM'],
  ['reboot', ['0', '0', '0', '0'], 'EPERM'], // wrong magic numbers: EINVAL unfiltered
  ['syslog', ['0x7fff', '0', '0'], 'EPERM'],
  ['quotactl', ['0', P, '0', '0'], 'EPERM'],
  ['lookup_dcookie', ['0', '0', '0'], 'EPERM'],
  ['iopl', ['4'], 'EPERM'],
  ['ioperm', ['0xffffffff', '1', '0'], 'EPERM'],
  ['mount', ['0', '0', '0', '0', '0'], 'EPERM'],
  ['umount2', [P, '0xffffffff'], 'EPERM'],
  ['pivot_root', [P, P], 'EPERM'],
  ['chroot', [P], 'EPERM'],
  ['fsopen', [P, '0xffffffff'], 'EPERM'],
  ['fsconfig', ['-1', '0', '0', '0', '0'], 'EPERM'],
  ['fsmount', ['-1', '0', '0'], 'EPERM'],
  ['fspick', ['-1', P, '0xffffffff'], 'EPERM'],
  ['move_mount', ['-1', P, '-1', P, '0xffffffff'], 'EPERM'],
  ['open_tree', ['-1', P, '0xffffffff'], 'EPERM'],
  ['mount_setattr', ['-1', P, '0xffffffff', '0', '0'], 'EPERM'],
  ['name_to_handle_at', ['-1', P, P, P, '0xffffffff'], 'EPERM'],
  ['open_by_handle_at', ['-1', P, '0'], 'EPERM'],
  ['setns', ['-1', '0'], 'EPERM'],
  ['unshare', ['CLONE_NEWUSER'], 'EPERM'],
  ['unshare', ['CLONE_NEWNET'], 'EPERM'],
  ['unshare', ['CLONE_NEWNS'], 'EPERM'],
  ['unshare', ['CLONE_NEWTIME'], 'EPERM'],
  ['unshare', ['CLONE_NEWUSER|high'], 'EPERM'],
  ['clone', ['CLONE_NEWUSER|SIGCHLD', '0', '0', '0', '0'], 'EPERM'],
  ['clone', ['CLONE_NEWPID|SIGCHLD', '0', '0', '0', '0'], 'EPERM'],
  ['clone3', ['0', '0'], 'ENOSYS'],
  ['personality', ['PER_LINUX32'], 'EPERM'],
  ['personality', ['READ_IMPLIES_EXEC'], 'EPERM'],
  ['ioctl', ['-1', 'TIOCSTI', '0'], 'EPERM'],
  ['ioctl', ['-1', 'TIOCSTI|high', '0'], 'EPERM'],
  ['ioctl', ['-1', 'TIOCLINUX', '0'], 'EPERM'],
  ['socket', ['AF_PACKET', '3', '0'], 'EPERM'],
  ['socket', ['AF_PACKET|high', '3', '0'], 'EPERM'],
  ['socket', ['AF_VSOCK', '1', '0'], 'EPERM'],
  ['socket', ['AF_NETLINK', '3', 'NETLINK_AUDIT'], 'EPERM'],
  ['socket', ['AF_NETLINK', '3', 'NETLINK_KOBJECT_UEVENT'], 'EPERM'],
  ['socketpair', ['AF_INET', '1', '0', '@buf'], 'EPERM'],
];

const ALLOWED: Case[] = [
  ['getpid', [], 'OK'],
  ['getppid', [], 'OK'],
  ['unshare', ['CLONE_FILES'], 'OK'],
  ['clone', ['SIGCHLD', '0', '0', '0', '0'], 'OK'],
  ['personality', ['PER_LINUX'], 'OK'],
  ['personality', ['0xffffffff'], 'OK'],
  ['personality', ['0xffffffff|high'], 'OK'], // the kernel reads an unsigned int: still a query
  ['ioctl', ['-1', 'TCGETS', '0'], 'EBADF'],
  ['socket', ['AF_UNIX', '1', '0'], 'OK'],
  ['socket', ['AF_INET', '1', '0'], 'OK'],
  ['socket', ['AF_INET6', '2', '0'], 'OK'],
  ['socket', ['AF_INET|high', '1', '0'], 'OK'],
  ['socket', ['AF_NETLINK', '3', 'NETLINK_ROUTE'], 'OK'],
  ['socketpair', ['AF_UNIX', '1', '0', '@buf'], 'OK'],
  ['openat', ['-100', '0', '0'], 'EFAULT'], // AT_FDCWD, NULL path: the kernel's own EFAULT
];

const NAMED: Record<string, bigint> = {
  CLONE_NEWUSER: 0x10000000n, CLONE_NEWNET: 0x40000000n, CLONE_NEWNS: 0x20000n, CLONE_NEWPID: 0x20000000n, CLONE_NEWTIME: 0x80n,
  CLONE_FILES: 0x400n, SIGCHLD: 17n, PER_LINUX: 0n, PER_LINUX32: 8n, READ_IMPLIES_EXEC: 0x400000n,
  TIOCSTI: 0x5412n, TIOCLINUX: 0x541cn, TCGETS: 0x5401n,
  AF_UNIX: 1n, AF_INET: 2n, AF_INET6: 10n, AF_NETLINK: 16n, AF_PACKET: 17n, AF_VSOCK: 40n,
  NETLINK_ROUTE: 0n, NETLINK_AUDIT: 9n, NETLINK_KOBJECT_UEVENT: 15n,
  // Upper-half bits the kernel ignores for int arguments: a filter comparing 64 bits would miss the match.
  high: 1n << 32n,
};
function arg(text: string): string {
  if (text === '@buf' || /^-?(0x[0-9a-f]+|\d+)$/i.test(text)) return text;
  const term = (t: string) => (/^(0x[0-9a-f]+|\d+)$/i.test(t) ? BigInt(t) : NAMED[t] ?? expect.fail(`unknown name ${t}`));
  return `0x${text.split('|').reduce((acc, t) => acc | term(t), 0n).toString(16)}`;
}
const callArgv = (tools: SeccompTools, name: string, args: string[]) => [tools.trySyscall, String(table.byName.get(name) ?? expect.fail(`${name} not in the ${arch} table`)), ...args.map(arg)];
const firstWord = (out: string) => out.trim().split(/\s+/)[0] ?? '';

describe.skipIf(unsupported !== undefined)(`default seccomp filter in the running kernel (${arch})`, () => {
  const tools = unsupported ? undefined! : buildSeccompTools();
  afterAll(() => tools?.cleanup());
  const compiled = unsupported ? undefined! : compileSeccomp(defaultSection, arch);
  const filter = unsupported ? '' : tools.writeFilter('default.bpf', compiled.program);
  const logFilter = unsupported ? '' : tools.writeFilter('log.bpf', compileSeccomp({ ...defaultSection, mode: 'log' }, arch).program);
  const cases = DENIED.filter(([name]) => table.byName.has(name));

  describe.skipIf(!isRoot)('denied calls fail with the policy\'s errno, and only because of the filter', () => {
    it.each(cases)('%s(%j) → %s', (name, args, expected) => {
      const argv = callArgv(tools, name, args);
      const control = runUnder(tools, 'none', argv);
      const filtered = runUnder(tools, filter, argv);
      expect(filtered.signal, filtered.stderr).toBeNull();
      expect(firstWord(filtered.stdout)).toBe(expected);
      expect(control.signal, control.stderr).toBeNull();
      expect(firstWord(control.stdout), 'the unfiltered call must fail differently, or this case proves nothing').not.toBe(expected);
    });
  });

  it.each(ALLOWED.filter(([name]) => table.byName.has(name)))('allowed: %s(%j) → %s', (name, args, expected) => {
    const r = runUnder(tools, filter, callArgv(tools, name, args));
    expect(r.signal, r.stderr).toBeNull();
    expect(firstWord(r.stdout)).toBe(expected);
  });

  it('kills an x32 system call with SIGSYS', () => {
    const x32getpid = String(0x40000000 + table.byName.get('getpid')!);
    const r = runUnder(tools, filter, [tools.trySyscall, x32getpid]);
    expect(r.stdout).toBe('');
    expect(r.signal).toBe('SIGSYS');
  });

  const i386Works = !unsupported && arch === 'x86_64' && firstWord(spawnSync(tools.trySyscall, ['--int80', '20'], { encoding: 'utf8' }).stdout) === 'OK';
  if (!unsupported && !i386Works) console.warn('seccomp: i386 test skipped: no IA32 emulation in this kernel (int $0x80 does not work even unfiltered)');
  it.skipIf(!i386Works)('kills an i386 system call (int $0x80, foreign arch) with SIGSYS', () => {
    const r = runUnder(tools, filter, [tools.trySyscall, '--int80', '20']); // getpid in the i386 table
    expect(r.stdout).toBe('');
    expect(r.signal).toBe('SIGSYS');
  });

  // Numbers above the table are syscalls the running kernel may have and no one reviewed: the
  // first one past the table, and open_tree_attr (467, Linux 6.15), new mount API that a
  // default-allow filter would otherwise let through. Numbers from 424 on are shared by all arches.
  const newer = [table.maxNr + 1, 467].filter((n, i, a) => n > table.maxNr && a.indexOf(n) === i);
  const unfiltered = (n: number) => firstWord(spawnSync(tools?.trySyscall ?? 'false', [String(n), '-1', '1', '0xffffffff', '0', '0'], { encoding: 'utf8' }).stdout);
  for (const n of newer) {
    const kernelHasIt = !unsupported && !['ENOSYS', ''].includes(unfiltered(n));
    if (!unsupported && !kernelHasIt) console.warn(`seccomp: newer-syscall test for ${n} skipped: this kernel has no syscall ${n} either`);
    it.skipIf(!kernelHasIt)(`answers ENOSYS to syscall ${n}, newer than the table (Linux ${table.headerVersion})`, () => {
      const r = runUnder(tools, filter, [tools.trySyscall, String(n), '-1', '1', '0xffffffff', '0', '0']);
      expect(r.signal, r.stderr).toBeNull();
      expect(firstWord(r.stdout)).toBe('ENOSYS');
    });
  }

  it('in log mode lets denied calls through (the kernel logs them) but still kills x32', () => {
    const argv = callArgv(tools, 'syslog', ['0x7fff', '0', '0']);
    expect(firstWord(runUnder(tools, logFilter, argv).stdout)).toBe(firstWord(runUnder(tools, 'none', argv).stdout));
    expect(firstWord(runUnder(tools, logFilter, callArgv(tools, 'clone3', ['0', '0'])).stdout)).not.toBe('ENOSYS');
    expect(runUnder(tools, logFilter, [tools.trySyscall, String(0x40000000 + table.byName.get('getpid')!)]).signal).toBe('SIGSYS');
  });

  it('runs a shell normally', () => {
    const r = runUnder(tools, filter, ['/bin/sh', '-c', 'echo start; for i in 1 2 3; do echo $i; done | sort -r | tr "\\n" " "; ls / >/dev/null && cat /proc/self/status | grep -E "^(Seccomp|NoNewPrivs):" | tr -s "\\t" " "']);
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('start\n3 2 1 NoNewPrivs: 1\nSeccomp: 2\n');
  });

  // fs through libuv (io_uring → ENOSYS → thread pool), child processes (clone3 → ENOSYS →
  // clone), worker threads (clone with CLONE_VM|CLONE_THREAD), TCP over loopback, NETLINK_ROUTE.
  const nodeScript = `
    const fs = require('fs'), os = require('os'), path = require('path'), net = require('net');
    const { execFileSync } = require('child_process');
    const { Worker } = require('worker_threads');
    (async () => {
      const f = path.join(os.tmpdir(), 'cj-' + process.pid);
      await fs.promises.writeFile(f, 'data');
      const read = await fs.promises.readFile(f, 'utf8');
      await fs.promises.unlink(f);
      const child = execFileSync('/bin/echo', ['child']).toString().trim();
      const worker = await new Promise((res, rej) => { const w = new Worker('require("worker_threads").parentPort.postMessage(6*7)', { eval: true }); w.on('message', res); w.on('error', rej); });
      const echoed = await new Promise((res, rej) => {
        const srv = net.createServer((s) => s.pipe(s)).listen(0, '127.0.0.1', () => {
          const c = net.connect(srv.address().port, '127.0.0.1', () => c.end('ping'));
          let got = ''; c.on('data', (d) => got += d); c.on('end', () => { srv.close(); res(got); }); c.on('error', rej);
        });
      });
      const ifaces = Object.keys(os.networkInterfaces()).includes('lo');
      console.log(JSON.stringify({ read, child, worker, echoed, ifaces }));
    })().catch((e) => { console.error(e); process.exit(1); });
  `;
  const want = { read: 'data', child: 'child', worker: 42, echoed: 'ping', ifaces: true };

  it('runs the host node (fs, child process, worker, TCP, netlink) normally', () => {
    const r = runUnder(tools, filter, ['/usr/bin/node', '-e', nodeScript], { env: { PATH: '/usr/bin:/bin', TMPDIR: tools.dir, HOME: tools.dir } });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(want);
  });

  // The Node that OpenClaw runs on (≥ 24), from clawjail's cache or CLAWJAIL_TEST_NODE24.
  const node24 = process.env.CLAWJAIL_TEST_NODE24 ?? cachedInstallPaths(resolveCacheDir(), OPENCLAW_VERSION).nodeBin;
  const node24Version = !unsupported && existsSync(node24) ? spawnSync(node24, ['--version'], { encoding: 'utf8' }).stdout.trim() : '';
  const haveNode24 = Number(/^v(\d+)/.exec(node24Version)?.[1] ?? 0) >= 24;
  if (!unsupported && !haveNode24) console.warn(`seccomp: Node 24 test skipped: no Node >= 24 at ${node24} (install OpenClaw with clawjail, or set CLAWJAIL_TEST_NODE24)`);
  it.skipIf(!haveNode24)(`runs Node ${node24Version || '24'} (OpenClaw's runtime) normally`, () => {
    const r = runUnder(tools, filter, [node24, '-e', nodeScript], { env: { PATH: '/usr/bin:/bin', TMPDIR: tools.dir, HOME: tools.dir } });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(want);
  });

  it('runs shell and node normally as an unprivileged user (uid 65534)', () => {
    const env = { PATH: '/usr/bin:/bin', TMPDIR: '/tmp', HOME: '/tmp' };
    const sh = runUnder(tools, filter, ['/bin/sh', '-c', 'id -u; echo ok'], { asNobody: true, env });
    expect(sh.signal, sh.stderr).toBeNull();
    expect(sh.stdout).toBe(`${isRoot ? 65534 : process.getuid?.()}\nok\n`);
    const node = runUnder(tools, filter, ['/usr/bin/node', '-e', nodeScript], { asNobody: true, env });
    expect(node.signal, node.stderr).toBeNull();
    expect(node.status, node.stderr).toBe(0);
    expect(JSON.parse(node.stdout)).toEqual(want);
    // Still confined as that user: the filter, not missing privilege, answers.
    expect(firstWord(runUnder(tools, filter, callArgv(tools, 'clone3', ['0', '0']), { asNobody: true, env }).stdout)).toBe('ENOSYS');
  });
});
