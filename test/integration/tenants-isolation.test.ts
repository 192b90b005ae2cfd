import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IS_ROOT, packageRootFor, ROOT, UNPRIV, USERS } from '../helpers/cli.js';
import { createFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';

/**
 * 20 tenants from one orchestrator (in a child process, so it can be SIGKILLed), each running a
 * workload that serves its gateway and then tries to cross into every other tenant.
 */
const N = 20;
const names = Array.from({ length: N }, (_, i) => `tn-${String(i).padStart(2, '0')}`);

const WORKLOAD = String.raw`
import json, os, socket, errno, http.client, threading, http.server, time
T = os.environ['TENANT']; OTHERS = json.loads(os.environ['OTHERS'])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('gateway %s auth=%s' % (T, self.headers.get('authorization'))).encode()
        self.send_response(200); self.send_header('content-length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 8080), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
def err(f):
    try:
        f(); return 'OK'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def tcp(port):
    s = socket.socket(); s.settimeout(5)
    try: s.connect(('127.0.0.1', port))
    finally: s.close()
def unix(path):
    s = socket.socket(socket.AF_UNIX)
    try: s.connect(path)
    finally: s.close()
def proxy(host):
    c = http.client.HTTPConnection('127.0.0.1', 3128, timeout=20)
    c.request('GET', 'http://%s/' % host, headers={'Host': host}); r = c.getresponse(); r.read()
    return [r.status, r.getheader('X-Clawjail-Reason')]
def router(model):
    c = http.client.HTTPConnection('127.0.0.1', 3129, timeout=20)
    c.request('POST', '/v1/chat/completions', body=json.dumps({'model': model, 'messages': [{'role': 'user', 'content': 'hi'}]}), headers={'Content-Type': 'application/json', 'Authorization': 'Bearer stolen-' + T})
    r = c.getresponse(); r.read(); return r.status
res = {'tenant': T, 'uidmap': open('/proc/self/uid_map').read().split(), 'own': {'proxy': proxy(T + '.test'), 'router': router('model-' + T)}, 'others': {}}
for o in OTHERS:
    res['others'][o['name']] = {
        'stateDir': err(lambda: os.listdir(o['stateDir'])),
        'gateway': err(lambda: tcp(o['port'])),
        'control': err(lambda: unix(o['control'])),
        'proxy': proxy(o['name'] + '.test'),
        'router': router('model-' + o['name']),
    }
res['orchestratorSocket'] = err(lambda: unix(os.environ['HOSTSOCK']))
print('RESULT ' + json.dumps(res), flush=True)
while True: time.sleep(3600)
`;

/** Free loopback ports, chosen up front so each tenant's landlock may connect to all of them: a refusal then comes from the network namespace, not landlock. */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<net.Server>((r) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => r(s)); })));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

const get = (port: number) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    }).on('error', reject);
  });

/** Processes that are alive (not zombies) among pids. */
function alive(pids: number[]): number[] {
  return pids.filter((p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  });
}

/** The fixture's descendants (monitors, inits, workloads), from /proc. */
function tree(root: number): number[] {
  const parent = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [c, pp] of parent) if (pp === p) (out.push(c), walk(c));
  };
  walk(root);
  return out;
}

function uidOf(pid: number): number | undefined {
  try {
    return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  } catch {
    return undefined;
  }
}

describe.each(USERS)('20 tenants from one orchestrator, as %s', (user) => {
  const as = user === 'root' ? process.getuid!() : UNPRIV.uid;
  let up: FakeUpstream;
  let dir: string;
  let child: ChildProcess;
  let lines: Record<string, unknown>[] = [];
  let waiters: ((l: Record<string, unknown>) => boolean)[] = [];
  const results = new Map<string, Record<string, any>>();
  let statuses: { name: string; uid: number; stateDir: string; pid: number; gateway: { hostPort: number } }[] = [];
  let hostPorts: number[] = [];
  let runtimeDir: string;
  let hostSock: string;

  const next = (pred: (l: Record<string, unknown>) => boolean) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const hit = lines.find(pred);
      if (hit) return resolve(hit);
      waiters.push((l) => (pred(l) ? (resolve(l), true) : false));
    });

  beforeAll(async () => {
    up = await createFakeUpstream({ text: 'ok' });
    dir = mkdtempSync(join(tmpdir(), 'cj-tenants-'));
    chmodSync(dir, 0o755);
    runtimeDir = join(dir, 'run');
    const stateRoot = join(dir, 'state');
    hostSock = join(dir, 'orchestrator.sock');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(runtimeDir, { mode: 0o700 });
    if (user === 'unprivileged') chownSync(dir, UNPRIV.uid, UNPRIV.gid), chownSync(runtimeDir, UNPRIV.uid, UNPRIV.gid);
    hostPorts = await freePorts(N);
    const env: Record<string, string> = {};
    const tenants = names.map((name, i) => {
      env[`KEY_${i}`] = `key-${name}`;
      const others = names.filter((o) => o !== name).map((o) => ({ name: o, stateDir: join(stateRoot, o), port: hostPorts[names.indexOf(o)], control: join(runtimeDir, o, 'control.sock') }));
      return {
        name,
        command: ['python3', '-c', WORKLOAD],
        allow: [{ host: `${name}.test`, ports: [80] }],
        routes: [{ name: 'm', api: 'openai', upstream: up.baseUrl, credential: { env: `KEY_${i}` }, models: [`model-${name}`] }],
        gateway: { port: 8080, hostPort: hostPorts[i], health: '/readyz' },
        env: { TENANT: name, OTHERS: JSON.stringify(others), HOSTSOCK: hostSock },
        profile: { network: { approvals: { enabled: true, timeoutMs: 20000 } }, landlock: { connectPorts: hostPorts } },
      };
    });
    const config = { stateRoot, uids: { first: 73100, count: 100 }, tenants };
    const configPath = join(dir, 'tenants.json');
    writeFileSync(configPath, JSON.stringify(config));
    const fixture = join(dir, 'fixture.mjs');
    copyFileSync(join(ROOT, 'test/helpers/tenants-fixture.mjs'), fixture);
    chmodSync(fixture, 0o644);
    chmodSync(configPath, 0o644);
    const pkg = packageRootFor(user);
    const argv = [process.execPath, fixture, pkg, configPath, hostSock];
    const childEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', CLAWJAIL_RUNTIME_DIR: runtimeDir, CLAWJAIL_LOG_LEVEL: 'error', ...env };
    child =
      user === 'unprivileged' && IS_ROOT
        ? spawn('setpriv', ['--reuid', String(UNPRIV.uid), '--regid', String(UNPRIV.gid), '--clear-groups', ...argv], { env: childEnv, stdio: ['ignore', 'pipe', 'inherit'] })
        : spawn(argv[0]!, argv.slice(1), { env: childEnv, stdio: ['ignore', 'pipe', 'inherit'] });
    createInterface({ input: child.stdout! }).on('line', (text) => {
      const l = JSON.parse(text) as Record<string, unknown>;
      if (typeof l.line === 'string' && l.line.startsWith('RESULT ')) results.set(l.tenant as string, JSON.parse(l.line.slice(7)));
      lines.push(l);
      waiters = waiters.filter((w) => !w(l));
    });
    const ready = await next((l) => 'ready' in l || 'error' in l);
    if ('error' in ready) throw new Error(`orchestrator failed: ${JSON.stringify(ready.error)}`);
    statuses = ready.ready as typeof statuses;
    // Every workload prints its result once it tried everything.
    await Promise.all(names.map((n) => next((l) => l.tenant === n && typeof l.line === 'string' && l.line.startsWith('RESULT '))));
  }, 120_000);

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await up?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('each tenant runs under its own identity and state dir, created with the right owner', () => {
    expect(statuses.map((s) => s.name).sort()).toEqual(names);
    for (const s of statuses) {
      const st = statSync(s.stateDir);
      expect(st.uid).toBe(user === 'root' ? s.uid : as);
      expect(st.mode & 0o777).toBe(0o700);
      // uid_map: "inside outside count"; the outside uid is the tenant's host uid.
      expect(Number(results.get(s.name)!.uidmap[1])).toBe(s.uid);
    }
    if (user === 'root') {
      expect(new Set(statuses.map((s) => s.uid)).size).toBe(N);
      for (const s of statuses) expect(s.uid).toBeGreaterThanOrEqual(73100);
    } else {
      for (const s of statuses) expect(s.uid).toBe(UNPRIV.uid);
    }
  });

  it('every cross-tenant attempt fails with the exact error; the own proxy and router answer', () => {
    for (const name of names) {
      const r = results.get(name)!;
      // Own allowlisted host: the proxy tried it (no DNS for .test); own model: the upstream answered.
      expect(r.own).toEqual({ proxy: [502, 'resolve-failed'], router: 200 });
      expect(Object.keys(r.others).sort()).toEqual(names.filter((n) => n !== name));
      for (const [other, o] of Object.entries<Record<string, unknown>>(r.others)) {
        expect({ other, ...o }).toEqual({
          other,
          stateDir: 'ENOENT', // not mounted: the host's tenant directories do not exist inside
          gateway: 'ECONNREFUSED', // landlock allows the port; the sandbox's loopback has nothing there
          control: 'ENOENT', // the host's control sockets are not inside
          proxy: [403, 'denied'], // another tenant's destination is not on this tenant's allowlist
          router: 403, // another tenant's model is not on this tenant's route
        });
      }
      expect(r.orchestratorSocket).toBe('ENOENT');
    }
  });

  it('the host side of each boundary is real: gateways, control sockets and the orchestrator socket answer from the host', async () => {
    for (const s of statuses) {
      const r = await get(s.gateway.hostPort);
      // The gateway saw no credential: the orchestrator adds none without an edge token.
      expect(r).toEqual({ status: 200, body: `gateway ${s.name} auth=None` });
      expect(statSync(join(runtimeDir, s.name, 'control.sock')).isSocket()).toBe(true);
    }
    await new Promise<void>((resolve, reject) => net.connect(hostSock).on('data', () => resolve()).on('error', reject));
  });

  it('the fake upstream saw each tenant\'s model only with that tenant\'s key', () => {
    const seen = up.requests.map((q) => [q.json?.model, q.headers.authorization]);
    expect(seen.length).toBe(N);
    for (const name of names) expect(seen.filter(([m]) => m === `model-${name}`)).toEqual([[`model-${name}`, `Bearer key-${name}`]]);
  });

  it.skipIf(user !== 'root')('as root, one tenant\'s uid cannot read another tenant\'s state dir on the host (Permission denied)', () => {
    for (let i = 0; i < N; i++) {
      const a = statuses[i]!;
      const b = statuses[(i + 1) % N]!;
      const r = spawnSync('setpriv', ['--reuid', String(b.uid), '--regid', String(b.uid), '--clear-groups', 'ls', a.stateDir], { encoding: 'utf8' });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('Permission denied');
    }
  });

  it('SIGKILL of the orchestrator: no tenant process remains within 1 s', async () => {
    const pids = tree(child.pid!);
    // monitor + init + workload per tenant, at least
    expect(pids.length).toBeGreaterThanOrEqual(3 * N);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    const deadline = Date.now() + 1000;
    let left = alive(pids);
    while (left.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      left = alive(pids);
    }
    expect(left).toEqual([]);
    if (user === 'root') {
      const uids = new Set(statuses.map((s) => s.uid));
      const stray = readdirSync('/proc').filter((e) => /^\d+$/.test(e) && uids.has(uidOf(Number(e)) ?? -1));
      expect(alive(stray.map(Number))).toEqual([]);
    }
    for (const s of statuses) expect(existsSync(`/proc/${s.pid}`) && alive([s.pid]).length > 0).toBe(false);
  });
});
