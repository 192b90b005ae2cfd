import { mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrchestrator, type Orchestrator } from '../../src/index.js';
import { createEdge } from '../../src/tenants/edge.js';
import { launcherAvailable, openclawCacheDir, openclawForTests } from '../helpers/openclaw-e2e.js';
import { IS_ROOT } from '../helpers/cli.js';

const oc = await openclawForTests();
const launcher = await launcherAvailable();
const SKIP = 'skip' in oc ? oc.skip : 'skip' in launcher ? launcher.skip : undefined;

const get = (port: number, path: string, token?: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });

describe.skipIf(SKIP !== undefined)(`an OpenClaw tenant (no command) behind the edge${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let orch: Orchestrator;
  let edge: { port: number; close(): Promise<void> };
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cj-oc-tenant-'));
    orch = createOrchestrator({
      config: { stateRoot: join(dir, 'state'), uids: { first: 73700, count: 5 }, tenants: [{ name: 'oc', edge: { token: { env: 'OC_EDGE' } } }] },
      credentialEnv: { OC_EDGE: 'edge-oc' },
      openclaw: { cacheDir: openclawCacheDir() },
    });
    await orch.start();
    await orch.ready('oc');
    edge = await createEdge(orch, { port: 0 });
  }, 120_000);
  afterAll(async () => {
    await edge?.close();
    await orch?.close(3000);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('its state is an OpenClaw sandbox owned by the tenant; its gateway is ready and published', () => {
    const st = orch.status('oc');
    expect(st.state).toBe('ready');
    expect(st.gateway).toMatchObject({ port: 18789 });
    const config = statSync(join(st.stateDir, '.openclaw', 'openclaw.json'));
    expect(config.uid).toBe(IS_ROOT ? 73700 : process.getuid!());
    expect(config.mode & 0o077).toBe(0);
  });

  it('the edge reaches the gateway with the tenant\'s token only', async () => {
    const ok = await get(edge.port, '/t/oc/healthz', 'edge-oc');
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ ok: true });
    expect((await get(edge.port, '/t/oc/healthz')).status).toBe(401);
  });
});
