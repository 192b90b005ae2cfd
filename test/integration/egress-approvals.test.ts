import { lstat, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { NetworkSchema, type NetworkConfigInput } from '../../src/profile/network.js';
import { createControlClient, createControlServer, runApprovalsCommand, type ControlServer } from '../../src/services/control/index.js';
import { createApprovalBroker, createProfileRulePersister, type ApprovalBroker } from '../../src/services/egress/index.js';
import { connectVia, mapResolver, startHttpUpstream, startProxy, viaProxy, type ProxyUnderTest, type Upstream } from '../helpers/egress-harness.js';
import { waitFor } from '../helpers/wait.js';

let web: Upstream;
let runtime: string;
let stack: { proxy: ProxyUnderTest; broker: ApprovalBroker; control: ControlServer; profile: string } | undefined;

beforeAll(async () => {
  web = await startHttpUpstream();
});
afterAll(async () => {
  await web.close();
});
beforeEach(async () => {
  runtime = await mkdtemp(join(tmpdir(), 'clawjail-egress-rt-'));
});
afterEach(async () => {
  if (stack) {
    await stack.broker.close();
    await stack.proxy.close();
    await stack.control.close();
    stack = undefined;
  }
  await rm(runtime, { recursive: true, force: true });
});

const env = () => ({ CLAWJAIL_RUNTIME_DIR: runtime });

/** Runs the CLI entry point and captures what it prints. */
async function cli(args: Parameters<typeof runApprovalsCommand>[0]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (c: Buffer) => (o += c.toString()));
  err.on('data', (c: Buffer) => (e += c.toString()));
  const code = await runApprovalsCommand(args, out, { err, env: env() });
  return { code, out: o, err: e };
}

const profileText = `# operator's profile
network:
  approvals:
    enabled: true # ask me
  allow:
    - host: 127.0.0.1
      ports: [PORT]
`;

/** Approvals on; `new.test` resolves to the loopback upstream, whose address a rule names. */
async function startStack(name: string, policy: NetworkConfigInput, timeoutMs = 10_000) {
  const profile = join(runtime, 'profile.yaml');
  await writeFile(profile, profileText.replace('PORT', String(web.port)));
  const broker = createApprovalBroker({ timeoutMs, persist: createProfileRulePersister(profile) });
  const proxy = await startProxy(policy, { approvals: broker, resolve: mapResolver({ 'new.test': ['127.0.0.1'], 'meta.test': ['169.254.169.254'] }) });
  const control = createControlServer({ sandbox: name, broker, env: env() });
  await control.listen();
  stack = { proxy, broker, control, profile };
  return stack;
}

const base = () => ({ approvals: { enabled: true }, allow: [{ host: '127.0.0.1', ports: [web.port] }] });

async function waitForPending(broker: ApprovalBroker, requests = 1): Promise<string> {
  const until = Date.now() + 3_000;
  for (;;) {
    const p = broker.list()[0];
    if (p && p.requests >= requests) return p.id;
    if (Date.now() > until) throw new Error('no pending approval appeared');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('approvals through the control socket', () => {
  it('holds an unknown destination, lists it once for many requests, and lets all through on approve', async () => {
    const s = await startStack('demo', base());
    const url = `http://new.test:${web.port}/held`;
    const held = [viaProxy(s.proxy.port, url), viaProxy(s.proxy.port, url), connectVia(s.proxy.port, `new.test:${web.port}`)];
    const id = await waitForPending(s.broker, 3);

    const listed = await cli({ command: 'approvals' });
    expect(listed.code).toBe(0);
    expect(listed.out).toContain('sandbox demo: 1 pending');
    expect(listed.out).toMatch(new RegExp(`${id}\\s+new\\.test:${web.port} \\(GET /held\\)\\s+http\\s+3\\s+\\d+s`));

    const json = JSON.parse((await cli({ command: 'approvals', json: true, name: 'demo' })).out) as { sandboxes: { sandbox: string; pending: { id: string; requests: number }[] }[] };
    expect(json.sandboxes[0]).toMatchObject({ sandbox: 'demo', pending: [{ id, requests: 3 }] });

    const approved = await cli({ command: 'approve', id });
    expect(approved).toMatchObject({ code: 0, out: `approved ${id} once: new.test:${web.port} (sandbox demo)\n` });
    const [a, b, c] = await Promise.all(held);
    expect(a?.status).toBe(200);
    expect(b?.status).toBe(200);
    expect(c?.ok).toBe(true);
    if (c?.ok) c.socket.destroy();
    expect(s.proxy.events.filter((e) => e.kind === 'egress.decision').map((e) => `${e.decision}/${e.reason}`)).toEqual([
      'hold/not-allowlisted',
      'hold/not-allowlisted',
      'hold/not-allowlisted',
      'allow/approved',
      'allow/approved',
      'allow/approved',
    ]);
    // Once only: the next request is held again.
    const again = viaProxy(s.proxy.port, url);
    const id2 = await waitForPending(s.broker);
    expect(id2).not.toBe(id);
    expect((await cli({ command: 'deny', id: id2 })).code).toBe(0);
    expect((await again).headers['x-clawjail-reason']).toBe('denied');
  });

  it('approve --always allows at once, writes the rule to the profile file, and later requests pass without asking', async () => {
    const s = await startStack('always', base());
    const held = viaProxy(s.proxy.port, `http://new.test:${web.port}/a`);
    const id = await waitForPending(s.broker);
    const r = await cli({ command: 'approve', id, always: true, name: 'always' });
    expect(r).toMatchObject({ code: 0, out: `approved ${id}: new.test:${web.port} (sandbox always); rule added to ${s.profile}\n` });
    expect((await held).status).toBe(200);
    const text = await readFile(s.profile, 'utf8');
    expect(text).toContain("# operator's profile");
    expect(text).toContain('enabled: true # ask me');
    const network = NetworkSchema.parse((YAML.parse(text) as { network: unknown }).network);
    expect(network.allow.map((a) => `${a.host}:${a.ports.join(',')}`)).toEqual([`127.0.0.1:${web.port}`, `new.test:${web.port}`]);
    // Live policy has the rule too: no hold this time.
    expect((await viaProxy(s.proxy.port, `http://new.test:${web.port}/b`)).status).toBe(200);
    expect(s.broker.list()).toEqual([]);
  });

  it('an approval does not open a private address the name resolves to', async () => {
    const s = await startStack('meta', base());
    const held = viaProxy(s.proxy.port, 'http://meta.test/latest/');
    const id = await waitForPending(s.broker);
    expect((await cli({ command: 'approve', id })).code).toBe(0);
    const r = await held;
    expect(r.status).toBe(403);
    expect(r.headers['x-clawjail-reason']).toBe('private-address');
  });

  it('private IP literals are refused at once, never held', async () => {
    const s = await startStack('priv', base());
    const r = await connectVia(s.proxy.port, '10.0.0.1:443');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.headers['x-clawjail-reason']).toBe('private-address');
    expect(s.broker.list()).toEqual([]);
  });

  it('no answer within the timeout → 403 approval-timeout', async () => {
    const s = await startStack('slow', base(), 300);
    const started = Date.now();
    const r = await connectVia(s.proxy.port, `new.test:${web.port}`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(r.ok).toBe(false);
    if (!r.ok) expect({ status: r.status, reason: r.headers['x-clawjail-reason'] }).toEqual({ status: 403, reason: 'approval-timeout' });
    expect(s.broker.list()).toEqual([]);
  });

  it('approvals on but no broker given → refused at once', async () => {
    const p = await startProxy({ approvals: { enabled: true } }, { resolve: mapResolver({ 'new.test': ['127.0.0.1'] }) });
    const r = await viaProxy(p.port, 'http://new.test/');
    expect(r.headers['x-clawjail-reason']).toBe('not-allowlisted');
    expect(r.body).toContain('nobody can answer');
    await p.close();
  });

  it('a client that disconnects while held stops waiting; the entry stays answerable', async () => {
    const s = await startStack('gone', base());
    const sock = net.connect(s.proxy.port, '127.0.0.1');
    sock.on('error', () => undefined);
    sock.write(`CONNECT new.test:${web.port} HTTP/1.1\r\nHost: new.test\r\n\r\n`);
    const id = await waitForPending(s.broker);
    sock.destroy();
    await waitFor(() => s.proxy.proxy.stats().clients === 0);
    expect((await cli({ command: 'approve', id })).code).toBe(0);
    expect(s.proxy.events.filter((e) => e.kind === 'egress.decision').map((e) => `${e.decision}/${e.reason}`)).toEqual(['hold/not-allowlisted', 'deny/denied']);
  });
});

describe('control socket and CLI errors', () => {
  it('makes the directory 0700 and the socket 0600, and refuses a second sandbox of the same name', async () => {
    const s = await startStack('perm', base());
    expect((await lstat(join(runtime, 'perm'))).mode & 0o777).toBe(0o700);
    expect((await lstat(s.control.path)).mode & 0o777).toBe(0o600);
    const twin = createControlServer({ sandbox: 'perm', broker: s.broker, env: env() });
    await expect(twin.listen()).rejects.toThrow(/a sandbox named perm is already running/);
  });

  it('replaces a stale socket left by a sandbox that was killed', async () => {
    const path = join(runtime, 'stale', 'control.sock');
    await mkdir(join(runtime, 'stale'), { mode: 0o700 });
    // A supervisor killed with SIGKILL leaves its socket file behind.
    const child = execa(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`]);
    await new Promise<void>((r) => child.stdout?.once('data', () => r()));
    child.kill('SIGKILL');
    await child.catch(() => undefined);
    expect((await lstat(path)).isSocket()).toBe(true);
    const broker = createApprovalBroker({ timeoutMs: 1_000 });
    const control = createControlServer({ sandbox: 'stale', broker, env: env() });
    await control.listen();
    try {
      expect(await createControlClient(path).listApprovals()).toEqual({ sandbox: 'stale', pending: [] });
    } finally {
      await control.close();
    }
    await expect(lstat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('no such sandbox: names the socket it looked for and the running ones', async () => {
    await startStack('running-one', base());
    const r = await cli({ command: 'approvals', name: 'nope' });
    expect(r.code).toBe(125);
    expect(r.err).toContain(`no running sandbox named nope: there is no control socket at ${join(runtime, 'nope', 'control.sock')}`);
    expect(r.err).toContain('running sandboxes: running-one');
  });

  it('no sandbox at all', async () => {
    const r = await cli({ command: 'approvals' });
    expect(r.code).toBe(125);
    expect(r.err).toContain(`no running sandbox: no control socket under ${runtime}`);
  });

  it('usage errors exit 125', async () => {
    expect(await cli({ command: 'approve' })).toMatchObject({ code: 125, err: expect.stringContaining('approve needs the id') });
    expect(await cli({ command: 'deny', id: 'abc', always: true })).toMatchObject({ code: 125, err: expect.stringContaining('--always only goes with approve') });
    expect(await cli({ command: 'approvals', name: '../etc' })).toMatchObject({ code: 125, err: expect.stringContaining('invalid sandbox name') });
  });

  it('an unknown id exits 125 and says how to list', async () => {
    await startStack('ids', base());
    const r = await cli({ command: 'approve', id: 'deadbeef' });
    expect(r.code).toBe(125);
    expect(r.err).toContain('no pending approval with id deadbeef');
    expect(r.err).toContain('clawjail approvals');
  });

  it('--always without a profile file approves but exits 125 saying the rule was not saved', async () => {
    const broker = createApprovalBroker({ timeoutMs: 5_000 });
    const control = createControlServer({ sandbox: 'nofile', broker, env: env() });
    await control.listen();
    try {
      const waiting = broker.request({ host: 'x.test', port: 443, via: 'connect' });
      const id = broker.list()[0]!.id;
      const r = await cli({ command: 'approve', id, always: true });
      expect(r.code).toBe(125);
      expect(r.out).toContain('for this run only');
      expect(r.err).toContain('was not saved: this sandbox has no profile file');
      expect((await waiting).verdict).toBe('allow');
    } finally {
      await control.close();
    }
  });

  it('the sandbox ending while `approve --always` writes its rule: the CLI still gets its answer and the rule is on disk', async () => {
    // The race behind a flaky `approve --always` in a real sandbox: the held request is let
    // through before the rule is written, so a short workload exits and the supervisor tears its
    // services down while the rule is still on its way to the disk. The write is held open here
    // (as a busy disk holds an fsync) until teardown has started.
    const profile = join(runtime, 'profile.yaml');
    await writeFile(profile, profileText.replace('PORT', String(web.port)));
    const write = createProfileRulePersister(profile);
    let writing!: () => void;
    const writeStarted = new Promise<void>((r) => (writing = r));
    let release!: () => void;
    const diskDone = new Promise<void>((r) => (release = r));
    let written = false;
    const broker = createApprovalBroker({
      timeoutMs: 10_000,
      persist: async (rule) => {
        writing();
        await diskDone;
        const r = await write(rule);
        written = true;
        return r;
      },
    });
    const control = createControlServer({ sandbox: 'teardown', broker, env: env() });
    await control.listen();
    const held = broker.request({ host: 'new.test', port: web.port, via: 'http', method: 'GET', path: '/' });
    const id = broker.list()[0]!.id;
    const approving = cli({ command: 'approve', id, always: true, name: 'teardown' });
    // The waiting request is answered first (that is what lets the workload finish)…
    expect(await held).toMatchObject({ verdict: 'allow', reason: 'approved' });
    await writeStarted;
    // …and the supervisor tears down, as launch() does once the workload has exited.
    let writtenWhenClosed: boolean | undefined;
    const teardown = Promise.allSettled([control.close(), broker.close()]).then(() => (writtenWhenClosed = written));
    release();
    const r = await approving;
    expect(r).toEqual({ code: 0, out: `approved ${id}: new.test:${web.port} (sandbox teardown); rule added to ${profile}\n`, err: '' });
    await teardown;
    expect(writtenWhenClosed).toBe(true);
    const network = NetworkSchema.parse((YAML.parse(await readFile(profile, 'utf8')) as { network: unknown }).network);
    expect(network.allow.map((a) => `${a.host}:${a.ports.join(',')}`)).toEqual([`127.0.0.1:${web.port}`, `new.test:${web.port}`]);
    // The socket is gone afterwards: a late CLI is told the sandbox is not running.
    const late = await cli({ command: 'approvals', name: 'teardown' });
    expect(late.code).not.toBe(0);
    expect(late.err).toContain('no sandbox');
  });

  it('the control socket rejects malformed requests', async () => {
    const s = await startStack('proto', base());
    const client = createControlClient(s.control.path);
    await expect(client.decide('../../x', 'allow')).rejects.toMatchObject({ code: 'ERR_CLAWJAIL_NOT_FOUND' });
    const raw = await new Promise<string>((resolve) => {
      const sock = net.connect(s.control.path);
      let text = '';
      sock.on('data', (c: Buffer) => (text += c.toString()));
      sock.on('close', () => resolve(text));
      sock.end('POST /v1/approvals/abcd HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\nConnection: close\r\n\r\n{"verdict":"maybe"}\n');
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    expect(raw).toContain('verdict must be');
    expect(await client.info()).toEqual({ name: 'proto', pid: process.pid });
  });
});
