import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { lstat, unlink } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { AuditSink } from '../../log.js';
import type { InferenceApi, InferenceConfig, InferenceRoute } from '../../profile/inference.js';
import { errorBody, ROUTER_ERROR_HEADER, streamErrorEvent, type RouterErrorCode } from './api-errors.js';
import { missingCredentialReason } from './credentials.js';
import { createDecoders, parseContentEncoding } from './encoding.js';
import { buildUpstreamHeaders, filterResponseHeaders, isEventStream } from './headers.js';
import { applyModelPolicy } from './model-policy.js';
import { clip, defaultRouteName, filterQuery, resolveRoute, splitTarget } from './routing.js';
import { compileKeyPattern, createKeyScrubber, scrubText, type KeyPattern } from './scrub.js';
import { createSseUsageScanner, usageFromJson, type TokenCounts } from './usage.js';

/**
 * The inference router: an HTTP server that forwards a fixed set of model-API paths to the
 * route's upstream with the route's key, and nothing else. It holds the keys; the sandbox holds
 * only the address. The same request listener serves a listening fd handed over from inside the
 * sandbox, a host/port, a unix socket, and the egress proxy's `inference.local` in-process.
 */

export type ListenTarget = { fd: number } | { host: string; port: number } | { path: string };

export interface InferenceRouter {
  /** The request listener; the egress proxy calls it for http://inference.local/… */
  handler: http.RequestListener;
  /** Serves one more listener; resolves with its address (a path for unix sockets). */
  listen(target: ListenTarget): Promise<AddressInfo | string>;
  /** Stops all listeners, aborts requests in flight, and releases upstream connections. */
  close(): Promise<void>;
}

export interface InferenceRouterOptions {
  sandbox: string;
  config: InferenceConfig;
  /** Route name → key, from resolveCredentials(). */
  credentials: ReadonlyMap<string, string>;
  audit: AuditSink;
  logger?: Logger;
  /** Largest request body accepted, in bytes (default 32 MiB). */
  maxBodyBytes?: number;
}

const DEFAULT_MAX_BODY = 32 << 20;
const MAX_CONNECT_MS = 10_000;
/** Bodies kept for token counting and auditBodies are capped; past the cap they only pass through. */
const MAX_CAPTURE = 1 << 20;
const MAX_AUDIT_BODY = 1 << 20;
const MAX_ERROR_BODY = 1 << 20;

interface Upstream {
  route: InferenceRoute;
  request: typeof http.request;
  agent: http.Agent;
  hostname: string;
  port: number;
  basePath: string;
  origin: string;
  credential: string | undefined;
  /** Every form of the credential, for scrubbing answers; undefined without a credential. */
  keyPattern: KeyPattern | undefined;
  connectTimeoutMs: number;
}

/** What one request did; becomes its audit event. */
interface Exchange {
  t0: number;
  route: InferenceRoute | undefined;
  api: InferenceApi;
  method: string;
  path: string;
  model?: string | undefined;
  upstreamModel?: string | undefined;
  status: number;
  stream: boolean;
  ttfbMs?: number;
  tokens?: TokenCounts | undefined;
  bytesIn: number;
  bytesOut: number;
  error?: string;
  /** Query parameters not forwarded (names only). */
  droppedQuery?: string[];
  requestBody?: string;
  responseBody?: string;
  upstream?: http.ClientRequest;
  done: boolean;
}

export function createInferenceRouter(options: InferenceRouterOptions): InferenceRouter {
  const { sandbox, config, credentials, audit } = options;
  const log = options.logger?.child({ service: 'inference' });
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const upstreams = new Map<string, Upstream>();
  for (const route of config.routes) upstreams.set(route.name, createUpstream(route, credentials.get(route.name)));
  const servers = new Set<http.Server>();
  const inFlight = new Set<http.ClientRequest>();
  let closing = false;

  const handler: http.RequestListener = (req, res) => {
    handle(req, res).catch((err: unknown) => {
      log?.error({ err }, 'inference router failed on a request');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"message":"internal router error","type":"server_error","param":null,"code":null}}');
      else res.destroy();
    });
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const decision = resolveRoute(config, method, req.url ?? '/');
    const x: Exchange = {
      t0: performance.now(),
      route: decision.route,
      api: decision.route?.api ?? guessApi(req, config),
      method,
      path: clip(splitTarget(req.url ?? '/').path),
      status: 0,
      stream: false,
      bytesIn: 0,
      bytesOut: 0,
      done: false,
    };
    res.on('close', () => {
      if (x.done) return;
      // The caller went away first: stop the upstream so it stops generating (and billing).
      x.error = 'client_closed';
      if (x.status === 0) x.status = 499;
      x.upstream?.destroy();
      finish(x);
    });

    if (closing) return refuse(res, x, 503, 'router_closing', 'the inference router is shutting down.');
    if (decision.kind === 'refuse') {
      return refuse(res, x, decision.status, decision.code, decision.message, decision.allow ? { allow: decision.allow } : undefined);
    }
    const { route, apiPath } = decision;
    const up = upstreams.get(route.name)!;
    const { query, dropped } = filterQuery(route.api, apiPath, decision.query);
    if (dropped.length > 0) x.droppedQuery = dropped;

    let body: Buffer = Buffer.alloc(0);
    if (method === 'POST') {
      const read = await readBody(req, maxBody);
      if (read === 'aborted') return;
      if (read === 'too_large') {
        return refuse(res, x, 413, 'body_too_large', `route "${route.name}": the request body is larger than ${maxBody} bytes.`, { connection: 'close' });
      }
      x.bytesIn = read.length;
      const policy = applyModelPolicy(route, read);
      if (!policy.ok) {
        x.model = policy.model;
        return refuse(res, x, policy.status, policy.code, policy.message);
      }
      body = policy.body;
      x.model = policy.model;
      x.upstreamModel = policy.upstreamModel;
      x.stream = (policy.json as { stream?: unknown } | undefined)?.stream === true;
      if (config.auditBodies) x.requestBody = capText(body, MAX_AUDIT_BODY);
    }
    if (route.credential && up.credential === undefined) {
      return refuse(res, x, 503, 'credential_missing', `route "${route.name}" has no API key: ${missingCredentialReason(route)}. Set it and restart the sandbox.`);
    }
    if (res.destroyed) return;
    forward(up, req, res, x, method, apiPath, query, body, 0);
  }

  /** Sends the request upstream and relays the answer. The upstream request is kept on `x` so a caller's disconnect can abort it. */
  function forward(up: Upstream, req: IncomingMessage, res: ServerResponse, x: Exchange, method: string, apiPath: string, query: string, body: Buffer, attempt: number): void {
    const route = up.route;
    const headers = buildUpstreamHeaders(route.api, req.headers, up.credential, method === 'POST' ? body.length : undefined);
    const ureq = up.request({ agent: up.agent, hostname: up.hostname, port: up.port, method, path: up.basePath + apiPath.slice(3) + query, headers });
    x.upstream = ureq;
    inFlight.add(ureq);
    let paused = false;
    let timedOut = false;
    let phase: 'connect' | 'headers' | 'body' = 'connect';
    const onTimer = () => {
      // A paused upstream is waiting on a slow caller, not the other way round.
      if (paused) return void timer.refresh();
      timedOut = true;
      const what = phase === 'connect' ? `${up.connectTimeoutMs} ms connecting to` : phase === 'headers' ? `${route.timeoutMs} ms waiting for an answer from` : `${route.timeoutMs} ms waiting for more of the answer from`;
      ureq.destroy(Object.assign(new Error(`timed out after ${what} the upstream`), { code: 'CLAWJAIL_TIMEOUT' }));
    };
    // One timer at a time: connect, then headers, then the gap between body chunks (re-armed by refresh()).
    let timer = setTimeout(onTimer, up.connectTimeoutMs);
    const toHeaders = () => {
      if (phase !== 'connect') return;
      phase = 'headers';
      clearTimeout(timer);
      timer = setTimeout(onTimer, route.timeoutMs);
    };
    ureq.on('socket', (socket) => {
      if (socket.connecting) socket.once('connect', toHeaders);
      else toHeaders();
    });
    const cleanup = () => {
      clearTimeout(timer);
      inFlight.delete(ureq);
    };

    ureq.on('error', (err: NodeJS.ErrnoException) => {
      cleanup();
      if (x.done || x.status !== 0) return;
      // A pooled connection the upstream closed while idle: the request never reached it, so sending it once more is safe.
      if (attempt === 0 && ureq.reusedSocket && err.code === 'ECONNRESET') {
        return forward(up, req, res, x, method, apiPath, query, body, 1);
      }
      const failure = classifyUpstreamError(err);
      log?.warn({ route: route.name, upstream: up.origin, code: err.code }, 'inference upstream failed');
      refuse(res, x, failure.status, failure.code, `route "${route.name}": ${failure.why} (upstream ${up.origin}).`);
    });

    ureq.on('response', (ures) => {
      phase = 'body';
      clearTimeout(timer);
      timer = setTimeout(onTimer, route.timeoutMs);
      // The listener keeps a destroyed response's error event from being unhandled; breaks are handled on 'close'.
      ures.on('error', () => {});
      const encoding = parseContentEncoding(ures.headers['content-encoding']);
      if (!encoding.ok) {
        cleanup();
        ures.destroy();
        ureq.destroy();
        return refuse(res, x, 502, 'upstream_encoding', `route "${route.name}": the upstream sent its answer with content-encoding "${encoding.coding}", which the router cannot decode to check it (it asks for identity; gzip, deflate and br are decoded) (upstream ${up.origin}).`);
      }
      const status = ures.statusCode ?? 502;
      x.status = status;
      const sse = isEventStream(ures.headers);
      x.stream = sse;
      // Every byte goes through the decoders, then the scrubber, before the caller or the audit log sees it.
      const decoders = createDecoders(encoding.codings);
      const source: Readable = decoders.reduce<Readable>((from, d) => from.pipe(d), ures);
      const scrubber = up.keyPattern ? createKeyScrubber(up.keyPattern) : undefined;
      const scrubHeader = up.keyPattern ? (t: string) => scrubText(up.keyPattern!, t) : undefined;
      const scanner = sse ? createSseUsageScanner() : undefined;
      const captureJson = !sse && status < 400;
      const holdBody = status >= 400 && !sse;
      const chunks: Buffer[] = [];
      let captured = 0;
      let auditText = '';

      if (!holdBody) {
        res.writeHead(status, filterResponseHeaders(ures.headers, !scrubber && decoders.length === 0, scrubHeader));
        // Stream clients learn the status at once, before the first token.
        if (sse) res.flushHeaders();
      }
      const deliver = (out: Buffer) => {
        if (out.length === 0) return;
        if (holdBody) {
          if (captured < MAX_ERROR_BODY) chunks.push(out);
          captured += out.length;
          return;
        }
        x.bytesOut += out.length;
        scanner?.push(out);
        if (captureJson && captured <= MAX_CAPTURE) {
          chunks.push(out);
          captured += out.length;
        }
        if (config.auditBodies && auditText.length < MAX_AUDIT_BODY) auditText += out.toString('utf8');
        if (!res.write(out) && !paused) {
          paused = true;
          source.pause();
          res.once('drain', () => {
            paused = false;
            timer.refresh();
            source.resume();
          });
        }
      };
      ures.on('data', () => {
        timer.refresh();
        if (x.ttfbMs === undefined) x.ttfbMs = performance.now() - x.t0;
      });
      source.on('data', (chunk: Buffer) => deliver(scrubber ? scrubber.push(chunk) : chunk));
      source.on('end', () => {
        cleanup();
        if (x.done) return;
        if (scrubber) deliver(scrubber.end());
        if (holdBody) {
          const out = Buffer.concat(chunks);
          x.bytesOut = out.length;
          if (config.auditBodies) x.responseBody = capText(out, MAX_AUDIT_BODY);
          res.writeHead(status, { ...filterResponseHeaders(ures.headers, false, scrubHeader), 'content-length': out.length });
          res.end(out);
        } else {
          if (scanner) x.tokens = scanner.result();
          else if (captureJson && captured <= MAX_CAPTURE) x.tokens = usageFromJson(Buffer.concat(chunks).toString('utf8'));
          if (config.auditBodies) x.responseBody = auditText.slice(0, MAX_AUDIT_BODY);
          res.end();
        }
        finish(x);
      });
      /** The answer broke off, or could not be decoded: a fast error if the status line has not gone out, else the stream's own error event or a cut. */
      const breakOff = (code: RouterErrorCode, why: string) => {
        const message = `route "${route.name}": ${why} (upstream ${up.origin}).`;
        log?.warn({ route: route.name, upstream: up.origin, error: code }, 'inference upstream broke off');
        x.error = code;
        if (!res.headersSent) return refuse(res, x, code === 'upstream_timeout' ? 504 : 502, code, message);
        if (sse) res.end(streamErrorEvent(route.api, code, message));
        else res.destroy();
        finish(x);
      };
      for (const d of decoders) {
        d.on('error', (err: NodeJS.ErrnoException) => {
          cleanup();
          if (x.done) return;
          ureq.destroy();
          breakOff('upstream_encoding', `the upstream's ${encoding.codings.join(', ')} answer could not be decoded (${err.code ?? err.message})`);
        });
      }
      ures.on('close', () => {
        cleanup();
        if (ures.complete || x.done) return;
        breakOff(timedOut ? 'upstream_timeout' : 'upstream_reset', timedOut ? `timed out after ${route.timeoutMs} ms waiting for more of the answer` : 'the upstream closed the connection mid-answer');
      });
    });

    ureq.end(method === 'POST' ? body : undefined);
  }

  /** Answers with the router's own error in the API's shape. */
  function refuse(res: ServerResponse, x: Exchange, status: number, code: RouterErrorCode, message: string, extra?: Record<string, string>): void {
    x.status = status;
    if (!x.error) x.error = code;
    if (!res.headersSent && !res.destroyed) {
      const text = JSON.stringify(errorBody(x.api, status, code, message));
      x.bytesOut = Buffer.byteLength(text);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': x.bytesOut, [ROUTER_ERROR_HEADER]: code, ...extra });
      res.end(text);
    }
    finish(x);
  }

  function finish(x: Exchange): void {
    if (x.done) return;
    x.done = true;
    const event: Record<string, unknown> = {
      kind: 'inference',
      sandbox,
      route: x.route?.name ?? null,
      api: x.api,
      method: x.method,
      path: x.path,
      status: x.status,
      stream: x.stream,
      latencyMs: ms(performance.now() - x.t0),
      bytesIn: x.bytesIn,
      bytesOut: x.bytesOut,
    };
    if (x.model !== undefined) event.model = x.model;
    if (x.upstreamModel !== undefined && x.upstreamModel !== x.model) event.upstreamModel = x.upstreamModel;
    if (x.ttfbMs !== undefined) event.ttfbMs = ms(x.ttfbMs);
    if (x.tokens) event.tokens = x.tokens;
    if (x.error) event.error = x.error;
    if (x.droppedQuery) event.droppedQuery = x.droppedQuery;
    if (x.requestBody !== undefined) event.requestBody = x.requestBody;
    if (x.responseBody !== undefined) event.responseBody = x.responseBody;
    audit.emit(event as { kind: string });
  }

  function createUpstream(route: InferenceRoute, credential: string | undefined): Upstream {
    const url = new URL(route.upstream);
    const secure = url.protocol === 'https:';
    return {
      route,
      request: secure ? https.request : http.request,
      agent: secure ? new https.Agent({ keepAlive: true, scheduling: 'lifo' }) : new http.Agent({ keepAlive: true, scheduling: 'lifo' }),
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port ? Number(url.port) : secure ? 443 : 80,
      basePath: url.pathname.replace(/\/+$/, ''),
      origin: url.origin,
      credential,
      keyPattern: credential ? compileKeyPattern([credential]) : undefined,
      connectTimeoutMs: Math.min(route.timeoutMs, MAX_CONNECT_MS),
    };
  }

  async function listen(target: ListenTarget): Promise<AddressInfo | string> {
    if (closing) throw new Error('inference router is closed');
    const server = http.createServer(handler);
    if ('path' in target) await removeStaleSocket(target.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const done = () => {
        server.off('error', reject);
        resolve();
      };
      if ('fd' in target) server.listen({ fd: target.fd }, done);
      else if ('path' in target) server.listen({ path: target.path }, done);
      else server.listen({ host: target.host, port: target.port }, done);
    });
    server.on('error', (err) => log?.error({ err }, 'inference listener failed'));
    servers.add(server);
    return server.address() ?? ('path' in target ? target.path : '');
  }

  async function close(): Promise<void> {
    closing = true;
    for (const r of inFlight) r.destroy();
    await Promise.all(
      [...servers].map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    servers.clear();
    for (const up of upstreams.values()) up.agent.destroy();
  }

  return { handler, listen, close };
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer | 'too_large' | 'aborted'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) over = true;
      if (!over) chunks.push(c);
    });
    // Past the cap the rest is read and dropped, so the 413 can still be delivered.
    req.on('end', () => resolve(over ? 'too_large' : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    req.on('close', () => {
      if (!req.complete) resolve('aborted');
    });
    req.on('error', () => resolve('aborted'));
  });
}

export function classifyUpstreamError(err: NodeJS.ErrnoException): { status: 502 | 504; code: RouterErrorCode; why: string } {
  const code = err.code ?? '';
  if (code === 'CLAWJAIL_TIMEOUT' || code === 'ETIMEDOUT') return { status: 504, code: 'upstream_timeout', why: err.message };
  if (code === 'ECONNREFUSED') return { status: 502, code: 'upstream_unreachable', why: 'the upstream refused the connection (ECONNREFUSED); is it running?' };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { status: 502, code: 'upstream_unreachable', why: `the upstream's host name does not resolve (${code})` };
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL') return { status: 502, code: 'upstream_unreachable', why: `no network path to the upstream (${code})` };
  if (code === 'EPROTO' || code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    return { status: 502, code: 'upstream_tls', why: `TLS with the upstream failed (${code}: ${err.message.split('\n')[0]})` };
  }
  if (code === 'ECONNRESET' || code === 'EPIPE' || err.message === 'socket hang up') {
    return { status: 502, code: 'upstream_reset', why: `the upstream closed the connection before answering (${code || 'socket hang up'})` };
  }
  return { status: 502, code: 'upstream_unreachable', why: `the upstream request failed (${code || err.message})` };
}

/** The error shape for a request that matched no route: Anthropic clients say so with their version header. */
function guessApi(req: IncomingMessage, config: InferenceConfig): InferenceApi {
  if (req.headers['anthropic-version'] !== undefined) return 'anthropic';
  const def = defaultRouteName(config);
  return config.routes.find((r) => r.name === def)?.api ?? 'openai';
}

function capText(b: Buffer, max: number): string {
  return b.length <= max ? b.toString('utf8') : b.subarray(0, max).toString('utf8');
}

function ms(v: number): number {
  return Math.round(v * 100) / 100;
}

async function removeStaleSocket(path: string): Promise<void> {
  try {
    if ((await lstat(path)).isSocket()) await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
