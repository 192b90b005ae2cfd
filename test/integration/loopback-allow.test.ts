import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clawjail, sh, USERS } from '../helpers/cli.js';

// A service on the host's loopback (a local model server, a dev API) named by an allow rule is
// reached inside by the address the user wrote; without the rule it stays unreachable.
let server: http.Server;
let port: number;
const seen: string[] = [];
let dir: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.end(`host service saw ${req.method} ${req.url}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  dir = mkdtempSync(join(tmpdir(), 'cj-loopback-'));
  chmodSync(dir, 0o777);
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

describe.each(USERS)('an allowlisted host-loopback service, as %s', (as) => {
  it('is reached at 127.0.0.1:PORT inside (curl and a raw python socket), with audit events', async () => {
    const log = join(dir, `audit-${as}.jsonl`);
    const r = await clawjail(
      ['run', '--allow-host', `127.0.0.1:${port}`, '--audit-log', log, '--', ...sh(`curl -sS http://127.0.0.1:${port}/from-curl; echo; python3 -c "import socket; s = socket.create_connection(('127.0.0.1', ${port})); s.sendall(b'GET /from-python HTTP/1.0\\r\\n\\r\\n'); print(s.recv(4096).split(b'\\r\\n\\r\\n', 1)[1].decode())"`)],
      { as },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual(['host service saw GET /from-curl', 'host service saw GET /from-python']);
    const events = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const decisions = events.filter((e) => e.kind === 'egress.decision' && e.via === 'loopback');
    expect(decisions).toHaveLength(2);
    expect(decisions[0]).toMatchObject({ host: '127.0.0.1', port, decision: 'allow', reason: 'allowlisted' });
    const closes = events.filter((e) => e.kind === 'egress.close' && e.via === 'loopback');
    expect(closes).toHaveLength(2);
    for (const c of closes) expect(c.bytesIn as number).toBeGreaterThan(30);
  });

  it('without the rule the same address is refused (connection refused inside, nothing reaches the host)', async () => {
    const before = seen.length;
    const r = await clawjail(['run', '--', ...sh(`curl -sS http://127.0.0.1:${port}/nope 2>&1; echo "curl=$?"`)], { as });
    expect(r.stdout).toContain('curl=7');
    expect(r.stdout).toContain('Failed to connect to 127.0.0.1 port');
    expect(seen.length).toBe(before);
  });

  it('a deny rule still wins: the forwarded connection is closed and audited as denied', async () => {
    const profile = join(dir, `deny-${as}.yaml`);
    writeFileSync(profile, `network:\n  allow:\n    - { host: 127.0.0.1, ports: [${port}] }\n  deny:\n    - { host: 127.0.0.1 }\n`);
    const log = join(dir, `deny-${as}.jsonl`);
    const before = seen.length;
    const r = await clawjail(['run', '--profile', profile, '--audit-log', log, '--', ...sh(`curl -sS http://127.0.0.1:${port}/denied; echo "curl=$?"`)], { as });
    expect(r.stdout).toMatch(/curl=(52|56)/);
    expect(seen.length).toBe(before);
    const denied = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.via === 'loopback');
    expect(denied).toEqual([expect.objectContaining({ kind: 'egress.decision', decision: 'deny', reason: 'denied', port })]);
  });

  it.each([
    [3128, 'the egress proxy'],
    [3129, 'the inference router'],
  ])('a rule for the host\'s 127.0.0.1:%i is refused: that port is the sandbox\'s own', async (p, what) => {
    const r = await clawjail(['run', '--allow-host', `127.0.0.1:${p}`, '--', 'true'], { as });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain(`the host's 127.0.0.1:${p} cannot be reached by that address: port ${p} inside the sandbox is ${what}`);
  });

  it('a rule for a published port is refused the same way', async () => {
    const r = await clawjail(['run', '--publish', '0:8080', '--allow-host', '127.0.0.1:8080', '--', 'true'], { as });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain('port 8080 inside the sandbox is a port published into the sandbox');
  });
});
