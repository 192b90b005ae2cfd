import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrchestrator, type Orchestrator } from '../../src/index.js';
import { createEdge } from '../../src/tenants/edge.js';

// A gateway that shows what it received: path and Authorization.
const GATEWAY = String.raw`
import http.server, os
T = os.environ['TENANT']
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('%s path=%s auth=%s' % (T, self.path, self.headers.get('authorization'))).encode()
        self.send_response(200); self.send_header('content-length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('127.0.0.1', 8080), H).serve_forever()
`;

const request = (port: number, host: string, path: string, token?: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers: { host, ...(token ? { authorization: `Bearer ${token}` } : {}) } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });

describe('the edge: one port, routed by Host or path, with each tenant\'s token', () => {
  let orch: Orchestrator;
  let edge: { port: number; close(): Promise<void> };
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cj-edge-'));
    const tenant = (name: string) => ({
      name,
      command: ['python3', '-c', GATEWAY],
      env: { TENANT: name },
      gateway: { port: 8080, health: '/readyz', token: { env: `GW_${name.toUpperCase()}` } },
      edge: { token: { env: `EDGE_${name.toUpperCase()}` } },
    });
    orch = createOrchestrator({
      config: { stateRoot: join(dir, 'state'), uids: { first: 73400, count: 10 }, tenants: [tenant('alpha'), tenant('beta'), { name: 'hidden', command: ['python3', '-c', GATEWAY], env: { TENANT: 'hidden' }, gateway: { port: 8080 } }] },
      credentialEnv: { GW_ALPHA: 'gw-alpha', GW_BETA: 'gw-beta', EDGE_ALPHA: 'edge-alpha', EDGE_BETA: 'edge-beta' },
    });
    await orch.start();
    await Promise.all(['alpha', 'beta', 'hidden'].map((n) => orch.ready(n)));
    edge = await createEdge(orch, { port: 0 });
  });
  afterAll(async () => {
    await edge?.close();
    await orch?.close(500);
    rmSync(dir, { recursive: true, force: true });
  });

  it('forwards with the gateway token in place of the client\'s, by Host and by /t/NAME/', async () => {
    expect(await request(edge.port, 'alpha.tenants.example', '/hello', 'edge-alpha')).toEqual({ status: 200, body: 'alpha path=/hello auth=Bearer gw-alpha' });
    expect(await request(edge.port, 'localhost', '/t/beta/x?y=1', 'edge-beta')).toEqual({ status: 200, body: 'beta path=/x?y=1 auth=Bearer gw-beta' });
  });

  it('refuses a missing token, a wrong one, and another tenant\'s token with 401', async () => {
    expect((await request(edge.port, 'alpha.tenants.example', '/', undefined)).status).toBe(401);
    expect((await request(edge.port, 'alpha.tenants.example', '/', 'nope')).status).toBe(401);
    const cross = await request(edge.port, 'alpha.tenants.example', '/', 'edge-beta');
    expect(cross).toEqual({ status: 401, body: JSON.stringify({ error: 401, message: 'missing or wrong token for this tenant' }) });
    // The gateway token itself is not an edge credential either.
    expect((await request(edge.port, 'beta.tenants.example', '/', 'gw-beta')).status).toBe(401);
  });

  it('a tenant without an edge token, an unknown tenant and a removed one answer 404', async () => {
    expect((await request(edge.port, 'hidden.tenants.example', '/', 'edge-alpha')).status).toBe(404);
    expect((await request(edge.port, 'nobody.tenants.example', '/', 'edge-alpha')).status).toBe(404);
    await orch.remove('beta', 500);
    expect((await request(edge.port, 'localhost', '/t/beta/', 'edge-beta')).status).toBe(404);
  });

  it('a WebSocket-style upgrade gets the same check: 401 without the token, bytes through with it', async () => {
    const raw = (token?: string) =>
      new Promise<string>((resolve, reject) => {
        const s = net.connect(edge.port, '127.0.0.1', () => {
          s.write(`GET /ws HTTP/1.1\r\nHost: alpha.tenants.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${token ? `Authorization: Bearer ${token}\r\n` : ''}\r\n`);
        });
        let got = '';
        s.on('data', (d: Buffer) => (got += d.toString()));
        s.on('end', () => resolve(got));
        s.on('close', () => resolve(got));
        s.on('error', reject);
      });
    expect(await raw()).toMatch(/^HTTP\/1\.1 401 /);
    // python's http.server does not speak WebSocket: it answers the forwarded GET, proving the bytes reached the gateway with its token.
    expect(await raw('edge-alpha')).toContain('alpha path=/ws auth=Bearer gw-alpha');
  });
});
