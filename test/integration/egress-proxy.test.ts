import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NetworkSchema } from '../../src/profile/network.js';
import {
  connectVia,
  httpsViaTunnel,
  mapResolver,
  patternHash,
  PATTERN,
  rawExchange,
  startHttpUpstream,
  startProxy,
  startTlsUpstream,
  statusAndReason,
  viaProxy,
  type ProxyUnderTest,
  type Upstream,
} from '../helpers/egress-harness.js';
import { makeTestCert, type TestCert } from '../helpers/tls-cert.js';
import { freePort, waitFor } from '../helpers/wait.js';

let cert: TestCert;
let web: Upstream;
let tlsUp: Upstream & { handshakes: string[] };
let running: ProxyUnderTest | undefined;

beforeAll(async () => {
  cert = await makeTestCert(['upstream.test', 'a.x.test'], ['127.0.0.1']);
  web = await startHttpUpstream();
  tlsUp = await startTlsUpstream(cert);
});
afterAll(async () => {
  await web.close();
  await tlsUp.close();
});
afterEach(async () => {
  await running?.close();
  running = undefined;
  web.seen.length = 0;
  tlsUp.seen.length = 0;
  tlsUp.handshakes.length = 0;
});

const names = {
  'upstream.test': ['127.0.0.1'],
  'a.x.test': ['127.0.0.1'],
  'x.test': ['127.0.0.1'],
  'bad.x.test': ['127.0.0.1'],
  'meta.test': ['169.254.169.254'],
  'mixed.test': ['169.254.169.254', '127.0.0.1'],
  'mapped.test': ['::ffff:127.0.0.1'],
};

async function proxyWith(policy: Parameters<typeof startProxy>[0], opts: Parameters<typeof startProxy>[1] = {}): Promise<ProxyUnderTest> {
  running = await startProxy(policy, { resolve: mapResolver(names), ...opts });
  return running;
}

const decisions = (p: ProxyUnderTest) => p.events.filter((e) => e.kind === 'egress.decision');

function expectRefusal(r: { status: number; headers: http.IncomingHttpHeaders; body: string }, status: number, reason: string): void {
  expect({ status: r.status, reason: r.headers['x-clawjail-reason'] }).toEqual({ status, reason });
  expect(r.body).toMatch(new RegExp(`^clawjail: .*${reason}`));
}

describe('allowed destinations', () => {
  it('forwards plain HTTP to an address a rule names, with hop-by-hop headers stripped and Host from the URL', async () => {
    const p = await proxyWith({ allow: [{ host: '127.0.0.1', ports: [web.port] }] });
    const r = await viaProxy(p.port, `http://127.0.0.1:${web.port}/hello?x=1`, {
      headers: { Host: 'evil.test', 'Proxy-Authorization': 'Basic c2VjcmV0', 'Proxy-Connection': 'keep-alive', 'X-Keep': 'yes', Connection: 'X-Hop', 'X-Hop': 'drop' },
    });
    expect(r.status).toBe(200);
    expect(r.headers['x-upstream']).toBe('yes');
    expect(r.headers['x-drop-me']).toBeUndefined();
    const seen = web.seen[0]!;
    expect(seen.url).toBe('/hello?x=1');
    expect(seen.headers.host).toBe(`127.0.0.1:${web.port}`);
    expect(seen.headers['x-keep']).toBe('yes');
    expect(seen.headers['proxy-authorization']).toBeUndefined();
    expect(seen.headers['proxy-connection']).toBeUndefined();
    expect(seen.headers['x-hop']).toBeUndefined();
    expect(decisions(p)[0]).toMatchObject({ kind: 'egress.decision', sandbox: 'test', via: 'http', host: '127.0.0.1', port: web.port, decision: 'allow', reason: 'allowlisted', rule: 'allow[0] 127.0.0.1', ip: '127.0.0.1', method: 'GET', path: '/hello' });
  });

  it('forwards a request body unchanged (chunked upload)', async () => {
    const p = await proxyWith({ allow: [{ host: '127.0.0.1', ports: [web.port] }] });
    const r = await viaProxy(p.port, `http://127.0.0.1:${web.port}/upload`, { method: 'POST', headers: { 'Transfer-Encoding': 'chunked' }, body: 'x'.repeat(100_000) });
    expect(r.status).toBe(200);
    expect(web.seen[0]?.body).toHaveLength(100_000);
  });

  it('forwards plain HTTP to a name whose address a rule also names', async () => {
    const p = await proxyWith({ allow: [{ host: 'upstream.test', ports: [web.port] }, { host: '127.0.0.1', ports: [web.port] }] });
    const r = await viaProxy(p.port, `http://upstream.test:${web.port}/n`);
    expect(r.status).toBe(200);
    expect(web.seen[0]?.headers.host).toBe(`upstream.test:${web.port}`);
    expect(decisions(p)[0]).toMatchObject({ decision: 'allow', rule: `allow[0] upstream.test + allow[1] 127.0.0.1`, ip: '127.0.0.1', ipClass: 'loopback' });
  });

  it('tunnels HTTPS through CONNECT with the SNI of the CONNECT host, and reports bytes at close', async () => {
    const p = await proxyWith({ allow: [{ host: 'upstream.test', ports: [tlsUp.port] }, { host: '127.0.0.1', ports: [tlsUp.port] }] });
    const r = await httpsViaTunnel(p.port, `upstream.test:${tlsUp.port}`, { servername: 'upstream.test', ca: cert.cert, path: '/secure' });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ url: '/secure', servername: 'upstream.test' });
    await waitFor(() => p.events.some((e) => e.kind === 'egress.close'));
    const close = p.events.find((e) => e.kind === 'egress.close')!;
    expect(close).toMatchObject({ via: 'connect', host: 'upstream.test', port: tlsUp.port, ip: '127.0.0.1' });
    expect(close.bytesIn as number).toBeGreaterThan(r.body.length);
    expect(close.bytesOut as number).toBeGreaterThan(200);
  });

  it('tunnels to an IP literal, where the client sends no SNI', async () => {
    const p = await proxyWith({ allow: [{ host: '127.0.0.1', ports: [tlsUp.port] }] });
    const r = await httpsViaTunnel(p.port, `127.0.0.1:${tlsUp.port}`, { host: '127.0.0.1', ca: cert.cert });
    expect(r.status).toBe(200);
    expect(tlsUp.handshakes).toEqual(['']);
  });

  it('carries a 32 MiB download through a tunnel byte for byte, and counts it in bytesIn', async () => {
    const p = await proxyWith({ allow: [{ host: '127.0.0.1', ports: [web.port] }] });
    const t = await connectVia(p.port, `127.0.0.1:${web.port}`);
    if (!t.ok) throw new Error(`tunnel refused: ${t.status}`);
    const size = 32 << 20;
    const raw = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      t.socket.on('data', (c: Buffer) => chunks.push(c));
      t.socket.on('end', () => resolve(Buffer.concat(chunks)));
      t.socket.write(`GET /bytes/${size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    });
    const body = raw.subarray(raw.indexOf('\r\n\r\n') + 4);
    expect(body.length).toBe(size);
    expect(createHash('sha256').update(body).digest('hex')).toBe(patternHash(size));
    await waitFor(() => p.events.some((e) => e.kind === 'egress.close'));
    expect(p.events.find((e) => e.kind === 'egress.close')?.bytesIn).toBe(raw.length);
  });

  it('carries a 32 MiB plain-HTTP download byte for byte', async () => {
    const p = await proxyWith({ allow: [{ host: '127.0.0.1', ports: [web.port] }] });
    const size = 32 << 20;
    const body = await new Promise<Buffer>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: p.port, path: `http://127.0.0.1:${web.port}/bytes/${size}`, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks)));
      }).on('error', reject);
    });
    expect(createHash('sha256').update(body).digest('hex')).toBe(patternHash(size));
  });

  it('tunnels a server-speaks-first protocol, a 16 MiB upload and a half-close', async () => {
    // SMTP-like: the server greets first, then echoes a digest of everything it got once the client half-closes.
    const banner = net.createServer((sock) => {
      const h = createHash('sha256');
      let n = 0;
      sock.write('220 hello\r\n');
      sock.on('data', (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      sock.on('end', () => sock.end(`${n} ${h.digest('hex')}\n`));
    });
    await new Promise<void>((r) => banner.listen(0, '127.0.0.1', r));
    const port = (banner.address() as net.AddressInfo).port;
    try {
      const p = await proxyWith({ allow: [{ host: '127.0.0.1', ports: [port] }] });
      const t = await connectVia(p.port, `127.0.0.1:${port}`);
      if (!t.ok) throw new Error('tunnel refused');
      const received: Buffer[] = [];
      t.socket.on('data', (c: Buffer) => received.push(c));
      await waitFor(() => Buffer.concat(received).toString().startsWith('220 hello'));
      const upload = Buffer.concat(Array.from({ length: 16 }, () => PATTERN.subarray(0, 1 << 20)));
      t.socket.end(upload);
      await new Promise((r) => t.socket.once('close', r));
      expect(Buffer.concat(received).toString()).toBe(`220 hello\r\n${upload.length} ${createHash('sha256').update(upload).digest('hex')}\n`);
    } finally {
      banner.close();
    }
  });

  it('keeps a quiet tunnel open past the header timeout', async () => {
    const p = await proxyWith({ allow: [{ host: '127.0.0.1', ports: [web.port] }] }, { limits: { headersTimeoutMs: 200 } });
    const t = await connectVia(p.port, `127.0.0.1:${web.port}`);
    if (!t.ok) throw new Error('tunnel refused');
    await new Promise((r) => setTimeout(r, 700));
    const answer = await new Promise<string>((resolve) => {
      t.socket.once('data', (c: Buffer) => resolve(c.toString('latin1')));
      t.socket.write('GET /late HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    t.socket.destroy();
  });

  it('serves local hosts in-process, over plain HTTP and CONNECT', async () => {
    const local: http.RequestListener = (req, res) => res.end(`local ${req.url}`);
    const p = await proxyWith({}, { localHandlers: { 'inference.local': local } });
    const r = await viaProxy(p.port, 'http://inference.local/v1/models');
    expect(r).toMatchObject({ status: 200, body: 'local /v1/models' });
    const t = await connectVia(p.port, 'inference.local:80');
    if (!t.ok) throw new Error('tunnel refused');
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      t.socket.on('data', (c: Buffer) => {
        text += c.toString();
        if (text.includes('local /v1/chat')) resolve(text);
      });
      t.socket.write('GET /v1/chat HTTP/1.1\r\nHost: inference.local\r\n\r\n');
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    t.socket.destroy();
    expect(decisions(p).map((e) => e.reason)).toEqual(['local', 'local']);
  });
});

describe('refusals', () => {
  it('refuses a host no rule names, over HTTP and CONNECT, without looking the name up', async () => {
    const calls: string[] = [];
    const p = await proxyWith({ allow: [{ host: 'upstream.test' }] }, { resolve: mapResolver(names, calls) });
    expectRefusal(await viaProxy(p.port, 'http://unknown.test/'), 403, 'not-allowlisted');
    expectRefusal(await connectVia(p.port, 'unknown.test:443'), 403, 'not-allowlisted');
    expect(calls).toEqual([]);
    expect(decisions(p).map((e) => [e.decision, e.reason, e.host])).toEqual([
      ['deny', 'not-allowlisted', 'unknown.test'],
      ['deny', 'not-allowlisted', 'unknown.test'],
    ]);
  });

  it('refuses an allowed host on a port the rule does not list', async () => {
    const p = await proxyWith({ allow: [{ host: 'upstream.test', ports: [tlsUp.port] }, { host: '127.0.0.1', ports: [tlsUp.port] }] });
    const r = await connectVia(p.port, `upstream.test:${web.port}`);
    expectRefusal(r, 403, 'not-allowlisted');
    if (!r.ok) expect(r.body).toContain(`upstream.test is allowed only on port ${tlsUp.port}, not ${web.port}`);
  });

  it('*.x.test matches a.x.test but not x.test', async () => {
    const p = await proxyWith({ allow: [{ host: '*.x.test', ports: [web.port] }, { host: '127.0.0.1', ports: [web.port] }] });
    expect((await viaProxy(p.port, `http://a.x.test:${web.port}/`)).status).toBe(200);
    expectRefusal(await viaProxy(p.port, `http://x.test:${web.port}/`), 403, 'not-allowlisted');
  });

  it('a deny rule wins over an allow rule', async () => {
    const p = await proxyWith({ allow: [{ host: '*.x.test', ports: [web.port] }, { host: '127.0.0.1', ports: [web.port] }], deny: [{ host: 'bad.x.test' }] });
    const r = await viaProxy(p.port, `http://bad.x.test:${web.port}/`);
    expectRefusal(r, 403, 'denied');
    expect(decisions(p)[0]).toMatchObject({ reason: 'denied', rule: 'deny[0] bad.x.test' });
    expect(web.seen).toEqual([]);
  });

  it('refuses an allowed name that resolves to loopback unless a rule names the address', async () => {
    const p = await proxyWith({ allow: [{ host: 'upstream.test', ports: [web.port] }] });
    const r = await viaProxy(p.port, `http://upstream.test:${web.port}/`);
    expectRefusal(r, 403, 'private-address');
    expect(r.body).toContain(`upstream.test resolved to 127.0.0.1, a loopback address`);
    expect(web.seen).toEqual([]);
  });

  it('refuses an allowed name that resolves to the metadata address, even with loopback allowed', async () => {
    const p = await proxyWith({ allow: [{ host: 'meta.test', ports: [80] }, { host: '127.0.0.0/8', ports: [80] }] });
    const r = await viaProxy(p.port, 'http://meta.test/latest/meta-data/');
    expectRefusal(r, 403, 'private-address');
    expect(r.body).toContain('169.254.169.254, a metadata address');
    expectRefusal(await connectVia(p.port, 'meta.test:80'), 403, 'private-address');
  });

  it('skips refused addresses of a name and connects to the one that passed', async () => {
    const p = await proxyWith({ allow: [{ host: 'mixed.test', ports: [web.port] }, { host: '127.0.0.1', ports: [web.port] }] });
    expect((await viaProxy(p.port, `http://mixed.test:${web.port}/`)).status).toBe(200);
    expect(decisions(p)[0]).toMatchObject({ decision: 'allow', ip: '127.0.0.1' });
  });

  it('treats an IPv4-mapped IPv6 answer as the IPv4 address', async () => {
    const p = await proxyWith({ allow: [{ host: 'mapped.test', ports: [web.port] }] });
    expectRefusal(await viaProxy(p.port, `http://mapped.test:${web.port}/`), 403, 'private-address');
  });

  it('matches IP-literal destinations as IPs, however they are spelled', async () => {
    const p = await proxyWith({ allow: [{ host: 'upstream.test', ports: [web.port, tlsUp.port] }, { host: 'localhost', ports: [web.port] }] });
    expectRefusal(await connectVia(p.port, `127.0.0.1:${tlsUp.port}`), 403, 'private-address');
    expectRefusal(await connectVia(p.port, `[::ffff:127.0.0.1]:${tlsUp.port}`), 403, 'private-address');
    expectRefusal(await viaProxy(p.port, `http://0x7f.1:${web.port}/`), 403, 'private-address');
    expectRefusal(await viaProxy(p.port, `http://2130706433:${web.port}/`), 403, 'private-address');
    expectRefusal(await connectVia(p.port, `169.254.169.254:80`), 403, 'private-address');
    expect(decisions(p).map((e) => e.host)).toEqual(['127.0.0.1', '127.0.0.1', '127.0.0.1', '127.0.0.1', '169.254.169.254']);
    await p.close();
    const q = await proxyWith({ allow: [{ host: '127.0.0.1', ports: [web.port] }] });
    expect((await viaProxy(q.port, `http://0x7f.1:${web.port}/`)).status).toBe(200);
  });

  it('refuses a ClientHello whose SNI is not the CONNECT host, with a TLS alert and before upstream sees a handshake', async () => {
    const p = await proxyWith({ allow: [{ host: 'upstream.test', ports: [tlsUp.port] }, { host: '127.0.0.1', ports: [tlsUp.port] }] });
    const err = await httpsViaTunnel(p.port, `upstream.test:${tlsUp.port}`, { servername: 'a.x.test', ca: cert.cert }).then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    );
    // The proxy's fatal access_denied alert, as the client's TLS stack reports it.
    expect(err?.message).toMatch(/tlsv1 alert access denied.*SSL alert number 49/);
    expect(tlsUp.handshakes).toEqual([]);
    await waitFor(() => decisions(p).some((e) => e.reason === 'sni-mismatch'));
    expect(decisions(p).find((e) => e.reason === 'sni-mismatch')).toMatchObject({ decision: 'deny', detail: `TLS SNI a.x.test does not match the CONNECT host upstream.test` });
  });

  it('refuses a ClientHello without SNI to a name unless the rule allows it', async () => {
    const policy = (allowMissingSni: boolean) => ({ allow: [{ host: 'upstream.test', ports: [tlsUp.port], allowMissingSni }, { host: '127.0.0.1', ports: [tlsUp.port] }] });
    const p = await proxyWith(policy(false));
    const err = await httpsViaTunnel(p.port, `upstream.test:${tlsUp.port}`, { servername: '', host: '127.0.0.1', ca: cert.cert }).then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    );
    // The proxy's fatal access_denied alert, as the client's TLS stack reports it.
    expect(err?.message).toMatch(/tlsv1 alert access denied.*SSL alert number 49/);
    p.proxy.updatePolicy(NetworkSchema.parse(policy(true)));
    const r = await httpsViaTunnel(p.port, `upstream.test:${tlsUp.port}`, { servername: '', host: '127.0.0.1', ca: cert.cert });
    expect(r.status).toBe(200);
    expect(tlsUp.handshakes).toEqual(['']);
  });

  it('checks the SNI even when the ClientHello arrives with the CONNECT request', async () => {
    const p = await proxyWith({ allow: [{ host: 'upstream.test', ports: [tlsUp.port] }, { host: '127.0.0.1', ports: [tlsUp.port] }] });
    const hello = await clientHelloFor('a.x.test');
    const r = await rawExchange(p.port, [Buffer.concat([Buffer.from(`CONNECT upstream.test:${tlsUp.port} HTTP/1.1\r\nHost: upstream.test\r\n\r\n`), hello])]);
    expect(r.data).toBe('HTTP/1.1 200 Connection Established\r\n\r\n\x15\x03\x01\x00\x02\x02\x31');
    expect(r.closed).toBe(true);
    expect(tlsUp.handshakes).toEqual([]);
  });

  it('answers 502 when an allowed destination does not accept the connection', async () => {
    const closedPort = await freePort();
    const p = await proxyWith({ allow: [{ host: '127.0.0.1', ports: [closedPort] }] });
    expectRefusal(await connectVia(p.port, `127.0.0.1:${closedPort}`), 502, 'upstream-unreachable');
    expectRefusal(await viaProxy(p.port, `http://127.0.0.1:${closedPort}/`), 502, 'upstream-unreachable');
  });

  it('answers 502 when an allowed name does not resolve', async () => {
    const p = await proxyWith({ allow: [{ host: 'nxdomain.test' }] });
    const r = await connectVia(p.port, 'nxdomain.test:443');
    expectRefusal(r, 502, 'resolve-failed');
    if (!r.ok) expect(r.body).toContain('ENOTFOUND');
  });

  it('decides each request on a kept-alive client connection on its own', async () => {
    const p = await proxyWith({ allow: [{ host: '127.0.0.1', ports: [web.port] }] });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    expect((await viaProxy(p.port, `http://127.0.0.1:${web.port}/one`, { agent })).status).toBe(200);
    expectRefusal(await viaProxy(p.port, 'http://unknown.test/two', { agent }), 403, 'not-allowlisted');
    expect((await viaProxy(p.port, `http://127.0.0.1:${web.port}/three`, { agent })).status).toBe(200);
    agent.destroy();
    expect(web.seen.map((s) => s.url)).toEqual(['/one', '/three']);
  });

  it('applies plain-HTTP method/path rules and never lets them open a tunnel', async () => {
    const p = await proxyWith({ allow: [{ host: '127.0.0.1', ports: [web.port], methods: ['GET'], paths: ['/pub/*'] }] });
    expect((await viaProxy(p.port, `http://127.0.0.1:${web.port}/pub/a`)).status).toBe(200);
    expectRefusal(await viaProxy(p.port, `http://127.0.0.1:${web.port}/pub/../secret`), 403, 'private-address');
    expectRefusal(await viaProxy(p.port, `http://127.0.0.1:${web.port}/pub/a`, { method: 'POST', body: 'x' }), 403, 'private-address');
    expectRefusal(await connectVia(p.port, `127.0.0.1:${web.port}`), 403, 'private-address');
    expect(web.seen.map((s) => s.url)).toEqual(['/pub/a']);
  });

  it('mode none refuses everything', async () => {
    const p = await proxyWith({ mode: 'none', allow: [{ host: '127.0.0.1', ports: [web.port] }] });
    expectRefusal(await viaProxy(p.port, `http://127.0.0.1:${web.port}/`), 403, 'network-off');
  });

  it('updatePolicy applies to the next request', async () => {
    const p = await proxyWith({});
    expectRefusal(await viaProxy(p.port, `http://127.0.0.1:${web.port}/`), 403, 'private-address');
    p.proxy.updatePolicy(NetworkSchema.parse({ allow: [{ host: '127.0.0.1', ports: [web.port] }] }));
    expect((await viaProxy(p.port, `http://127.0.0.1:${web.port}/`)).status).toBe(200);
  });

  it('raw refusals carry the status line, reason header and a short body', async () => {
    const p = await proxyWith({});
    const r = await rawExchange(p.port, ['CONNECT unknown.test:443 HTTP/1.1\r\nHost: unknown.test:443\r\n\r\n']);
    expect(statusAndReason(r.data)).toEqual({ status: 403, reason: 'not-allowlisted' });
    expect(r.data).toMatch(/\r\n\r\nclawjail: unknown\.test:443 refused \(not-allowlisted\): no allow rule matches unknown\.test\n$/);
    expect(r.closed).toBe(true);
  });
});

async function clientHelloFor(servername: string): Promise<Buffer> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const got = new Promise<Buffer>((resolve) => s.once('connection', (c) => c.once('data', (d: Buffer) => (resolve(d), c.destroy()))));
  const client = tls.connect({ host: '127.0.0.1', port: (s.address() as net.AddressInfo).port, servername });
  client.on('error', () => undefined);
  const hello = await got;
  client.destroy();
  s.close();
  return hello;
}
