import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clawjail, py, runWithStatus, sh, tryOp, USERS, IS_ROOT } from '../helpers/cli.js';

// Every test here launches a real sandbox and tries to cross one boundary.
describe.each(USERS)('clawjail run as %s', (as) => {
  const run = (args: string[], opts: Parameters<typeof clawjail>[1] = {}) => clawjail(['run', ...args], { as, ...opts });

  it('runs the command, keeps /sandbox and /tmp writable, and refuses writes to the system (EROFS)', async () => {
    const r = await run(['--', ...py([
      'import errno, os',
      'def w(p):',
      '    try:',
      '        open(p, "w").write("x"); return "OK"',
      '    except OSError as e:',
      '        return errno.errorcode[e.errno]',
      'print(w("/sandbox/f"), w("/tmp/f"), w("/usr/x"), w("/etc/x"), w("/etc/passwd"), w("/x"))',
    ].join('\n'))]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('OK OK EROFS EROFS EROFS EROFS');
    expect(r.exitCode).toBe(0);
  });

  it('shows none of the host: home, /root, /var, docker.sock, /sys are absent', async () => {
    const r = await run(['--', ...py(
      'import os\nfor p in ["/root", "/home", "/var", "/var/run/docker.sock", "/run/docker.sock", "/sys", "/work", "/run/user"]:\n    print(p, os.path.lexists(p))',
    )]);
    expect(r.stdout.trim().split('\n')).toEqual(['/root False', '/home False', '/var False', '/var/run/docker.sock False', '/run/docker.sock False', '/sys False', '/work False', '/run/user False']);
  });

  it('has no capabilities, no_new_privs set, and sees only its own processes', async () => {
    const r = await run(['--', ...sh('grep -E "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)" /proc/self/status; ls /proc | grep -E "^[0-9]+$" | sort -n | tr "\\n" " "')]);
    expect(r.stdout).toContain('CapEff:\t0000000000000000');
    expect(r.stdout).toContain('CapPrm:\t0000000000000000');
    expect(r.stdout).toContain('CapBnd:\t0000000000000000');
    expect(r.stdout).toContain('NoNewPrivs:\t1');
    const pids = r.stdout.trim().split('\n').pop()!.trim().split(' ').map(Number);
    // init (1), the shell, ls, grep, sort, tr: nothing of the host
    expect(pids[0]).toBe(1);
    expect(Math.max(...pids)).toBeLessThan(20);
  });

  it('runs as the sandbox user, not root, in its own hostname', async () => {
    const r = await run(['--', ...sh('id -u; hostname')]);
    const [uid, host] = r.stdout.trim().split('\n');
    expect(Number(uid)).toBe(as === 'root' ? 61000 : 65534);
    expect(host).toBe('clawjail');
  });

  it('cannot signal a host process (ESRCH: it does not exist inside)', async () => {
    const r = await run(['--', ...py(tryOp(`os.kill(${process.pid}, 0)`))]);
    expect(r.stdout.trim()).toBe('ESRCH');
  });

  it('has only lo, and cannot reach a server on the host loopback', async () => {
    const server = net.createServer((s) => s.end('host secret\n'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const r = await run(['--', ...py(`import os,socket,errno\nprint(sorted(os.listdir("/sys/class/net")) if os.path.exists("/sys/class/net") else [i[1] for i in socket.if_nameindex()])\ns=socket.socket()\ntry:\n    s.connect(("127.0.0.1", ${port})); print("CONNECTED", s.recv(100))\nexcept OSError as e:\n    print(errno.errorcode[e.errno])`)]);
      const [ifaces, outcome] = r.stdout.trim().split('\n');
      expect(ifaces).toBe("['lo']");
      // landlock (TCP connect rules) answers EACCES; without it the empty netns answers ECONNREFUSED
      expect(['EACCES', 'ECONNREFUSED']).toContain(outcome);
    } finally {
      server.close();
    }
  });

  it('passes no host environment: a secret in the supervisor env is absent, and init is not readable (EACCES)', async () => {
    const r = await run(['--', ...sh(`env; echo ---; python3 -c '${tryOp('open("/proc/1/environ").read()').replace(/'/g, "'\\''")}'`)], { env: { SUPER_SECRET_TOKEN: 'sk-abc123', LANG: 'C.UTF-8' } });
    expect(r.stdout).not.toContain('SUPER_SECRET_TOKEN');
    expect(r.stdout).not.toContain('sk-abc123');
    expect(r.stdout).toContain('LANG=C.UTF-8');
    expect(r.stdout).toContain('HOME=/sandbox');
    // init makes itself non-dumpable (and holds capabilities the workload lacks): its memory and environ are closed to the workload.
    expect(r.stdout.trim().split('---\n')[1]).toBe('EACCES');
  });

  it('copies --env NAME from the host and sets --env K=V', async () => {
    const r = await run(['--env', 'FROM_HOST', '--env', 'SET_HERE=2', '--', ...sh('echo $FROM_HOST $SET_HERE')], { env: { FROM_HOST: '1' } });
    expect(r.stdout.trim()).toBe('1 2');
  });

  it('leaks no file descriptors into the workload', async () => {
    const r = await run(['--', ...py('import os\nprint(sorted(int(f) for f in os.listdir("/proc/self/fd")))')]);
    // 0,1,2 and the descriptor listdir itself holds open
    expect(r.stdout.trim()).toBe('[0, 1, 2, 3]');
  });

  it('exits with the workload status: 0, 3, 128+9, 126, 127, 125', async () => {
    expect((await run(['--', 'true'])).exitCode).toBe(0);
    expect((await run(['--', ...sh('exit 3')])).exitCode).toBe(3);
    expect((await run(['--', ...sh('kill -9 $$')])).exitCode).toBe(137);
    const notExec = await run(['--', '/etc/passwd']);
    expect(notExec.exitCode).toBe(126);
    expect(notExec.stderr).toContain('cannot execute /etc/passwd');
    const missing = await run(['--', 'definitely-not-a-command']);
    expect(missing.exitCode).toBe(127);
    expect(missing.stderr).toContain('command not found inside the sandbox: definitely-not-a-command');
    const bad = await run(['--no-such-flag', '--', 'true']);
    expect(bad.exitCode).toBe(125);
    expect(bad.stderr).toContain("Unknown option '--no-such-flag'");
  });

  it('says when a command exists on the host but is not mounted (127)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cj-hostonly-'));
    chmodSync(dir, 0o755);
    const tool = join(dir, 'host-only-tool');
    writeFileSync(tool, '#!/bin/sh\necho hi\n', { mode: 0o755 });
    try {
      const r = await run(['--', tool]);
      expect(r.exitCode).toBe(127);
      expect(r.stderr).toContain(`${tool} exists on the host`);
      expect(r.stderr).toContain('is not mounted');
      const ok = await run(['--ro', dir, '--', tool]);
      expect(ok.stdout.trim()).toBe('hi');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps --sandbox-dir contents, and a --ro bind is read-only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cj-sbx-'));
    chmodSync(dir, 0o777);
    const ro = mkdtempSync(join(tmpdir(), 'cj-ro-'));
    chmodSync(ro, 0o755);
    writeFileSync(join(ro, 'data'), 'ro-data');
    chmodSync(join(ro, 'data'), 0o644);
    try {
      // a root caller runs the sandbox as uid 61000, which must own the directory
      if (as === 'root' && IS_ROOT) await execa('chown', ['61000:61000', dir]);
      else if (IS_ROOT) await execa('chown', ['65534:65534', dir]);
      const single = await run(['--ro', `${join(ro, 'data')}:/sandbox/pinned.txt`, '--', ...py(`print(open("/sandbox/pinned.txt").read())\n${tryOp('open("/sandbox/pinned.txt","w")')}`)]);
      // A single file bound read-only inside the writable /sandbox: readable, not writable.
      expect(single.stdout.trim().split('\n')).toEqual(['ro-data', 'EROFS']);
      const r = await run(['--sandbox-dir', dir, '--ro', `${ro}:/data`, '--', ...py(`${tryOp('open("/sandbox/kept","w").write("kept")')}\nprint(open("/data/data").read())\n${tryOp('open("/data/new","w")')}`)]);
      expect(r.stdout.trim().split('\n')).toEqual(['OK', 'ro-data', 'EROFS']);
      expect(readFileSync(join(dir, 'kept'), 'utf8')).toBe('kept');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(ro, { recursive: true, force: true });
    }
  });

  it('removes a temporary /sandbox at exit', async () => {
    const { status } = await runWithStatus<{ sandboxDir: string; report: { layers: { layer: string; detail: string }[] } }>(['--', ...sh('echo x > /sandbox/y')], { as });
    expect(status.report.layers.find((l) => l.layer === 'filesystem')!.detail).toContain('/sandbox (temporary)');
    expect(status.sandboxDir.startsWith(tmpdir())).toBe(true);
    expect(existsSync(status.sandboxDir)).toBe(false);
  });
});

describe('binds and profiles are validated before anything runs', () => {
  it('refuses binding over /proc, /dev and /, and a missing source, with the reason', async () => {
    const a = await clawjail(['run', '--ro', '/usr:/proc/x', '--', 'true']);
    expect(a.exitCode).toBe(125);
    expect(a.stderr).toContain('binding over /proc is refused');
    const b = await clawjail(['run', '--rw', '/tmp:/', '--', 'true']);
    expect(b.exitCode).toBe(125);
    expect(b.stderr).toContain('binding over / is refused');
    const c = await clawjail(['run', '--ro', '/no/such/dir', '--', 'true']);
    expect(c.exitCode).toBe(125);
    expect(c.stderr).toContain('/no/such/dir: the source does not exist on the host');
    const d = await clawjail(['run', '--ro', '/usr/../etc', '--', 'true']);
    expect(d.exitCode).toBe(125);
    expect(d.stderr).toContain("must not contain '..'");
  });

  it('names the field of a bad profile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cj-prof-'));
    const file = join(dir, 'p.yaml');
    writeFileSync(file, 'filesystem:\n  tmpSize: lots\nnetwork:\n  bogus: 1\n');
    try {
      const r = await clawjail(['run', '--profile', file, '--', 'true']);
      expect(r.exitCode).toBe(125);
      expect(r.stderr).toContain('filesystem.tmpSize');
      expect(r.stderr).toContain('network');
      expect(r.stderr).toContain('bogus');
      expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a symlinked bind source and binds what it resolves to', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cj-link-'));
    chmodSync(dir, 0o755);
    execaSyncish(`mkdir ${dir}/real && echo via-link > ${dir}/real/f && chmod -R o+rX ${dir} && ln -s ${dir}/real ${dir}/link`);
    try {
      const r = await clawjail(['run', '--log-level', 'warn', '--ro', `${dir}/link:/data`, '--', 'cat', '/data/f']);
      expect(r.stdout.trim()).toBe('via-link');
      expect(r.stderr).toContain(`resolves to ${dir}/real`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function execaSyncish(script: string): void {
  execFileSync('sh', ['-c', script]);
}

describe('process supervision', () => {
  it('forwards SIGTERM to the workload, which exits by its own handler', async () => {
    const { execa: ex } = await import('execa');
    const { CLI } = await import('../helpers/cli.js');
    const child = ex(process.execPath, [CLI, 'run', '--', 'sh', '-c', 'trap "exit 42" TERM; echo ready; while :; do sleep 0.1; done'], { reject: false });
    await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
    child.kill('SIGTERM');
    const r = await child;
    expect(r.exitCode).toBe(42);
  });

  it('a SIGKILLed launcher leaves no sandbox process behind', async () => {
    const { CLI } = await import('../helpers/cli.js');
    const marker = `cjmarker${Date.now()}`;
    const child = execa(process.execPath, [CLI, 'run', '--', 'sh', '-c', `echo ready; exec sh -c 'while :; do sleep 1; done' ${marker}`], { reject: false });
    await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
    child.kill('SIGKILL');
    await child;
    const deadline = Date.now() + 1000;
    let left = '';
    while (Date.now() < deadline) {
      left = (await execa('sh', ['-c', `ps -eo pid,args | grep -v grep | grep -c "${marker}" || true`])).stdout.trim();
      if (left === '0') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(left).toBe('0');
  });
});
