import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createOrchestrator, type Orchestrator, type TenantEvent } from '../../src/index.js';
import { IS_ROOT } from '../helpers/cli.js';

let orch: Orchestrator | undefined;
let dir: string | undefined;
afterEach(async () => {
  await orch?.close(500);
  orch = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function setup(config: Record<string, unknown> = {}) {
  dir = mkdtempSync(join(tmpdir(), 'cj-orch-'));
  orch = createOrchestrator({ config: { stateRoot: join(dir, 'state'), uids: { first: 73300, count: 3 }, ...config } });
  const events: TenantEvent[] = [];
  orch.on('event', (e: TenantEvent) => events.push(e));
  const until = (pred: (e: TenantEvent) => boolean) =>
    new Promise<TenantEvent>((resolve) => {
      const hit = events.find(pred);
      if (hit) return resolve(hit);
      const on = (e: TenantEvent) => pred(e) && (orch!.off('event', on), resolve(e));
      orch!.on('event', on);
    });
  return { orch, events, until };
}

describe('createOrchestrator', () => {
  it('restarts a crashing tenant with backoff and gives up after maxAttempts; events carry the tenant', async () => {
    const { orch, events, until } = setup({ restart: { initialMs: 20, factor: 2, maxMs: 1000, maxAttempts: 3 } });
    await orch.add({ name: 'crashy', command: ['sh', '-c', 'echo boom >&2; exit 3'] });
    const gaveUp = await until((e) => e.kind === 'gave-up');
    expect(gaveUp).toMatchObject({ tenant: 'crashy', attempts: 3 });
    const scheduled = events.filter((e) => e.kind === 'restart-scheduled').map((e) => e.delayMs);
    expect(scheduled).toEqual([20, 40, 80]);
    expect(events.filter((e) => e.kind === 'exit').map((e) => e.code)).toEqual([3, 3, 3, 3]);
    expect(events.every((e) => e.tenant === 'crashy')).toBe(true);
    expect(orch.status('crashy')).toMatchObject({ state: 'failed', restarts: 3, lastExit: { code: 3 }, lastError: { code: 'ERR_CLAWJAIL_TENANT_CRASHING' } });
    // The last run's output may still be in flight at its exit: wait for its stream's end.
    const stderr = orch.sandbox('crashy')!.stderr!;
    if (!stderr.readableEnded) await new Promise((r) => stderr.once('end', r));
    expect(orch.logs('crashy')).toBe('boom\nboom\nboom\nboom\n');
    await expect(orch.ready('crashy')).rejects.toMatchObject({ code: 'ERR_CLAWJAIL_TENANT_CRASHING' });
  });

  it('a restart that cannot start (state dir replaced by a file) is retried with growing backoff, and recovers', async () => {
    const { renameSync, writeFileSync, rmSync: rm } = await import('node:fs');
    const { orch, events, until } = setup({ restart: { initialMs: 50, factor: 2, maxMs: 1000 } });
    let failures = 0;
    orch.on('event', (e: TenantEvent) => {
      const dirOf = () => orch.status('phoenix').stateDir;
      // Synchronous in the event: before the restart timer can fire.
      if (e.kind === 'exit' && events.filter((x) => x.kind === 'exit').length === 1) {
        renameSync(dirOf(), `${dirOf()}.away`);
        writeFileSync(dirOf(), 'not a directory');
      }
      if (e.kind === 'failed' && ++failures === 2) {
        rm(dirOf());
        renameSync(`${dirOf()}.away`, dirOf());
      }
    });
    await orch.add({ name: 'phoenix', command: ['sh', '-c', 'test -f /sandbox/ran && exec sleep 60; touch /sandbox/ran; exit 3'] });
    await until((e) => e.kind === 'started' && events.filter((x) => x.kind === 'started').length === 2);
    const failed = events.filter((e) => e.kind === 'failed');
    expect(failed.map((e) => e.code)).toEqual(['ERR_CLAWJAIL_TENANT_STATE', 'ERR_CLAWJAIL_TENANT_STATE']);
    expect(failed[0]!.message).toContain('is not a directory');
    expect(events.filter((e) => e.kind === 'restart-scheduled').map((e) => e.delayMs)).toEqual([50, 100, 200]);
    expect(events.filter((e) => e.kind === 'exit')).toHaveLength(1);
    await orch.ready('phoenix');
    expect(orch.status('phoenix')).toMatchObject({ state: 'ready', restarts: 3 });
  });

  it('serves the gateway on a host unix socket (0600) that outlives a restart; a bad socket path is refused and leaves nothing running', async () => {
    const { orch } = setup();
    const sock = join(dir!, 'gw.sock');
    const gw = ['python3', '-m', 'http.server', '8080', '--bind', '127.0.0.1', '--directory', '/sandbox'];
    await orch.add({ name: 'sock', command: gw, gateway: { port: 8080, health: '/', socket: sock } });
    await orch.ready('sock');
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    expect(orch.status('sock').gateway).toMatchObject({ port: 8080, socket: sock });
    const { request } = await import('node:http');
    const viaSocket = () =>
      new Promise<number>((resolve, reject) => request({ socketPath: sock, path: '/' }, (res) => (res.resume(), resolve(res.statusCode!))).on('error', reject).end());
    expect(await viaSocket()).toBe(200);
    await orch.restart('sock', 500);
    await orch.ready('sock');
    expect(await viaSocket()).toBe(200);
    await expect(orch.add({ name: 'badsock', command: gw, gateway: { port: 8080, socket: join(dir!, 'no', 'such', 'dir', 'gw.sock') } })).rejects.toMatchObject({
      code: 'ERR_CLAWJAIL_SERVICE',
      message: expect.stringContaining('cannot serve the gateway on'),
    });
    expect(orch.list().map((t) => t.name)).toEqual(['sock']);
    // An open client connection does not hold up remove(); it ends with the sandbox.
    const { connect } = await import('node:net');
    const held = connect(sock);
    const heldClosed = new Promise((r) => held.on('close', r));
    await new Promise((r) => held.once('connect', r));
    await orch.remove('sock', 500);
    await heldClosed;
    await expect(viaSocket()).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a ready gateway that stops answering 200 becomes unready (unhealthy), and ready again when it recovers', async () => {
    const { writeFileSync, unlinkSync } = await import('node:fs');
    const { orch, events, until } = setup();
    const GW = String.raw`
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 503 if os.path.exists('/sandbox/sick') else 200
        self.send_response(code); self.send_header('content-length', '0'); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('127.0.0.1', 8080), H).serve_forever()
`;
    await orch.add({ name: 'flaky', command: ['python3', '-c', GW], gateway: { port: 8080, health: '/readyz', healthIntervalMs: 50 } });
    await orch.ready('flaky');
    const sick = join(orch.status('flaky').stateDir, 'sick');
    writeFileSync(sick, '');
    expect(await until((e) => e.kind === 'unhealthy')).toMatchObject({ tenant: 'flaky', failures: 3 });
    expect(orch.status('flaky').state).toBe('running');
    unlinkSync(sick);
    await until((e) => e.kind === 'ready' && events.filter((x) => x.kind === 'ready').length === 2);
    expect(orch.status('flaky').state).toBe('ready');
    expect(events.filter((e) => e.kind === 'exit')).toEqual([]);
  });

  it('egress approvals are asked with the tenant\'s name and reported as tenant events', async () => {
    dir = mkdtempSync(join(tmpdir(), 'cj-orch-'));
    const asked: [string, string][] = [];
    orch = createOrchestrator({
      config: { stateRoot: join(dir, 'state'), uids: { first: 73300, count: 3 } },
      onApproval: (tenant, p) => (asked.push([tenant, p.host]), 'deny'),
    });
    const events: TenantEvent[] = [];
    orch.on('event', (e: TenantEvent) => events.push(e));
    let out = '';
    orch.on('output', (t: string, _s: string, d: Buffer) => t === 'asker' && (out += d.toString()));
    await orch.add({
      name: 'asker',
      command: ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-x', 'http://127.0.0.1:3128', 'http://not-allowed.example/'],
      profile: { network: { approvals: { enabled: true, timeoutMs: 20000 } } },
    });
    // All of the output: the stream ends once the workload is gone.
    await new Promise<void>((r) => orch!.sandbox('asker')!.stdout!.once('end', r));
    expect(out).toBe('403');
    expect(asked).toEqual([['asker', 'not-allowed.example']]);
    expect(events.find((e) => e.kind === 'approval')).toMatchObject({ tenant: 'asker', pending: { host: 'not-allowed.example', port: 80 } });
  });

  it('start(): a config tenant that cannot start stays visible and is retried; when every tenant fails, start() rejects', async () => {
    const { orch, until } = setup({
      restart: { initialMs: 20, maxAttempts: 2 },
      tenants: [
        { name: 'good', command: ['sleep', '60'] },
        { name: 'bad', command: ['no-such-binary-here'] },
      ],
    });
    const started = await orch.start();
    expect(started.map((t) => t.name).sort()).toEqual(['bad', 'good']);
    expect(orch.status('bad')).toMatchObject({ lastError: { code: 'ERR_CLAWJAIL_NOT_FOUND', message: expect.stringContaining('command not found inside the sandbox: no-such-binary-here') } });
    expect(await until((e) => e.kind === 'gave-up')).toMatchObject({ tenant: 'bad', attempts: 2 });
    expect(orch.status('good').state).toBe('ready');
    await orch.close(200);

    const dir2 = mkdtempSync(join(tmpdir(), 'cj-orch-'));
    try {
      const all = createOrchestrator({ config: { stateRoot: join(dir2, 'state'), tenants: [{ name: 'bad', command: ['no-such-binary-here'] }] } });
      await expect(all.start()).rejects.toMatchObject({ code: 'ERR_CLAWJAIL_NOT_FOUND', exitCode: 127 });
      expect(all.status('bad')).toMatchObject({ state: 'stopped', lastError: { code: 'ERR_CLAWJAIL_NOT_FOUND' } });
    } finally {
      rmSync(dir2, { recursive: true, force: true });
    }
  });

  it('a tenant\'s own audit events (launch, egress) reach the orchestrator tagged with it', async () => {
    const { orch, until } = setup();
    await orch.add({ name: 'auditor', command: ['curl', '-s', '-o', '/dev/null', '-x', 'http://127.0.0.1:3128', 'http://not-allowed.example/'] });
    const launch = await until((e) => e.kind === 'audit' && (e.audit as { kind: string }).kind === 'launch');
    expect(launch).toMatchObject({ tenant: 'auditor', audit: { sandbox: 'auditor' } });
    const egress = await until((e) => e.kind === 'audit' && (e.audit as { kind: string }).kind.startsWith('egress'));
    expect(egress).toMatchObject({ tenant: 'auditor', audit: { decision: 'deny', reason: 'not-allowlisted' } });
  });

  it('refuses a duplicate name and a clashing uid or key with a coded error; the orchestrator keeps running', async () => {
    const { orch } = setup();
    await orch.add({ name: 'one', command: ['sleep', '60'], uid: 73301 });
    await expect(orch.add({ name: 'one', command: ['true'] })).rejects.toMatchObject({ code: 'ERR_CLAWJAIL_TENANT_EXISTS', message: expect.stringContaining('a tenant named one already exists') });
    await expect(orch.add({ name: 'two', command: ['true'], uid: 73301 })).rejects.toMatchObject({ code: 'ERR_CLAWJAIL_TENANT_CONFIG', message: expect.stringContaining('tenants one and two share the uid 73301') });
    await expect(orch.add({ name: 'Bad Name', command: ['true'] } as never)).rejects.toMatchObject({ code: 'ERR_CLAWJAIL_TENANT_CONFIG', message: expect.stringContaining('name: a tenant name is') });
    await expect(orch.add({ name: 'three', command: ['true'], gateway: { token: { env: 'NO_SUCH_TOKEN_VAR' } } })).rejects.toMatchObject({ code: 'ERR_CLAWJAIL_CREDENTIAL_MISSING', message: expect.stringContaining('environment variable NO_SUCH_TOKEN_VAR is not set') });
    expect(orch.list().map((t) => t.name)).toEqual(['one']);
    expect(orch.status('one').state).toBe('ready');
    expect(() => orch.status('nope')).toThrow(expect.objectContaining({ code: 'ERR_CLAWJAIL_NOT_FOUND' }));
  });

  it.skipIf(!IS_ROOT)('as root: a removed tenant\'s uid is free again, never shared while it exists; a full range is refused', async () => {
    const { orch } = setup();
    const a = await orch.add({ name: 'a', command: ['sleep', '60'] });
    const b = await orch.add({ name: 'b', command: ['sleep', '60'] });
    const c = await orch.add({ name: 'c', command: ['sleep', '60'] });
    expect([a.uid, b.uid, c.uid]).toEqual([73300, 73301, 73302]);
    expect(statSync(a.stateDir)).toMatchObject({ uid: 73300, gid: 73300 });
    await expect(orch.add({ name: 'd', command: ['sleep', '60'] })).rejects.toMatchObject({ code: 'ERR_CLAWJAIL_TENANT_UID', message: expect.stringContaining('no free uid left') });
    await orch.remove('b', 500);
    const d = await orch.add({ name: 'd', command: ['sleep', '60'] });
    expect(d.uid).toBe(73301);
    // b's state dir stays (state is data), owned by 73301, which is d's now. b coming back on
    // another uid is refused rather than given a directory owned by another tenant's uid.
    await orch.remove('c', 500);
    await expect(orch.add({ name: 'b', command: ['true'] })).rejects.toMatchObject({ code: 'ERR_CLAWJAIL_TENANT_STATE', message: expect.stringContaining('is owned by uid 73301, but the tenant runs as uid 73302') });
    expect(orch.list().map((t) => t.name)).toEqual(['a', 'd']);
  });

  it('restart() replaces the sandbox; remove() stops it; stats() and close()', async () => {
    const { orch, until } = setup();
    const first = await orch.add({ name: 'r', command: ['sleep', '60'] });
    await orch.ready('r');
    expect(orch.stats('r').processes).toBeGreaterThanOrEqual(3);
    const again = await orch.restart('r', 500);
    expect(again.pid).not.toBe(first.pid);
    expect(again.restarts).toBe(1);
    expect((await until((e) => e.kind === 'exit')).signal).toBe('SIGTERM');
    await orch.remove('r', 500);
    expect(orch.list()).toEqual([]);
    expect(() => process.kill(again.pid!, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    const armed = new Promise<void>((r) => orch.on('output', (t: string, _s: string, d: Buffer) => t === 's' && d.toString().includes('armed') && r()));
    await orch.add({ name: 's', command: ['sh', '-c', 'trap "" TERM; echo armed; sleep 60'] });
    await armed;
    await orch.close(200);
    expect(orch.status('s')).toMatchObject({ state: 'stopped', lastExit: { signal: 'SIGKILL' } });
    await expect(orch.add({ name: 't', command: ['true'] })).rejects.toMatchObject({ code: 'ERR_CLAWJAIL_TENANT_CLOSED' });
  });
});
