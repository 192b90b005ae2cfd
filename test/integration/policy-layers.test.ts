import { mkdtempSync, rmSync, chmodSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { probeHost } from '../../src/host/probe.js';
import { clawjail, py, runWithStatus, sh, tryOp, USERS } from '../helpers/cli.js';

const host = probeHost();
const scratch = mkdtempSync(join(tmpdir(), 'cj-layers-'));
chmodSync(scratch, 0o777);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function profile(name: string, yaml: string): string {
  const p = join(scratch, name);
  writeFileSync(p, yaml);
  chmodSync(p, 0o644);
  return p;
}

interface Status {
  report: { layers: { layer: string; status: string; detail: string; mode?: string }[] };
  exit: { status: number };
}
const layer = (s: Status, name: string) => s.report.layers.find((l) => l.layer === name)!;

describe.each(USERS)('landlock, as %s', (as) => {
  const run = (args: string[]) => clawjail(['run', ...args], { as });
  const extraDir = () => {
    const d = mkdtempSync(join(scratch, 'rw-'));
    chmodSync(d, 0o777);
    return d;
  };

  describe.skipIf(host.landlock.abi < 1)(`enforced (host ABI ${host.landlock.abi}; skipped when the kernel has no landlock: ${host.landlock.reason ?? ''})`, () => {
    it('denies writes beneath an rw bind that landlock does not list (EACCES), which the mount alone would allow', async () => {
      const d = extraDir();
      const p = profile(`unlisted-${as}.yaml`, `filesystem:\n  rw: [{src: ${d}, dest: /extra, landlock: false}]\n`);
      const on = await run(['--profile', p, '--', ...py(`${tryOp('open("/extra/f","w").write("x")')}\n${tryOp('open("/sandbox/f","w").write("x")')}`)]);
      expect(on.stdout.trim().split('\n')).toEqual(['EACCES', 'OK']);
      expect(existsSync(join(d, 'f'))).toBe(false);
      // The same profile with landlock off: now only the mount decides, and it allows the write.
      const off = await run(['--profile', p, '--landlock', 'off', '--', ...py(tryOp('open("/extra/f","w").write("x")'))]);
      expect(off.stdout.trim()).toBe('OK');
      expect(existsSync(join(d, 'f'))).toBe(true);
    });

    it('keeps /proc read-only to the workload (EACCES writing /proc/self/comm) while /dev/shm stays writable', async () => {
      const script = `${tryOp('open("/dev/shm/x","w").write("x")')}\n${tryOp('open("/proc/self/comm","w").write("renamed")')}`;
      const on = await run(['--', ...py(script)]);
      expect(on.stdout.trim().split('\n')).toEqual(['OK', 'EACCES']);
      const off = await run(['--landlock', 'off', '--', ...py(script)]);
      expect(off.stdout.trim().split('\n')).toEqual(['OK', 'OK']);
    });

    it.skipIf(host.landlock.abi < 4)('allows TCP connect only to the service ports (EACCES elsewhere on loopback)', async () => {
      const script = [
        'import socket, errno',
        's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 9000)); s.listen()',
        'def c(port):',
        '    t = socket.socket()',
        '    try:',
        '        t.connect(("127.0.0.1", port)); return "OK"',
        '    except OSError as e:',
        '        return errno.errorcode[e.errno]',
        'print(c(9000), c(3128))',
      ].join('\n');
      const p = profile(`bind9000-${as}.yaml`, 'landlock:\n  bindPorts: [9000]\n');
      const on = await run(['--profile', p, '--', ...py(script)]);
      expect(on.stdout.trim()).toBe('EACCES OK');
      const off = await run(['--profile', p, '--landlock', 'off', '--', ...py(script)]);
      expect(off.stdout.trim()).toBe('OK OK');
      // Binding a port the profile does not list is refused too.
      const bind = await run(['--', ...py(tryOp('socket.socket().bind(("127.0.0.1", 9001))'))]);
      expect(bind.stdout.trim()).toBe('EACCES');
    });

    it.skipIf(host.landlock.abi < 6)('scopes signals: the workload cannot signal the sandbox init (EPERM), only its own processes', async () => {
      const on = await run(['--', ...py(`${tryOp('os.kill(1, 0)')}\n${tryOp('os.kill(os.getpid(), 0)')}`)]);
      expect(on.stdout.trim().split('\n')).toEqual(['EPERM', 'OK']);
      const off = await run(['--landlock', 'off', '--', ...py(tryOp('os.kill(1, 0)'))]);
      expect(off.stdout.trim()).toBe('OK');
    });

    it('reports the ABI and rules, and refuses required mode when capped below what the rules need', async () => {
      const { status: st } = await runWithStatus<Status>(['--', 'true'], { as });
      expect(layer(st, 'landlock')).toMatchObject({ status: 'enforced', mode: 'best-effort' });
      expect(layer(st, 'landlock').detail).toMatch(new RegExp(`^ABI ${host.landlock.abi}: \\d+ path rules`));
      const capped = profile(`cap3-${as}.yaml`, 'landlock:\n  mode: required\n  maxAbi: 3\n');
      const refused = await run(['--profile', capped, '--', 'true']);
      expect(refused.exitCode).toBe(125);
      expect(refused.stderr).toContain('landlock is required but only partly enforceable at ABI 3: missing');
      expect(refused.stderr).toContain('net.connect_tcp (ABI 4)');
    });
  });

  it('with landlock forced off (maxAbi 0): the report says unavailable, best-effort runs, required refuses', async () => {
    const off = profile(`abi0-${as}.yaml`, 'landlock:\n  maxAbi: 0\n');
    const { r, status: st } = await runWithStatus<Status>(['--profile', off, '--', 'true'], { as });
    expect(layer(st, 'landlock')).toMatchObject({ status: 'unavailable', mode: 'best-effort', detail: 'landlock.maxAbi is 0' });
    expect(r.stderr).toContain('landlock unavailable');
    const req = profile(`abi0-req-${as}.yaml`, 'landlock:\n  maxAbi: 0\n  mode: required\n');
    const refused = await run(['--profile', req, '--', 'true']);
    expect(refused.exitCode).toBe(125);
    expect(refused.stderr).toContain('landlock is required but unavailable: landlock.maxAbi is 0');
  });
});

describe.each(USERS)('seccomp inside the sandbox, as %s', (as) => {
  const run = (args: string[]) => clawjail(['run', ...args], { as });
  const libc = 'import ctypes, os, errno\nlibc = ctypes.CDLL(None, use_errno=True)\ndef sc(n, *a):\n    r = libc.syscall(n, *a)\n    return "OK" if r >= 0 else errno.errorcode[ctypes.get_errno()]\n';
  it.skipIf(host.arch !== 'x86_64')('denies namespace creation, mount, ptrace, keyctl, bpf (EPERM) and clone3/io_uring (ENOSYS)', async () => {
    // x86_64 numbers: unshare 272, mount 165, ptrace 101, keyctl 250, bpf 321, clone3 435, io_uring_setup 425, pivot_root 155, open_tree 428
    const r = await run(['--', ...py(`${libc}print(sc(272, 0x10000000), sc(165, 0, 0, 0, 0, 0), sc(101, 16, 1, 0, 0), sc(250, 0, 0, 0), sc(321, 0, 0, 0), sc(435, 0, 0), sc(425, 1, 0), sc(155, 0, 0), sc(428, -100, 0, 0))`)]);
    expect(r.stdout.trim()).toBe('EPERM EPERM EPERM EPERM EPERM ENOSYS ENOSYS EPERM EPERM');
  });

  it('denies memfd_secret and, on x86_64, modify_ldt (EPERM); with the filter off the kernel answers (never EPERM)', async () => {
    // memfd_secret is 447 on both arches; modify_ldt (154) exists only on x86. modify_ldt(0, buf, 64)
    // reads the LDT (0 bytes or more), memfd_secret(0) makes an fd or says ENOSYS when disabled.
    const calls = `buf = ctypes.create_string_buffer(64)\nprint(sc(447, 0)${host.arch === 'x86_64' ? ', sc(154, 0, buf, 64)' : ''})`;
    const expected = host.arch === 'x86_64' ? 'EPERM EPERM' : 'EPERM';
    const on = await run(['--', ...py(`${libc}${calls}`)]);
    expect(on.stdout.trim()).toBe(expected);
    const off = await run(['--seccomp', 'off', '--', ...py(`${libc}${calls}`)]);
    for (const outcome of off.stdout.trim().split(' ')) expect(['OK', 'ENOSYS']).toContain(outcome);
  });

  it('refuses TIOCSTI, also with high bits set in the request (EPERM)', async () => {
    const r = await run(['--', ...py(`import fcntl, termios, errno, os\nfd = os.open("/dev/null", os.O_RDWR)\nfor req in (termios.TIOCSTI, termios.TIOCSTI | (1 << 32)):\n    try:\n        fcntl.ioctl(fd, req, b"x"); print("OK")\n    except OSError as e:\n        print(errno.errorcode[e.errno])`)]);
    expect(r.stdout.trim().split('\n')).toEqual(['EPERM', 'EPERM']);
  });

  it('refuses AF_PACKET and AF_NETLINK other than NETLINK_ROUTE, allows inet and unix sockets', async () => {
    const r = await run(['--', ...py(`${tryOp('socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)')}\n${tryOp('socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9)')}\n${tryOp('socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)')}\n${tryOp('socket.socket(socket.AF_INET6, socket.SOCK_STREAM)')}\n${tryOp('socket.socket(socket.AF_UNIX)')}`)]);
    expect(r.stdout.trim().split('\n')).toEqual(['EPERM', 'EPERM', 'OK', 'OK', 'OK']);
  });

  it('a setuid binary stays unprivileged (NoNewPrivs), and unshare -U fails', async () => {
    const r = await run(['--', ...sh('su -c id root 2>&1; echo "su=$?"; unshare -U true 2>&1; echo "unshare=$?"')]);
    expect(r.stdout).toMatch(/su=[1-9]/);
    expect(r.stdout).toContain('unshare: unshare failed: Operation not permitted');
    expect(r.stdout).toMatch(/unshare=[1-9]/);
  });

  it('reports the filter size', async () => {
    const { status: st } = await runWithStatus<Status>(['--', 'true'], { as });
    expect(layer(st, 'seccomp').status).toBe('enforced');
    expect(layer(st, 'seccomp').detail).toMatch(/denylist enforced; \d+ BPF instructions for (x86_64|aarch64)/);
  });
});

describe.each(USERS)('resource limits, as %s', (as) => {
  const run = (args: string[]) => clawjail(['run', ...args], { as });
  it('caps a fork bomb with nproc (EAGAIN), and the supervisor lives to report it', async () => {
    const p = profile(`nproc-${as}.yaml`, 'limits:\n  rlimits:\n    nproc: 40\n');
    const script = [
      'import os, errno, time',
      'n = 0',
      'while True:',
      '    try:',
      '        pid = os.fork()',
      '    except OSError as e:',
      '        print(n, errno.errorcode[e.errno]); break',
      '    if pid == 0:',
      '        time.sleep(5); os._exit(0)',
      '    n += 1',
      '    if n > 1000:',
      '        print(n, "UNCAPPED"); break',
    ].join('\n');
    const r = await run(['--profile', p, '--', ...py(script)]);
    const [n, err] = r.stdout.trim().split(' ');
    expect(err).toBe('EAGAIN');
    expect(Number(n)).toBeLessThan(40);
    expect(r.exitCode).toBe(0);
  });

  it('applies core 0 and the file size limit (a larger write is cut: EFBIG)', async () => {
    const p = profile(`fsize-${as}.yaml`, 'limits:\n  rlimits:\n    fsize: 4096\n');
    const r = await run(['--profile', p, '--', ...py(`import resource, signal, os\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\nprint(resource.getrlimit(resource.RLIMIT_CORE))\nfd = os.open("/sandbox/big", os.O_WRONLY | os.O_CREAT)\nos.write(fd, b"x" * 4096)\n${tryOp('os.write(fd, b"x")')}`)]);
    expect(r.stdout.trim().split('\n')).toEqual(['(0, 0)', 'EFBIG']);
  });
});

describe('the network boundary from inside', () => {
  it('a host abstract unix socket is unreachable (own network namespace)', async () => {
    const name = `cj-host-${process.pid}`;
    const server = net.createServer((s) => s.end('host'));
    await new Promise<void>((r) => server.listen(`\0${name}`, r));
    try {
      const r = await clawjail(['run', '--', ...py(`import socket\n${tryOp(`socket.socket(socket.AF_UNIX).connect("\\0${name}")`)}`)]);
      expect(r.stdout.trim()).toBe('ECONNREFUSED');
    } finally {
      server.close();
    }
  });

  it('nc and /dev/tcp to an outside address fail; DNS has no resolver', async () => {
    const r = await clawjail(['run', '--', ...sh('bash -c "echo > /dev/tcp/1.1.1.1/80" 2>&1; echo "devtcp=$?"; getent hosts example.com; echo "dns=$?"')]);
    expect(r.stdout).toMatch(/devtcp=1/);
    expect(r.stdout).toMatch(/Network is unreachable|Permission denied/);
    expect(r.stdout).toMatch(/dns=2/);
  });
});

const cgroupReady = host.cgroup.writable && ['memory', 'pids'].every((c) => host.cgroup.controllers.includes(c));
describe.skipIf(!cgroupReady)(`cgroup v2 limits (skipped on this host: ${host.cgroup.reason ?? 'ready'})`, () => {
  it('caps a fork bomb with pids.max and OOM-kills an over-allocation inside, while the supervisor reports it', async () => {
    const p = profile('cgroup.yaml', 'limits:\n  cgroup:\n    mode: required\n    pidsMax: 32\n    memoryMax: 64m\n');
    const bomb = await clawjail(['run', '--profile', p, '--', ...py('import os, errno\nn = 0\ntry:\n    while n < 1000:\n        if os.fork() == 0:\n            import time; time.sleep(5); os._exit(0)\n        n += 1\nexcept OSError as e:\n    print(n, errno.errorcode[e.errno])')]);
    const [n, err] = bomb.stdout.trim().split(' ');
    expect(err).toBe('EAGAIN');
    expect(Number(n)).toBeLessThan(32);
    const { r: hog, status: st } = await runWithStatus<{ exit: { signal: string; oomKilled: boolean } }>(['--profile', p, '--', ...py('x = bytearray(512 * 1024 * 1024)\nprint("survived")')]);
    expect(st.exit).toMatchObject({ signal: 'SIGKILL', oomKilled: true });
    expect(hog.stderr).toContain("OOM killer");
  });
});

describe('cgroup limits where this host cannot provide them', () => {
  it.skipIf(cgroupReady)('best-effort reports unavailable with the reason; required refuses (125)', async () => {
    const best = profile('cg-best.yaml', 'limits:\n  cgroup:\n    pidsMax: 32\n');
    const { status: st } = await runWithStatus<Status>(['--profile', best, '--', 'true']);
    expect(layer(st, 'cgroup')).toMatchObject({ status: 'unavailable', mode: 'best-effort' });
    expect(layer(st, 'cgroup').detail).toContain(host.cgroup.writable ? 'the pids controller is not available' : host.cgroup.reason!);
    const req = profile('cg-req.yaml', 'limits:\n  cgroup:\n    mode: required\n    pidsMax: 32\n');
    const refused = await clawjail(['run', '--profile', req, '--', 'true']);
    expect(refused.exitCode).toBe(125);
    expect(refused.stderr).toContain('cgroup limits are required but unavailable');
  });
});
