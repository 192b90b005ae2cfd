import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createAuditSink, type AuditEvent } from '../../src/log.js';
import { addon } from '../../src/native.js';
import { NetworkSchema } from '../../src/profile/network.js';
import { createEgressProxy, type EgressLimits, type EgressProxy, type RelayEngine } from '../../src/services/egress/proxy.js';
import { connectVia } from '../helpers/egress-harness.js';
import { waitFor } from '../helpers/wait.js';

/*
 * CONNECT tunnels handed to the addon's native relay (both engines), and the JS piping the proxy
 * falls back to, held to the same behaviour: bytes exact both ways, half-close passed on, resets,
 * idle timeout, proxy close, many tunnels at once, no fd left behind, audit close events exact.
 */

// Fail loudly if the addon was built without the relay: these tests would otherwise only
// exercise the JS fallback.
expect(typeof addon().relay).toBe('function');

type Mode = RelayEngine | 'js';
const MODES: Mode[] = ['copy', 'splice', 'js'];

interface Running {
  proxy: EgressProxy;
  port: number;
  events: AuditEvent[];
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startProxy(mode: Mode, allowPorts: number[], limits: Partial<EgressLimits> = {}, localHandlers?: Record<string, http.RequestListener>): Promise<Running> {
  const events: AuditEvent[] = [];
  const proxy = createEgressProxy({
    sandbox: 'relay',
    policy: NetworkSchema.parse({ allow: [{ host: '127.0.0.1', ports: allowPorts }] }),
    audit: createAuditSink({ log: pino({ level: 'silent' }), listener: (e) => events.push(e) }),
    logger: pino({ level: 'silent' }),
    nativeRelay: mode === 'js' ? false : mode,
    limits,
    ...(localHandlers ? { localHandlers } : {}),
  });
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => proxy.close());
  return { proxy, port: proxy.address()?.port as number, events };
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        if (server instanceof http.Server) server.closeAllConnections();
      }),
  );
  return (server.address() as net.AddressInfo).port;
}

/**
 * A CONNECT tunnel on a half-open-capable socket (http.request's sockets end their writing side
 * as soon as they read an EOF, which would hide how the proxy passes half-closes on).
 */
function tunnel(proxyPort: number, port: number, opts: { halfOpen?: boolean } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: proxyPort, allowHalfOpen: true });
    // Unless a test drives the half-close itself, behave like most clients: end when the peer does.
    if (!opts.halfOpen) s.on('end', () => s.end());
    s.on('error', reject);
    s.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    let head = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.removeListener('data', onData);
      // Paused until the test attaches its reader: a server that speaks first loses nothing.
      s.pause();
      if (!head.subarray(0, 13).toString().startsWith('HTTP/1.1 200 ')) return reject(new Error(`tunnel refused: ${head.toString()}`));
      if (end + 4 < head.length) s.unshift(head.subarray(end + 4));
      s.removeListener('error', reject);
      s.on('error', () => undefined);
      resolve(s);
    };
    s.on('data', onData);
  });
}

/** Random bytes that do not start like a TLS record (the tunnel's first bytes are inspected). */
function payload(n: number): Buffer {
  const b = randomBytes(n);
  b[0] = 0x58;
  return b;
}

const sha = (b: Buffer | Buffer[]): string => {
  const h = createHash('sha256');
  for (const c of Array.isArray(b) ? b : [b]) h.update(c);
  return h.digest('hex');
};

/** Everything the socket receives until it ends or closes. */
function collect(s: net.Socket): Promise<{ data: Buffer; ended: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let ended = false;
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => (ended = true));
    s.on('close', () => resolve({ data: Buffer.concat(chunks), ended }));
    s.resume();
  });
}

const closes = (r: Running) => r.events.filter((e) => e.kind === 'egress.close');

/** Waits until the first client bytes have been checked and the tunnel changed hands. */
async function relayed(r: Running, n: number, mode: Mode): Promise<void> {
  if (mode !== 'js') await waitFor(() => r.proxy.stats().relayed === n);
}

const fdCount = (): number => readdirSync('/proc/self/fd').length;

describe.each(MODES)('CONNECT tunnels (%s)', (mode) => {
  it('carries 64 MiB each way at once byte for byte, and the close event counts them', async () => {
    const size = 64 << 20;
    const down = payload(size);
    const up = payload(size);
    const got: { hash?: string; n?: number } = {};
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      const h = createHash('sha256');
      let n = 0;
      s.on('data', (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      s.on('end', () => {
        got.hash = h.digest('hex');
        got.n = n;
        s.end();
      });
      s.write(down);
    });
    const port = await listen(server);
    const r = await startProxy(mode, [port]);
    const c = await tunnel(r.port, port);
    const received = collect(c);
    c.end(up);
    const { data } = await received;
    expect(data.length).toBe(size);
    expect(sha(data)).toBe(sha(down));
    await waitFor(() => got.hash !== undefined);
    expect({ n: got.n, hash: got.hash }).toEqual({ n: size, hash: sha(up) });
    await waitFor(() => closes(r).length === 1);
    expect(closes(r)[0]).toMatchObject({ via: 'connect', host: '127.0.0.1', port, ip: '127.0.0.1', bytesIn: size, bytesOut: size });
    expect(closes(r)[0]).not.toHaveProperty('error');
    expect(r.proxy.stats()).toEqual({ clients: 0, upstreams: 0, relayed: 0 });
  }, 60_000);

  it('passes a client half-close on and keeps the other direction running', async () => {
    // The server answers only after the client's EOF: a digest, then 8 MiB.
    const tail = payload(8 << 20);
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      const h = createHash('sha256');
      let n = 0;
      s.on('data', (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      s.on('end', () => {
        s.write(`${n} ${h.digest('hex')}\n`);
        s.end(tail);
      });
    });
    const port = await listen(server);
    const r = await startProxy(mode, [port]);
    const c = await tunnel(r.port, port);
    const received = collect(c);
    const first = payload(1 << 20);
    c.write(first.subarray(0, 1000));
    await relayed(r, 1, mode);
    c.end(first.subarray(1000));
    const { data, ended } = await received;
    const nl = data.indexOf(0x0a);
    expect(data.subarray(0, nl).toString()).toBe(`${first.length} ${sha(first)}`);
    expect(sha(data.subarray(nl + 1))).toBe(sha(tail));
    expect(ended).toBe(true);
  });

  it('passes an upstream half-close on while the client keeps sending', async () => {
    const got: { n?: number; hash?: string } = {};
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      const h = createHash('sha256');
      let n = 0;
      s.once('data', () => s.end('bye\n'));
      s.on('data', (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      s.on('end', () => {
        got.n = n;
        got.hash = h.digest('hex');
        s.destroy();
      });
    });
    const port = await listen(server);
    const r = await startProxy(mode, [port]);
    const c = await tunnel(r.port, port, { halfOpen: true });
    const chunks: Buffer[] = [];
    c.on('data', (b: Buffer) => chunks.push(b));
    c.resume();
    const ended = new Promise<void>((res) => c.once('end', res));
    const body = payload(4 << 20);
    c.write(body.subarray(0, 10));
    await ended;
    expect(Buffer.concat(chunks).toString()).toBe('bye\n');
    // Still writable after the upstream's EOF: the rest arrives.
    c.end(body.subarray(10));
    await waitFor(() => got.hash !== undefined);
    expect(got).toEqual({ n: body.length, hash: sha(body) });
    await waitFor(() => closes(r).length === 1);
    expect(closes(r)[0]).toMatchObject({ bytesIn: 4, bytesOut: body.length });
  });

  it('takes over a tunnel whose upstream spoke first and half-closed before the client sent a byte', async () => {
    const banner = payload(8 << 20);
    const got: { n?: number; hash?: string } = {};
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      const h = createHash('sha256');
      let n = 0;
      s.end(banner);
      s.on('data', (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      s.on('end', () => {
        got.n = n;
        got.hash = h.digest('hex');
        s.destroy();
      });
    });
    const port = await listen(server);
    const r = await startProxy(mode, [port]);
    const c = await tunnel(r.port, port, { halfOpen: true });
    // Not reading yet: most of the banner waits in the proxy while the client starts sending.
    await new Promise((res) => setTimeout(res, 50));
    const body = payload(2 << 20);
    c.write(body.subarray(0, 100));
    const chunks: Buffer[] = [];
    c.on('data', (b: Buffer) => chunks.push(b));
    await new Promise<void>((res) => (c.once('end', res), c.resume()));
    expect(sha(Buffer.concat(chunks))).toBe(sha(banner));
    c.end(body.subarray(100));
    await waitFor(() => got.hash !== undefined);
    expect(got).toEqual({ n: body.length, hash: sha(body) });
    await waitFor(() => closes(r).length === 1);
    expect(closes(r)[0]).toMatchObject({ bytesIn: banner.length, bytesOut: body.length });
  });

  it('ends the client connection when the upstream resets mid-transfer, with partial counts and the error', async () => {
    const announced = 64 << 20;
    const sent = 4 << 20;
    const server = net.createServer((s) => {
      s.on('error', () => undefined);
      s.once('data', () => {
        s.write(payload(sent), () => setTimeout(() => s.resetAndDestroy(), 100));
      });
    });
    const port = await listen(server);
    const r = await startProxy(mode, [port]);
    const c = await tunnel(r.port, port);
    const received = collect(c);
    c.write(`GET ${announced}\n`);
    const { data } = await received;
    expect(data.length).toBeLessThan(announced);
    await waitFor(() => closes(r).length === 1);
    const close = closes(r)[0] as AuditEvent & { bytesIn: number; bytesOut: number };
    expect(close).toMatchObject({ error: 'ECONNRESET', bytesOut: `GET ${announced}\n`.length });
    expect(close.bytesIn).toBeGreaterThan(0);
    expect(close.bytesIn).toBeLessThanOrEqual(sent);
    expect(data.length).toBeLessThanOrEqual(close.bytesIn);
    expect(r.proxy.stats()).toEqual({ clients: 0, upstreams: 0, relayed: 0 });
  });

  it('close() of the proxy ends live tunnels and reports each', async () => {
    const server = net.createServer((s) => {
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => s.write(d));
    });
    const port = await listen(server);
    const r = await startProxy(mode, [port]);
    const sockets = await Promise.all([1, 2, 3].map(() => tunnel(r.port, port)));
    const ends = sockets.map((s) => new Promise<void>((res) => s.once('close', () => res())));
    await Promise.all(sockets.map((s) => new Promise((res) => (s.once('data', res), s.resume(), s.write('hello')))));
    await relayed(r, 3, mode);
    expect(r.proxy.stats()).toMatchObject({ clients: 3, upstreams: 3 });
    await r.proxy.close();
    await Promise.all(ends);
    await waitFor(() => closes(r).length === 3);
    for (const e of closes(r)) expect(e).toMatchObject({ bytesIn: 5, bytesOut: 5 });
    expect(r.proxy.stats()).toEqual({ clients: 0, upstreams: 0, relayed: 0 });
  });

  it('ends a silent tunnel at the idle timeout, and only a silent one', async () => {
    const server = net.createServer((s) => {
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => s.write(d));
    });
    const port = await listen(server);
    const r = await startProxy(mode, [port], { idleTimeoutMs: 400 });
    const quiet = await tunnel(r.port, port);
    const busy = await tunnel(r.port, port);
    const quietClosed = new Promise<number>((res) => quiet.once('close', () => res(Date.now())));
    let busyClosed = false;
    busy.once('close', () => (busyClosed = true));
    const start = Date.now();
    await Promise.all([quiet, busy].map((s) => new Promise((res) => (s.once('data', res), s.resume(), s.write('x')))));
    await relayed(r, 2, mode);
    // Traffic every 100 ms keeps the busy tunnel open well past the timeout.
    const ticker = setInterval(() => busy.write('.'), 100);
    try {
      const at = await quietClosed;
      expect(at - start).toBeGreaterThanOrEqual(350);
      await new Promise((res) => setTimeout(res, 400));
      expect(busyClosed).toBe(false);
    } finally {
      clearInterval(ticker);
    }
    const idle = closes(r)[0] as AuditEvent & { durationMs: number };
    expect(idle).toMatchObject({ bytesIn: 1, bytesOut: 1 });
    expect(idle.durationMs).toBeGreaterThanOrEqual(350);
    busy.destroy();
  });

  it('counts relayed tunnels against maxConnections', async () => {
    const server = net.createServer((s) => {
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => s.write(d));
    });
    const port = await listen(server);
    const r = await startProxy(mode, [port], { maxConnections: 3 });
    const held = await Promise.all([1, 2, 3].map(() => tunnel(r.port, port)));
    await Promise.all(held.map((s) => new Promise((res) => (s.once('data', res), s.resume(), s.write('x')))));
    await relayed(r, 3, mode);
    const extra = net.connect(r.port, '127.0.0.1');
    extra.on('error', () => undefined);
    extra.resume();
    await new Promise((res) => extra.once('close', res));
    for (const s of held) s.destroy();
  });

  it('carries 200 tunnels at once, each byte for byte, and leaves no fd behind', async () => {
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      s.pipe(s);
    });
    const port = await listen(server);
    const r = await startProxy(mode, [port], { maxConnections: 1000 });
    const before = fdCount();
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const body = payload(64 * 1024 + i * 997);
        const s = await tunnel(r.port, port);
        const got = collect(s);
        s.write(body.subarray(0, 100));
        await new Promise((res) => setTimeout(res, 5));
        s.end(body.subarray(100));
        const { data } = await got;
        return data.equals(body);
      }),
    );
    expect(results.filter((ok) => !ok)).toEqual([]);
    await waitFor(() => closes(r).length === 200);
    expect(r.proxy.stats()).toEqual({ clients: 0, upstreams: 0, relayed: 0 });
    // Node closes a socket's fd before its 'close' event; the relay closes its own before onDone.
    // (Fewer than before is fine: sockets of earlier tests may still have been closing.)
    await waitFor(() => fdCount() <= before);
    expect(fdCount()).toBeLessThanOrEqual(before);
  }, 60_000);
});

describe('fallback', () => {
  it('keeps piping in JS, byte for byte, when relay() fails for a tunnel', async () => {
    const native = addon();
    const original = native.relay;
    native.relay = () => {
      throw Object.assign(new Error('fcntl(F_DUPFD_CLOEXEC): Too many open files'), { errno: 24 });
    };
    try {
      const down = payload(8 << 20);
      const got: { hash?: string } = {};
      const server = net.createServer({ allowHalfOpen: true }, (s) => {
        const h = createHash('sha256');
        s.on('data', (c: Buffer) => h.update(c));
        s.on('end', () => ((got.hash = h.digest('hex')), s.end()));
        s.write(down);
      });
      const port = await listen(server);
      const r = await startProxy('copy', [port]);
      const c = await tunnel(r.port, port);
      const received = collect(c);
      const up = payload(8 << 20);
      c.write(up.subarray(0, 10));
      await new Promise((res) => setTimeout(res, 50));
      expect(r.proxy.stats()).toMatchObject({ clients: 1, upstreams: 1, relayed: 0 });
      c.end(up.subarray(10));
      const { data } = await received;
      expect(sha(data)).toBe(sha(down));
      await waitFor(() => got.hash !== undefined);
      expect(got.hash).toBe(sha(up));
      await waitFor(() => closes(r).length === 1);
      expect(closes(r)[0]).toMatchObject({ bytesIn: down.length, bytesOut: up.length });
    } finally {
      native.relay = original;
    }
  });
});

describe('what is never relayed', () => {
  it('a CONNECT to a local handler stays in-process', async () => {
    const r = await startProxy('copy', [1], {}, { 'inference.local': (_req, res) => res.end('local') });
    const t = await connectVia(r.port, 'inference.local:80');
    if (!t.ok) throw new Error('refused');
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      t.socket.on('data', (c: Buffer) => {
        text += c.toString();
        if (text.endsWith('local')) resolve(text);
      });
      t.socket.write('GET /v1/models HTTP/1.1\r\nHost: inference.local\r\n\r\n');
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(r.proxy.stats().relayed).toBe(0);
    t.socket.destroy();
  });
});
