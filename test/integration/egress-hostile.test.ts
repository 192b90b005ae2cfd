import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApprovalBroker } from '../../src/services/egress/approvals.js';
import type { EgressLimits } from '../../src/services/egress/proxy.js';
import { mapResolver, rawExchange, startHttpUpstream, startProxy, statusAndReason, viaProxy, type ProxyUnderTest, type Upstream } from '../helpers/egress-harness.js';
import { waitFor } from '../helpers/wait.js';

let web: Upstream;
let p: ProxyUnderTest | undefined;

beforeAll(async () => {
  web = await startHttpUpstream();
});
afterAll(async () => {
  await web.close();
});
afterEach(async () => {
  await p?.close();
  p = undefined;
  web.seen.length = 0;
});

const limits: Partial<EgressLimits> = { maxHeaderBytes: 8 * 1024, headersTimeoutMs: 400, maxConnections: 300 };
const start = async (extra: Partial<typeof limits> = {}) => {
  p = await startProxy({ allow: [{ host: '127.0.0.1', ports: [web.port] }] }, { limits: { ...limits, ...extra } });
  return p;
};

/** The proxy still does its job: a normal allowed request succeeds. */
async function stillServes(q: ProxyUnderTest): Promise<void> {
  const r = await viaProxy(q.port, `http://127.0.0.1:${web.port}/alive`);
  expect(r.status).toBe(200);
}

function openConnections(q: ProxyUnderTest): number {
  return q.proxy.stats().clients;
}

describe('hostile input', () => {
  it('oversized request headers → 431 and the connection is closed', async () => {
    const q = await start();
    const r = await rawExchange(q.port, [`GET http://127.0.0.1:${web.port}/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`]);
    expect(statusAndReason(r.data)).toEqual({ status: 431, reason: 'headers-too-large' });
    expect(r.closed).toBe(true);
    expect(web.seen).toEqual([]);
    await stillServes(q);
  });

  it('a flood of small headers is bounded the same way', async () => {
    const q = await start();
    const many = Array.from({ length: 2_000 }, (_, i) => `X-H${i}: v\r\n`).join('');
    const r = await rawExchange(q.port, [`CONNECT 127.0.0.1:${web.port} HTTP/1.1\r\n${many}\r\n`]);
    expect(statusAndReason(r.data)).toEqual({ status: 431, reason: 'headers-too-large' });
  });

  it.each([
    'example.com',
    'example.com:',
    'example.com:99999',
    'example.com:0',
    'user:pw@example.com:443',
    'example.com:443/path',
    '[::1:443',
    '[fe80::1%25eth0]:443',
    'exa mple.com:443',
    '*.example.com:443',
    '0x7f.1:443',
    '-:443',
    ':443',
  ])('bad CONNECT target %j → 400 malformed', async (target) => {
    const q = await start();
    const r = await rawExchange(q.port, [`CONNECT ${target} HTTP/1.1\r\nHost: x\r\n\r\n`]);
    expect(statusAndReason(r.data)).toEqual({ status: 400, reason: 'malformed' });
    expect(r.closed).toBe(true);
  });

  it.each([
    ['origin-form request to the proxy itself', 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 400, 'malformed'],
    ['https absolute URI (must use CONNECT)', 'GET https://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n', 400, 'malformed'],
    ['credentials in the URL', `GET http://u:p@127.0.0.1:${0}/ HTTP/1.1\r\nHost: x\r\n\r\n`, 400, 'malformed'],
    ['empty authority', 'GET http:///etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'malformed'],
    ['garbage bytes', '\x00\x01\x02\xff\xfe garbage \r\n\r\n', 400, 'malformed'],
    ['TLS sent straight to the proxy', '\x16\x03\x01\x00\x05hello', 400, 'malformed'],
    ['bad method token', 'G(T http://x.test/ HTTP/1.1\r\n\r\n', 400, 'malformed'],
    ['Content-Length and Transfer-Encoding together (smuggling)', `POST http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, 'malformed'],
    ['bare LF header folding', 'GET http://x.test/ HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n', 400, 'malformed'],
    ['WebSocket upgrade over plain forwarding', 'GET http://x.test/ HTTP/1.1\r\nHost: x.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 501, 'unsupported'],
  ])('%s', async (_label, request, status, reason) => {
    const q = await start();
    const r = await rawExchange(q.port, [request]);
    expect(statusAndReason(r.data)).toEqual({ status, reason });
    expect(web.seen).toEqual([]);
    await stillServes(q);
  });

  it('slowloris: headers trickled byte by byte are cut off with 408 at the header timeout', async () => {
    const q = await start();
    const request = `GET http://127.0.0.1:${web.port}/ HTTP/1.1\r\nHost: x\r\nX-Slow: ${'s'.repeat(100)}\r\n\r\n`;
    const r = await rawExchange(q.port, request.split(''), { gapMs: 20, waitMs: 5_000 });
    expect(statusAndReason(r.data)).toEqual({ status: 408, reason: 'header-timeout' });
    expect(r.closed).toBe(true);
    // Header timeout 400 ms, checked every 100 ms.
    expect(r.ms).toBeGreaterThanOrEqual(380);
    expect(r.ms).toBeLessThan(1_500);
    expect(web.seen).toEqual([]);
  });

  it('a connection that never sends anything is closed at the header timeout', async () => {
    const q = await start();
    const r = await rawExchange(q.port, [], { waitMs: 5_000 });
    expect(r.closed).toBe(true);
    expect(r.ms).toBeLessThan(1_500);
  });

  it('a kept-alive connection: the next request trickled in gets 408 at the header timeout; one left idle is closed without an answer', async () => {
    const q = await start();
    const request = (path: string) => `GET http://127.0.0.1:${web.port}${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const run = (second: (s: net.Socket) => void) =>
      new Promise<{ first: string; after: string; msAfterFirst: number }>((resolve) => {
        const s = net.connect(q.port, '127.0.0.1');
        s.on('error', () => undefined);
        let first = '';
        let after = '';
        let answeredAt = 0;
        s.on('data', (c: Buffer) => {
          if (answeredAt) {
            after += c.toString('latin1');
            return;
          }
          first += c.toString('latin1');
          if (/\r\n\r\n[\s\S]*\}$/.test(first)) {
            answeredAt = Date.now();
            second(s);
          }
        });
        s.on('close', () => resolve({ first, after, msAfterFirst: Date.now() - answeredAt }));
        s.write(request('/keep-1'));
      });
    let trickle: NodeJS.Timeout | undefined;
    const slow = await run((s) => {
      s.write('GET http://127.0.0.1/ HTTP/1.1\r\nX-Slow: ');
      trickle = setInterval(() => s.write('s'), 50);
    });
    clearInterval(trickle);
    expect(statusAndReason(slow.first).status).toBe(200);
    expect(statusAndReason(slow.after)).toEqual({ status: 408, reason: 'header-timeout' });
    expect(slow.msAfterFirst).toBeGreaterThanOrEqual(350);
    expect(slow.msAfterFirst).toBeLessThan(3_000);
    const idle = await run(() => undefined);
    expect(statusAndReason(idle.first).status).toBe(200);
    expect(idle.after).toBe('');
    expect(idle.msAfterFirst).toBeGreaterThanOrEqual(350);
    expect(idle.msAfterFirst).toBeLessThan(3_000);
    expect(web.seen.map((x) => x.url)).toEqual(['/keep-1', '/keep-1']);
  });

  it('a client that stalls in the middle of its request body is closed at the idle timeout, and so is the upstream connection', async () => {
    const q = await start({ headersTimeoutMs: 5_000, idleTimeoutMs: 400 });
    const r = await rawExchange(q.port, [`POST http://127.0.0.1:${web.port}/stall HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789`], { waitMs: 5_000 });
    expect(r.closed).toBe(true);
    expect(r.ms).toBeGreaterThanOrEqual(350);
    expect(r.ms).toBeLessThan(3_000);
    await waitFor(() => q.events.some((e) => e.kind === 'egress.close'));
    expect(web.seen).toEqual([]);
  });

  it('a request held for approval outlives the header and idle timeouts that cut a silent connection meanwhile', async () => {
    const broker = createApprovalBroker({ timeoutMs: 20_000 });
    p = await startProxy(
      { approvals: { enabled: true }, allow: [{ host: '127.0.0.1', ports: [web.port] }] },
      { approvals: broker, resolve: mapResolver({ 'new.test': ['127.0.0.1'] }), limits: { ...limits, headersTimeoutMs: 300, idleTimeoutMs: 300 } },
    );
    const q = p;
    try {
      const held = viaProxy(q.port, `http://new.test:${web.port}/held`);
      await waitFor(() => broker.list().length === 1);
      // Opened once the request is held: when this one has been cut, both timeouts have passed
      // for the held request too.
      const cut = await rawExchange(q.port, [], { waitMs: 10_000 });
      expect(cut.closed).toBe(true);
      expect(cut.ms).toBeGreaterThanOrEqual(250);
      const id = broker.list()[0]?.id;
      expect(id).toBeDefined();
      await broker.decide(id as string, 'allow');
      const r = await held;
      expect(r.status).toBe(200);
      expect(web.seen.map((x) => x.url)).toEqual(['/held']);
    } finally {
      await broker.close();
    }
  });

  it('200 slowloris connections at once: all cut off, memory bounded, service goes on', async () => {
    const q = await start();
    const rssBefore = process.memoryUsage().rss;
    const attacks = Array.from({ length: 200 }, () => rawExchange(q.port, ['GET http://127.0.0.1/ HTTP/1.1\r\n', 'X-A: 1\r\n', 'X-B: 2\r\n'], { gapMs: 150, waitMs: 5_000 }));
    await new Promise((r) => setTimeout(r, 100));
    await stillServes(q);
    const results = await Promise.all(attacks);
    expect(results.every((r) => r.closed)).toBe(true);
    expect(results.filter((r) => statusAndReason(r.data).status === 408).length).toBeGreaterThanOrEqual(190);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 << 20);
    await waitFor(async () => openConnections(q) === 0);
  });

  it('connection N+1 over maxConnections gets 503 too-many-connections; the N held ones are still served; one audit event per burst', async () => {
    const q = await start({ maxConnections: 20, headersTimeoutMs: 10_000 });
    const held = await Promise.all(
      Array.from({ length: 20 }, (_, i) => new Promise<net.Socket>((resolve) => {
        const s = net.connect(q.port, '127.0.0.1', () => resolve(s));
        s.on('error', () => undefined);
        s.write(`GET http://127.0.0.1:${web.port}/held-${i} HTTP/1.1\r\nHost: x\r\n`);
      })),
    );
    await waitFor(async () => openConnections(q) === 20);
    const over = await Promise.all([1, 2, 3].map((i) => rawExchange(q.port, [`GET http://127.0.0.1:${web.port}/over-${i} HTTP/1.1\r\nHost: x\r\n\r\n`], { waitMs: 5_000 })));
    for (const r of over) {
      expect(statusAndReason(r.data)).toEqual({ status: 503, reason: 'too-many-connections' });
      expect(r.data).toContain('network.limits.maxConnections');
      expect(r.closed).toBe(true);
    }
    const limitEvents = () => q.events.filter((e) => e.kind === 'egress.limit');
    expect(limitEvents()).toEqual([expect.objectContaining({ sandbox: 'test', limit: 'maxConnections', max: 20, state: 'reached', open: 20 })]);
    // The held connections were neither cut nor refused: each request completes now.
    const answers = await Promise.all(
      held.map((s) => new Promise<string>((resolve) => {
        let text = '';
        s.on('data', (c: Buffer) => {
          text += c.toString('latin1');
          if (/\r\n\r\n[\s\S]*\}$/.test(text)) resolve(text);
        });
        s.write('Connection: close\r\n\r\n');
      })),
    );
    for (const a of answers) expect(statusAndReason(a).status).toBe(200);
    expect(web.seen.map((x) => x.url).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `/held-${i}`).sort());
    await waitFor(async () => openConnections(q) === 0);
    expect(limitEvents().map((e) => [e.state, e.refused])).toEqual([['reached', undefined], ['cleared', 3]]);
    await stillServes(q);
  });

  it('fuzz: 600 mutated requests never crash the proxy and each gets an HTTP answer, a close, or a wait for more bytes', { timeout: 60_000 }, async () => {
    const q = await start({ headersTimeoutMs: 300 });
    const seeds = [
      `GET http://127.0.0.1:${web.port}/a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
      `CONNECT 127.0.0.1:${web.port} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
      `POST http://127.0.0.1:${web.port}/b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc`,
      `GET http://[::1]:80/ HTTP/1.1\r\nHost: x\r\n\r\n`,
      `CONNECT unknown.test:443 HTTP/1.1\r\n\r\n`,
    ];
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const mutate = (text: string): Buffer => {
      const b = Buffer.from(text, 'latin1');
      const out = [...b];
      const edits = 1 + rand(6);
      for (let i = 0; i < edits; i++) {
        const at = rand(out.length + 1);
        switch (rand(5)) {
          case 0:
            out[at] = rand(256);
            break;
          case 1:
            out.splice(at, 1 + rand(8));
            break;
          case 2:
            out.splice(at, 0, ...Array.from({ length: 1 + rand(16) }, () => rand(256)));
            break;
          case 3:
            out.splice(at, 0, ...Buffer.from(['\r\n', ':', ' ', '%', '[', ']', '@', '\0', '\n\n'][rand(9)] as string));
            break;
          default:
            out.splice(at, 0, ...out.slice(rand(out.length), rand(out.length)));
        }
      }
      return Buffer.from(out.map((x) => x & 0xff));
    };
    const statuses = new Map<string, number>();
    for (let batch = 0; batch < 12; batch++) {
      // A mutated request can be valid and leave a kept-alive connection open: stop listening after a while.
      const results = await Promise.all(
        Array.from({ length: 50 }, () => rawExchange(q.port, [mutate(seeds[rand(seeds.length)] as string)], { waitMs: 700 })),
      );
      for (const r of results) {
        const status = statusAndReason(r.data).status;
        // Either an HTTP response or a clean close; a mutated request may also be a valid one.
        expect(r.data === '' || /^HTTP\/1\.1 [1-5][0-9]{2} /.test(r.data), JSON.stringify(r.data.slice(0, 80))).toBe(true);
        const key = status ? String(status) : r.closed ? 'closed' : 'open';
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
      }
    }
    expect([...statuses.values()].reduce((a, b) => a + b, 0)).toBe(600);
    expect(statuses.get('400')).toBeGreaterThan(50);
    await stillServes(q);
    await waitFor(async () => openConnections(q) <= 1, 5_000);
  });
});
