import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import pino from 'pino';
import { createAuditSink, type AuditEvent } from '../../src/log.js';
import { NetworkSchema, type NetworkConfigInput } from '../../src/profile/network.js';
import type { ApprovalBroker } from '../../src/services/egress/approvals.js';
import { createEgressProxy, type EgressLimits, type EgressProxy, type Resolver } from '../../src/services/egress/proxy.js';
import type { TestCert } from './tls-cert.js';

/** Upstream servers on host loopback, reachable through the proxy only when a rule names 127.0.0.1. */
export interface Upstream {
  port: number;
  /** What each request looked like on arrival. */
  seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string; servername?: string }[];
  close(): Promise<void>;
}

/**
 * The body of GET /bytes/N: a pseudo-random block whose length is not a power of two, repeated,
 * so that a proxy that reused or reordered buffers would change the bytes, not just their count.
 */
export const PATTERN = (() => {
  const b = Buffer.alloc((1 << 20) + 17);
  let x = 2463534242;
  for (let i = 0; i < b.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
})();

export function patternHash(n: number): string {
  const h = createHash('sha256');
  for (let left = n; left > 0; left -= PATTERN.length) h.update(left >= PATTERN.length ? PATTERN : PATTERN.subarray(0, left));
  return h.digest('hex');
}

/**
 * GET /bytes/N answers N bytes of PATTERN; anything else answers JSON {method, url, headers, body}. TLS
 * upstreams also record the SNI they were asked for.
 */
function upstreamHandler(seen: Upstream['seen']): http.RequestListener {
  return (req, res) => {
    const bytes = /^\/bytes\/([0-9]+)$/.exec(req.url ?? '');
    if (bytes) {
      let left = Number(bytes[1]);
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': left });
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(left, PATTERN.length);
          left -= n;
          if (!res.write(n === PATTERN.length ? PATTERN : PATTERN.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const servername = (req.socket as tls.TLSSocket).servername;
      const entry = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), ...(servername ? { servername } : {}) };
      seen.push(entry);
      const text = JSON.stringify(entry);
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'X-Upstream': 'yes', Connection: 'keep-alive, X-Drop-Me', 'X-Drop-Me': '1' });
      res.end(text);
    });
  };
}

async function listenLoopback(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

function closer(server: http.Server): () => Promise<void> {
  return () =>
    new Promise((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
}

export async function startHttpUpstream(): Promise<Upstream> {
  const seen: Upstream['seen'] = [];
  const server = http.createServer(upstreamHandler(seen));
  return { port: await listenLoopback(server), seen, close: closer(server) };
}

export async function startTlsUpstream(cert: TestCert): Promise<Upstream & { handshakes: string[] }> {
  const seen: Upstream['seen'] = [];
  const handshakes: string[] = [];
  const server = https.createServer({ cert: cert.cert, key: cert.key }, upstreamHandler(seen));
  server.on('secureConnection', (s: tls.TLSSocket) => handshakes.push(s.servername || ''));
  return { port: await listenLoopback(server), seen, handshakes, close: closer(server) };
}

/** Answers only the names it is given; anything else fails like an unknown name would. */
export function mapResolver(map: Record<string, string[]>, calls: string[] = []): Resolver {
  return async (host) => {
    calls.push(host);
    const found = map[host];
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return found.map((address) => ({ address, family: net.isIPv6(address) ? 6 : 4 }));
  };
}

export interface ProxyUnderTest {
  proxy: EgressProxy;
  port: number;
  events: AuditEvent[];
  close(): Promise<void>;
}

export async function startProxy(
  policy: NetworkConfigInput,
  opts: { resolve?: Resolver; limits?: Partial<EgressLimits>; approvals?: ApprovalBroker; localHandlers?: Record<string, http.RequestListener> } = {},
): Promise<ProxyUnderTest> {
  const events: AuditEvent[] = [];
  const audit = createAuditSink({ log: pino({ level: 'silent' }), listener: (e) => events.push(e) });
  const proxy = createEgressProxy({
    sandbox: 'test',
    policy: NetworkSchema.parse(policy),
    audit,
    logger: pino({ level: 'silent' }),
    resolve: opts.resolve ?? mapResolver({}),
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(opts.approvals ? { approvals: opts.approvals } : {}),
    ...(opts.localHandlers ? { localHandlers: opts.localHandlers } : {}),
  });
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  const port = proxy.address()?.port as number;
  return { proxy, port, events, close: () => proxy.close() };
}

export interface ProxyResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A plain-HTTP request sent to the proxy in absolute form, as HTTP_PROXY clients do. */
export function viaProxy(proxyPort: number, url: string, opts: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string; agent?: http.Agent } = {}): Promise<ProxyResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, method: opts.method ?? 'GET', path: url, headers: opts.headers ?? {}, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export type TunnelResult = { ok: true; socket: net.Socket } | ({ ok: false } & ProxyResponse);

/** Sends CONNECT; on 200 hands back the raw socket, otherwise the refusal. */
export function connectVia(proxyPort: number, authority: string): Promise<TunnelResult> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, method: 'CONNECT', path: authority, agent: false });
    req.on('connect', (res, socket, head) => {
      if (res.statusCode === 200) {
        if (head.length) socket.unshift(head);
        resolve({ ok: true, socket });
        return;
      }
      const chunks: Buffer[] = head.length ? [head] : [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('close', () => resolve({ ok: false, status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      socket.on('error', () => undefined);
    });
    req.on('response', (res) => {
      // Node emits 'response' (not 'connect') for a CONNECT answered with a non-2xx and a body.
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ ok: false, status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** HTTPS GET through a CONNECT tunnel, verifying the upstream certificate against `ca`. */
export async function httpsViaTunnel(
  proxyPort: number,
  authority: string,
  opts: { servername?: string; host?: string; ca: string; path?: string },
): Promise<ProxyResponse> {
  const t = await connectVia(proxyPort, authority);
  if (!t.ok) return t;
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        // servername '' sends no SNI; for an IP host Node sends none and checks the IP SAN.
        createConnection: () =>
          tls.connect({ socket: t.socket, ca: opts.ca, ...(opts.servername !== undefined ? { servername: opts.servername } : {}), ...(opts.host ? { host: opts.host } : {}) }),
        path: opts.path ?? '/',
        headers: { Host: authority },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

export interface RawExchange {
  /** Everything the proxy sent before closing (or before the wait ended). */
  data: string;
  closed: boolean;
  ms: number;
}

/** Writes raw bytes (optionally in timed pieces) and collects the answer until close or `waitMs`. */
export function rawExchange(port: number, pieces: (string | Buffer)[], opts: { gapMs?: number; waitMs?: number } = {}): Promise<RawExchange> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(chunks).toString('latin1'), closed, ms: Date.now() - started });
    };
    const timer = setTimeout(finish, opts.waitMs ?? 3_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.on('connect', async () => {
      for (const p of pieces) {
        if (socket.destroyed) return;
        socket.write(p);
        if (opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
      }
    });
  });
}

/** The status code and X-Clawjail-Reason of a raw HTTP response. */
export function statusAndReason(raw: string): { status: number; reason: string | undefined } {
  const status = Number(/^HTTP\/1\.1 ([0-9]{3}) /.exec(raw)?.[1] ?? 0);
  const reason = /\r\nX-Clawjail-Reason: ([a-z-]+)\r\n/i.exec(raw)?.[1];
  return { status, reason };
}

export function once<T>(emitter: NodeJS.EventEmitter, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, (v: T) => resolve(v)));
}
