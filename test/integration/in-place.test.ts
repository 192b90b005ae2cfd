import { execa } from 'execa';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeHost } from '../../src/host/probe.js';
import { IS_ROOT, packageRootFor, py, UNPRIV } from '../helpers/cli.js';
import { clawjailIn, containerSim, containerUnsupportedReason, logRecords, removeContainerSim, type As, type ContainerKind } from '../helpers/container.js';

// clawjail inside a container that forbids namespaces: `auto` must fall back to in-place with a
// warning, and every boundary must still hold. Each test tries to cross one and checks the errno.

const landlockAbi = probeHost().landlock.abi;
/** In-place mode refuses to run without landlock (its only filesystem boundary). */
const noLandlock = landlockAbi === 0 ? 'landlock is unavailable on this kernel; in-place mode refuses without it' : undefined;

interface Env {
  kind: ContainerKind;
  as: As;
  /** uid the workload runs as. */
  uid: number;
  /** clawjail flags this environment needs (root in a one-uid user namespace runs as root). */
  flags: string[];
  /** errno name and step of the refused namespaces attempt. */
  refusal: 'ENOSPC' | 'EPERM';
  step: string;
}

const scratch = mkdtempSync(join(tmpdir(), 'cj-inplace-test-'));
chmodSync(scratch, 0o755);
const rootWorkloadProfile = join(scratch, 'root-workload.json');
writeFileSync(rootWorkloadProfile, JSON.stringify({ inPlace: { rootWorkload: true } }), { mode: 0o644 });

const ENVS: Env[] = [
  ...(IS_ROOT
    ? [
        { kind: 'seccomp', as: 'root', uid: 61000, flags: [], refusal: 'EPERM', step: 'namespaces.clone' } as Env,
        { kind: 'podman', as: 'root', uid: 61000, flags: [], refusal: 'EPERM', step: 'uts.sethostname' } as Env,
        { kind: 'bwrap', as: 'root', uid: 0, flags: ['--profile', rootWorkloadProfile], refusal: 'ENOSPC', step: 'namespaces.clone' } as Env,
      ]
    : []),
  { kind: 'seccomp', as: 'unprivileged', uid: IS_ROOT ? UNPRIV.uid : process.getuid!(), flags: [], refusal: 'EPERM', step: 'namespaces.clone' },
  { kind: 'podman', as: 'unprivileged', uid: IS_ROOT ? UNPRIV.uid : process.getuid!(), flags: [], refusal: 'EPERM', step: 'uts.sethostname' },
  { kind: 'bwrap', as: 'unprivileged', uid: IS_ROOT ? UNPRIV.uid : process.getuid!(), flags: [], refusal: 'ENOSPC', step: 'namespaces.clone' },
];

// A path outside everything in-place mode grants, readable and writable by every uid by file
// permissions alone: only landlock stands between the workload and it.
const outside = mkdtempSync('/var/tmp/cj-outside-');
chmodSync(outside, 0o777);
writeFileSync(join(outside, 'secret'), 'host-secret', { mode: 0o644 });
chmodSync(join(outside, 'secret'), 0o644);

afterAll(() => {
  rmSync(outside, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
  removeContainerSim();
});

const TRY = `import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def t(f):
    try:
        r = f()
        if r is not None and r is not True and isinstance(r, int) and r < 0:
            return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
`;

describe.each(ENVS)('in-place mode in a $kind container as $as', (env) => {
  const skip = containerUnsupportedReason(env.kind) ?? noLandlock;
  if (skip) console.log(`skipping in-place tests in ${env.kind} as ${env.as}: ${skip}`);
  const run = (args: string[], opts: { env?: Record<string, string>; pidNamespace?: boolean } = {}) => clawjailIn(env.kind, env.as, ['run', ...env.flags, ...args], opts);

  let statusDir: string;
  beforeAll(() => {
    statusDir = mkdtempSync(join(scratch, 'status-'));
    chmodSync(statusDir, 0o777);
  });

  it.skipIf(!!skip)('auto falls back to in-place with a warning, and the report says so', async () => {
    const status = join(statusDir, `auto-${env.kind}-${env.as}.json`);
    const r = await run(['--log-level', 'warn', '--status-json', status, '--', 'true']);
    expect(r.exitCode).toBe(0);
    const warning = logRecords(r.stderr).find((l) => l.level === 40 && l.msg.includes('running in-place'));
    expect(warning?.msg).toContain(env.refusal);
    if (env.kind === 'podman') expect(warning?.msg).toContain('uts.sethostname');
    const st = JSON.parse(readFileSync(status, 'utf8')) as { report: { mode: string; modeReason: string; layers: { layer: string; status: string }[] } };
    expect(st.report.mode).toBe('in-place');
    expect(st.report.modeReason).toContain('namespaces are unavailable');
    expect(st.report.layers.find((l) => l.layer === 'namespaces')!.status).toBe('unavailable');
    expect(st.report.layers.find((l) => l.layer === 'filesystem')!.status).toBe('enforced');
  });

  // A dry run only probes (a user namespace clone); podman's sethostname refusal needs doctor's trial.
  it.skipIf(!!skip || env.kind === 'podman')(`--dry-run plans in-place where the probe finds no user namespaces, and says why${env.kind === 'podman' ? ' (skipped in the podman stand-in: user namespaces work there, only sethostname fails, which a dry run does not try)' : ''}`, async () => {
    const r = await run(['--dry-run', '--', 'true']);
    expect(r.exitCode).toBe(0);
    const plan = JSON.parse(r.stdout) as { report: { mode: string }; warnings: string[]; native: { namespaces: string[]; inPlace?: object } };
    expect(plan.report.mode).toBe('in-place');
    expect(plan.native.namespaces).toEqual([]);
    expect(plan.native.inPlace).toBeDefined();
    expect(plan.warnings[0]).toContain(env.refusal);
  });

  it.skipIf(!!skip)('doctor tries the namespaces sequence for real, then reports in-place with the reason and a working in-place trial', async () => {
    const j = await clawjailIn(env.kind, env.as, ['doctor', '--json', ...env.flags]);
    expect(j.exitCode).toBe(0);
    const d = JSON.parse(j.stdout) as { mode: string; trials: { namespaces: { ok: boolean; step: string; code: string }; inPlace: { ok: boolean } }; layers: { layer: string; status: string }[] };
    expect(d.mode).toBe('in-place');
    // root with only uid 0 mapped fails before the clone: its sandbox user does not exist
    expect(d.trials.namespaces).toMatchObject(env.uid === 0 ? { ok: false, step: 'identity', code: 'ERR_CLAWJAIL_IDENTITY' } : { ok: false, step: env.step, code: env.refusal });
    expect(d.trials.inPlace.ok).toBe(true);
    expect(d.layers.find((l) => l.layer === 'namespaces')!.status).toBe('unavailable');
    const t = await clawjailIn(env.kind, env.as, ['doctor', ...env.flags]);
    expect(t.exitCode).toBe(0);
    expect(t.stdout).toMatch(new RegExp(`^mode: in-place \\(no user namespaces: ${env.refusal}`, 'm'));
    expect(t.stdout).toMatch(/^in-place trial: ok$/m);
    expect(t.stdout).toMatch(/^filesystem +enforced +landlock/m);
  });

  it.skipIf(!!skip)('--mode namespaces refuses with 125, naming the reason', async () => {
    const r = await run(['--mode', 'namespaces', '--', 'true']);
    expect(r.exitCode).toBe(125);
    if (env.uid === 0) {
      // root with only uid 0 mapped: the namespaces sandbox user cannot exist, which is checked first
      expect(r.stderr).toContain('does not exist in this user namespace');
    } else {
      expect(r.stderr).toContain(env.step);
      expect(r.stderr).toContain(env.refusal);
      // the hint names the cause, not "the kernel"
      expect(r.stderr).toMatch(env.kind === 'podman' ? /refuses sethostname/ : env.kind === 'seccomp' ? /seccomp.*forbids creating namespaces/ : /forbids nested ones/);
    }
    expect(r.stderr).not.toContain('internal error');
  });

  it.skipIf(!!skip)('confines the filesystem with landlock: system EACCES, HOME and /tmp writable, a host path outside unreadable (EACCES)', async () => {
    const r = await run(['--mode', 'in-place', '--', ...py(`${TRY}
home = os.environ["HOME"]
tmp = "/tmp/cj-inplace-%d" % os.getpid()
print(t(lambda: open("/usr/cj-x", "w")), t(lambda: open("/etc/cj-x", "w")))
print(t(lambda: open(home + "/f", "w").write("x")), t(lambda: open(tmp, "w").write("x")), os.getcwd() == home)
print(t(lambda: open("${outside}/secret").read()), t(lambda: open("${outside}/new", "w")), t(lambda: os.listdir("${outside}")))
os.unlink(tmp)`)]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['EACCES EACCES', 'OK OK True', 'EACCES EACCES EACCES']);
    expect(existsSync(join(outside, 'new'))).toBe(false);
  });

  it.skipIf(!!skip)('--sandbox-dir is the workload\'s HOME and cwd, writable where it is; --seccomp required is accepted and reported', async () => {
    const dir = mkdtempSync(join(scratch, 'sbx-'));
    chmodSync(dir, 0o700);
    if (IS_ROOT) await execa('chown', [`${env.uid}:${env.uid === 61000 ? 61000 : env.uid === 0 ? 0 : UNPRIV.gid}`, dir]);
    const status = join(statusDir, `sbx-${env.kind}-${env.as}.json`);
    const r = await run(['--mode', 'in-place', '--sandbox-dir', dir, '--seccomp', 'required', '--status-json', status, '--', ...py(`${TRY}
print(os.getcwd() == os.environ["HOME"] == "${dir}", t(lambda: open("kept", "w").write("kept")), t(lambda: open("${outside}/x", "w")))`)]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('True OK EACCES');
    expect(readFileSync(join(dir, 'kept'), 'utf8')).toBe('kept');
    const st = JSON.parse(readFileSync(status, 'utf8')) as { report: { layers: { layer: string; status: string; mode?: string }[] } };
    expect(st.report.layers.find((l) => l.layer === 'seccomp')).toMatchObject({ status: 'enforced', mode: 'required' });
    expect((await run(['--seccomp', 'sometimes', '--', 'true'])).exitCode).toBe(125);
  });

  it.skipIf(!!skip)('runs as the sandbox user with no capabilities, no_new_privs and seccomp; mount, new namespaces and the supervisor are out of reach', async () => {
    const r = await run(['--mode', 'in-place', '--', ...py(`${TRY}
status = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\\t" in l)
print(os.getuid(), os.getgid(), os.getgroups(), status["CapEff"].strip(), status["CapPrm"].strip(), status["NoNewPrivs"].strip(), status["Seccomp"].strip())
helper = os.getppid()
supervisor = int(dict(l.split(":\\t", 1) for l in open("/proc/%d/status" % helper).read().splitlines() if ":\\t" in l)["PPid"])
print(t(lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)), t(lambda: libc.unshare(0x10000000)), t(lambda: libc.unshare(0x40000000)))
print(t(lambda: os.kill(supervisor, 0)), t(lambda: open("/proc/%d/environ" % supervisor).read()))`)]);
    expect(r.stderr).toBe('');
    const [ids, denied, supervisor] = r.stdout.trim().split('\n');
    const gid = env.uid === 61000 ? 61000 : env.uid === 0 ? 0 : UNPRIV.gid;
    expect(ids).toBe(`${env.uid} ${gid} [] 0000000000000000 0000000000000000 1 2`);
    // mount, unshare(CLONE_NEWUSER), unshare(CLONE_NEWNET): refused by the seccomp filter
    expect(denied).toBe('EPERM EPERM EPERM');
    // signals: landlock's scope (ABI 6) or another uid; /proc/PID/environ: landlock's ptrace rule
    if (landlockAbi >= 6 || env.uid === 61000) expect(supervisor).toBe('EPERM EACCES');
    else expect(supervisor!.split(' ')[1]).toBe('EACCES');
  });

  describe.skipIf(!!skip || landlockAbi < 4)('network (landlock TCP rules, ABI 4+)', () => {
    let upstream: http.Server;
    let upstreamPort: number;
    let other: net.Server;
    let otherPort: number;
    let otherAccepted = 0;
    const auth: string[] = [];
    beforeAll(async () => {
      upstream = http.createServer((req, res) => {
        auth.push(String(req.headers.authorization ?? ''));
        req.resume();
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ object: 'list', data: [] }));
      });
      await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
      upstreamPort = (upstream.address() as net.AddressInfo).port;
      other = net.createServer((s) => {
        otherAccepted++;
        s.end('reached\n');
      });
      await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
      otherPort = (other.address() as net.AddressInfo).port;
    });
    afterAll(() => {
      upstream.close();
      other.close();
    });

    it('direct TCP to a loopback server is EACCES, UDP and netlink sockets EPERM; through the proxy an allowlisted host answers and another gets 403', async () => {
      const r = await run(['--mode', 'in-place', '--allow-host', `127.0.0.1:${upstreamPort}`, '--', ...py(`${TRY}
def connect(port):
    s = socket.socket()
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
def fastopen(port):
    s = socket.socket()
    s.settimeout(5)
    s.sendto(b"x", socket.MSG_FASTOPEN, ("127.0.0.1", port))
print(t(lambda: connect(${otherPort})), t(lambda: connect(${upstreamPort})), t(lambda: fastopen(${otherPort})))
print(t(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)), t(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)), t(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)), t(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)), t(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)))
import subprocess
def via_proxy(port):
    return subprocess.run(["curl", "-s", "--noproxy", "", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:%d/" % port], capture_output=True, text=True).stdout
print(via_proxy(${upstreamPort}), via_proxy(${otherPort}))`)]);
      expect(r.stderr).toBe('');
      // 95 is EOPNOTSUPP, which python names ENOTSUP (the same number on Linux)
      expect(r.stdout.trim().split('\n')).toEqual(['EACCES EACCES ENOTSUP', 'EPERM EPERM EPERM EPERM EPERM', '200 403']);
      // nothing reached the server that is not the proxy, not even by TCP Fast Open
      expect(otherAccepted).toBe(0);
    });

    it('binds nowhere but a published port, which the supervisor forwards from its host port', async () => {
      // Below the kernel's ephemeral range (32768+ by default), so that no client connection
      // made meanwhile by a parallel test takes the port as its source port.
      const free = async (): Promise<number> => {
        for (;;) {
          const port = 20000 + Math.floor(Math.random() * 12000);
          const srv = net.createServer();
          const ok = await new Promise<boolean>((r) => {
            srv.once('error', () => r(false));
            srv.listen(port, '127.0.0.1', () => r(true));
          });
          if (!ok) continue;
          await new Promise<void>((r) => srv.close(() => r()));
          return port;
        }
      };
      const [inner, hostPort, unpublished] = [await free(), await free(), await free()];
      const child = run(['--mode', 'in-place', '--publish', `${hostPort}:${inner}`, '--', ...py(`${TRY}
def bind(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    return s
print(t(lambda: bind(${unpublished})), t(lambda: bind(0)), flush=True)
s = bind(${inner})
s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
c.sendall(b"from inside\\n")
c.close()`)]);
      try {
        let out = '';
        const listening = await Promise.race([
          new Promise<boolean>((resolve) => child.stdout!.on('data', (d: Buffer) => (out += d.toString()).includes('listening') && resolve(true))),
          child.then(() => false),
        ]);
        if (!listening) throw new Error(`the workload ended before listening: ${out} ${(await child).stderr}`);
        expect(out.split('\n')[0]).toBe('EACCES EACCES');
        const got = await new Promise<string>((resolve, reject) => {
          const c = net.connect(hostPort, '127.0.0.1');
          let data = '';
          c.on('data', (d) => (data += d.toString()));
          c.on('end', () => resolve(data));
          c.on('error', reject);
        });
        expect(got).toBe('from inside\n');
        expect((await child).exitCode).toBe(0);
      } finally {
        child.kill('SIGKILL');
      }
    });

    it('the route key reaches the upstream through the router but exists nowhere inside: env, /proc/self/environ', async () => {
      auth.length = 0;
      const key = `sk-inplace-${process.pid}-secret`;
      const r = await run(
        ['--mode', 'in-place', '--route', `main=http://127.0.0.1:${upstreamPort}/v1`, '--route-credential-env', 'main=CJ_TEST_ROUTE_KEY', '--', ...py(`${TRY}
import subprocess
print("${key}" in str(os.environ), "${key}" in open("/proc/self/environ").read())
print(subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", os.environ["OPENAI_BASE_URL"] + "/models"], capture_output=True, text=True).stdout)`)],
        { env: { CJ_TEST_ROUTE_KEY: key } },
      );
      expect(r.stderr).toBe('');
      expect(r.stdout.trim().split('\n')).toEqual(['False False', '200']);
      expect(auth).toEqual([`Bearer ${key}`]);
    });
  });

  it.skipIf(!!skip || env.kind === 'bwrap')(`a SIGKILLed launcher leaves nothing behind: the workload and a background child of it are killed${env.kind === 'bwrap' ? ' (skipped in the bwrap stand-in: the process the test would kill is bwrap itself, not clawjail\'s supervisor)' : ''}`, async () => {
    const marker = `cjinplace${process.pid}x${env.kind}x${env.as}`;
    const loop = 'while :; do sleep 1; done';
    const child = run(['--mode', 'in-place', '--', 'sh', '-c', `sh -c '${loop}' ${marker}-bg & echo ready; exec sh -c '${loop}' ${marker}`]);
    await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
    const count = async () => (await execa('sh', ['-c', `ps -eo args | grep -c "^sh -c while.*${marker}" || true`])).stdout.trim();
    // "ready" is printed before the two loops have exec'd: wait for both (bounded)
    const upBy = Date.now() + 10_000;
    let up = await count();
    while (up !== '2' && Date.now() < upBy) {
      await new Promise((r) => setTimeout(r, 20));
      up = await count();
    }
    expect(up).toBe('2');
    // container-sim and setpriv exec, so the child's pid is the Node supervisor's
    child.kill('SIGKILL');
    await child;
    const deadline = Date.now() + 10_000;
    let left = await count();
    while (left !== '0' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      left = await count();
    }
    expect(left).toBe('0');
  });

  it.skipIf(!!skip || env.kind !== 'bwrap')(`as the container's PID 1: orphans are reaped, and SIGTERM reaches the workload (exit 143)${env.kind !== 'bwrap' ? ' (skipped here: only the bwrap stand-in has a pid namespace for clawjail to be PID 1 in)' : ''}`, async () => {
    // The grandchild exits only once it has been orphaned, so it can only be reaped by whoever
    // inherits it.
    const child = run(['--mode', 'in-place', '--', ...py(`import os, time
r, w = os.pipe()
child = os.fork()
if child == 0:
    parent = os.getpid()
    grandchild = os.fork()
    if grandchild == 0:
        while os.getppid() == parent:
            time.sleep(0.01)
        os._exit(0)
    os.write(w, str(grandchild).encode())
    os._exit(0)
os.waitpid(child, 0)
print("orphan", os.read(r, 32).decode(), flush=True)
print("ready", flush=True)
while True:
    time.sleep(0.05)`)], { pidNamespace: true });
    try {
      let out = '';
      const orphan = await new Promise<number>((resolve) => {
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /orphan (\d+)\nready/.exec(out);
          if (m) resolve(Number(m[1]));
        });
      });
      // The orphan was reparented to clawjail-init (a child subreaper), which must reap it; the
      // pid namespace's PID 1 is the Node supervisor, which would not.
      const bwrapPid = child.pid!;
      const nodePid = Number(readFileSync(`/proc/${bwrapPid}/task/${bwrapPid}/children`, 'utf8').trim().split(' ')[0]);
      const ns = readFileSync(`/proc/${nodePid}/status`, 'utf8');
      expect(/^NSpid:\s+\d+\s+1$/m.test(ns)).toBe(true);
      const pidNs = readlinkSync(`/proc/${nodePid}/ns/pid`);
      const hostPidOf = (nsPid: number): number | undefined => {
        for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
          try {
            if (readlinkSync(`/proc/${p}/ns/pid`) !== pidNs) continue;
            const levels = /^NSpid:\t(.*)$/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1]?.split('\t').map(Number) ?? [];
            if (levels[levels.length - 1] === nsPid) return Number(p);
          } catch {
            // gone meanwhile
          }
        }
        return undefined;
      };
      // Wait (on the condition, bounded) until the orphan is gone rather than a zombie.
      const deadline = Date.now() + 10_000;
      let state: string | undefined = 'unknown';
      while (Date.now() < deadline) {
        const host = hostPidOf(orphan);
        state = host === undefined ? undefined : /^State:\s+(\S)/m.exec(readFileSync(`/proc/${host}/status`, 'utf8'))?.[1];
        if (state === undefined) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(state).toBeUndefined();
      process.kill(nodePid, 'SIGTERM');
      const r = await child;
      expect(r.exitCode).toBe(143);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

if (!IS_ROOT) console.log('skipping the root-only in-place tests (no CAP_SETPCAP, unmapped sandbox uid): the test runner is not root');

describe.skipIf(!IS_ROOT || !!containerUnsupportedReason('seccomp') || !!noLandlock)('root without CAP_SETPCAP (a pod with capabilities dropped)', () => {
  it('keeps the bounding set it cannot shrink, still ends with no capabilities and says so', async () => {
    const r = await execa('setpriv', ['--bounding-set', '-setpcap', '--inh-caps', '-all', containerSim(), process.execPath, join(packageRootFor('root'), 'bin', 'clawjail.js'), 'run', '--mode', 'in-place', '--status-json', join(scratch, 'nosetpcap.json'), '--', 'grep', '-E', '^(CapEff|CapPrm|NoNewPrivs)', '/proc/self/status'], { reject: false, cwd: tmpdir(), env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, extendEnv: false });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['CapPrm:\t0000000000000000', 'CapEff:\t0000000000000000', 'NoNewPrivs:\t1']);
    const st = JSON.parse(readFileSync(join(scratch, 'nosetpcap.json'), 'utf8')) as { report: { layers: { layer: string; detail: string }[] } };
    expect(st.report.layers.find((l) => l.layer === 'capabilities')!.detail).toContain('bounding set is kept');
  });
});

const maskedSkip = containerUnsupportedReason('masked-proc') ?? noLandlock;
if (maskedSkip) console.log(`skipping the masked /proc test: ${maskedSkip}`);

describe.skipIf(!!maskedSkip)('a container whose /proc is masked (as Docker masks it)', () => {
  it('auto falls back at mount.proc with a warning; --mode namespaces and doctor name the cause', async () => {
    const auto = await clawjailIn('masked-proc', 'unprivileged', ['run', '--log-level', 'warn', '--', 'sh', '-c', 'echo $CLAWJAIL_MODE']);
    expect(auto.exitCode).toBe(0);
    expect(auto.stdout.trim()).toBe('in-place');
    expect(logRecords(auto.stderr).find((l) => l.level === 40)?.msg).toMatch(/EPERM at mount\.proc: .*partly masked.*running in-place/);
    const ns = await clawjailIn('masked-proc', 'unprivileged', ['run', '--mode', 'namespaces', '--', 'true']);
    expect(ns.exitCode).toBe(125);
    expect(ns.stderr).toContain('sandbox setup failed at mount.proc (/proc): EPERM');
    expect(ns.stderr).toContain('partly masked');
    const doctor = await clawjailIn('masked-proc', 'unprivileged', ['doctor']);
    expect(doctor.exitCode).toBe(0);
    expect(doctor.stdout).toMatch(/^namespaces trial .*: FAILED at mount\.proc/m);
    expect(doctor.stdout).toMatch(/^mode: in-place \(no user namespaces: EPERM at mount\.proc/m);
  });
});

describe.skipIf(!IS_ROOT || !!containerUnsupportedReason('bwrap') || !!noLandlock)('root in a user-namespaced container where the sandbox uid is not mapped', () => {
  it('refuses with ERR_CLAWJAIL_IDENTITY in both modes, and leaves no temporary directory behind', async () => {
    // A private TMPDIR: whatever the supervisor creates there is ours to see.
    const tmp = mkdtempSync(join(scratch, 'tmpdir-'));
    for (const mode of ['in-place', 'namespaces', 'auto']) {
      const status = join(scratch, `unmapped-${mode}.json`);
      const r = await clawjailIn('bwrap', 'root', ['run', '--mode', mode, '--status-json', status, '--', 'true'], { env: { TMPDIR: tmp } });
      expect(r.exitCode).toBe(125);
      const st = JSON.parse(readFileSync(status, 'utf8')) as { error: { code: string; step: string } };
      expect(st.error).toMatchObject({ code: 'ERR_CLAWJAIL_IDENTITY', step: 'identity' });
      expect(r.stderr).toContain('only uids 0-0 are mapped');
      expect(r.stderr).not.toContain('internal error');
      if (mode !== 'namespaces') expect(r.stderr).toContain('inPlace.rootWorkload');
    }
    expect(readdirSync(tmp)).toEqual([]);
    // the control: the same launch with a workload that may run does create its directory there
    const ok = await clawjailIn('bwrap', 'root', ['run', '--profile', rootWorkloadProfile, '--', 'sh', '-c', 'test -d "$HOME" && echo "$HOME"'], { env: { TMPDIR: tmp } });
    expect(ok.stdout.trim().startsWith(tmp + '/')).toBe(true);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('doctor says a sandbox would be refused, names why, and exits non-zero', async () => {
    const r = await clawjailIn('bwrap', 'root', ['doctor']);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain('A sandbox with this profile would be REFUSED here');
    expect(r.stdout).toContain('only uids 0-0 are mapped');
  });

  it('with inPlace.rootWorkload the workload runs as root without capabilities, and landlock still refuses /usr (EACCES)', async () => {
    const r = await clawjailIn('bwrap', 'root', ['run', '--profile', rootWorkloadProfile, '--', ...py(`${TRY}
print(os.getuid(), dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\\t" in l)["CapEff"].strip(), t(lambda: open("/usr/cj-root-x", "w")), t(lambda: open("/root/.cj-x", "w")))`)]);
    expect(r.stdout.trim()).toBe('0 0000000000000000 EACCES EACCES');
    expect(existsSync('/usr/cj-root-x')).toBe(false);
  });
});

