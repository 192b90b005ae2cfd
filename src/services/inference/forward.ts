import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { streamErrorEvent, type RouterErrorCode } from './api-errors.js';
import { createDecoders, parseContentEncoding } from './encoding.js';
import { capText, type Exchange } from './exchange.js';
import { buildUpstreamHeaders, filterResponseHeaders, isEventStream } from './headers.js';
import { createKeyScrubber, scrubText } from './scrub.js';
import { classifyUpstreamError, TIMEOUT_CODE, timeoutMessage, type Upstream, type UpstreamPhase } from './upstream.js';
import { createSseUsageScanner, usageFromJson } from './usage.js';

/**
 * One request's trip upstream and its answer's way back: send it (one timer per phase: connect,
 * headers, then the gap between body chunks), retry once on a pooled connection the upstream had
 * closed, then relay the answer unbuffered through the decoders and the key scrubber, counting
 * tokens on the way. Error answers are held whole, scrubbed, and sent with their length.
 */

/** Bodies kept for token counting and auditBodies are capped; past the cap they only pass through. */
const MAX_CAPTURE = 1 << 20;
export const MAX_AUDIT_BODY = 1 << 20;
const MAX_ERROR_BODY = 1 << 20;

export interface ForwardContext {
  readonly auditBodies: boolean;
  readonly log: Logger | undefined;
  /** Upstream requests not yet done, for close(). */
  readonly inFlight: Set<ClientRequest>;
  /** Answers with the router's own error and finishes the exchange. */
  refuse(res: ServerResponse, x: Exchange, status: number, code: RouterErrorCode, message: string, extra?: Record<string, string>): void;
  /** Emits the exchange's audit event, once. */
  finish(x: Exchange): void;
}

/** What the router has decided to send upstream. */
export interface UpstreamRequest {
  up: Upstream;
  method: string;
  apiPath: string;
  query: string;
  body: Buffer;
}

/** The path on the upstream: its base path, then the API path after /v1, then the filtered query. Pure. */
export function upstreamPath(basePath: string, apiPath: string, query: string): string {
  return basePath + apiPath.slice(3) + query;
}

/**
 * How an answer is relayed. Error answers (not streams) are held whole (to be scrubbed and sent
 * with a length); successful JSON answers are captured for their token counts. Pure.
 */
export function answerPlan(status: number, sse: boolean): { holdBody: boolean; captureJson: boolean } {
  return { holdBody: status >= 400 && !sse, captureJson: !sse && status < 400 };
}

/** The status of an answer that broke off before its status line went out. Pure. */
export function breakOffStatus(code: RouterErrorCode): 502 | 504 {
  return code === 'upstream_timeout' ? 504 : 502;
}

/** The state of one attempt upstream that its answer's relay shares. */
interface Attempt {
  ureq: ClientRequest;
  timer: NodeJS.Timeout;
  phase: UpstreamPhase;
  /** The caller is slow: the upstream waits on it, not the other way round. */
  paused: boolean;
  timedOut: boolean;
  cleanup(): void;
}

/** Sends the request upstream and relays the answer. The upstream request is kept on `x` so a caller's disconnect can abort it. */
export function forward(ctx: ForwardContext, u: UpstreamRequest, req: IncomingMessage, res: ServerResponse, x: Exchange, attempt: number): void {
  const { up, method, body } = u;
  const route = up.route;
  const headers = buildUpstreamHeaders(route.api, req.headers, up.credential, method === 'POST' ? body.length : undefined);
  const ureq = up.request({ agent: up.agent, hostname: up.hostname, port: up.port, method, path: upstreamPath(up.basePath, u.apiPath, u.query), headers });
  x.upstream = ureq;
  ctx.inFlight.add(ureq);
  const onTimer = () => {
    // A paused upstream is waiting on a slow caller, not the other way round.
    if (a.paused) return void a.timer.refresh();
    a.timedOut = true;
    ureq.destroy(Object.assign(new Error(timeoutMessage(a.phase, up.connectTimeoutMs, route.timeoutMs)), { code: TIMEOUT_CODE }));
  };
  // One timer at a time: connect, then headers, then the gap between body chunks (re-armed by refresh()).
  const a: Attempt = {
    ureq,
    timer: setTimeout(onTimer, up.connectTimeoutMs),
    phase: 'connect',
    paused: false,
    timedOut: false,
    cleanup: () => {
      clearTimeout(a.timer);
      ctx.inFlight.delete(ureq);
    },
  };
  const toHeaders = () => {
    if (a.phase !== 'connect') return;
    a.phase = 'headers';
    clearTimeout(a.timer);
    a.timer = setTimeout(onTimer, route.timeoutMs);
  };
  ureq.on('socket', (socket) => {
    if (socket.connecting) socket.once('connect', toHeaders);
    else toHeaders();
  });

  ureq.on('error', (err: NodeJS.ErrnoException) => {
    a.cleanup();
    if (x.done || x.status !== 0) return;
    // A pooled connection the upstream closed while idle: the request never reached it, so sending it once more is safe.
    if (attempt === 0 && ureq.reusedSocket && err.code === 'ECONNRESET') {
      return forward(ctx, u, req, res, x, 1);
    }
    const failure = classifyUpstreamError(err);
    ctx.log?.warn({ route: route.name, upstream: up.origin, code: err.code }, 'inference upstream failed');
    ctx.refuse(res, x, failure.status, failure.code, `route "${route.name}": ${failure.why} (upstream ${up.origin}).`);
  });

  ureq.on('response', (ures) => {
    a.phase = 'body';
    clearTimeout(a.timer);
    a.timer = setTimeout(onTimer, route.timeoutMs);
    relayAnswer(ctx, up, a, ures, res, x);
  });

  ureq.end(method === 'POST' ? body : undefined);
}

/** Relays the upstream's answer to the caller: decoded, scrubbed, counted, unbuffered unless it is an error. */
function relayAnswer(ctx: ForwardContext, up: Upstream, a: Attempt, ures: IncomingMessage, res: ServerResponse, x: Exchange): void {
  const route = up.route;
  const { ureq } = a;
  // The listener keeps a destroyed response's error event from being unhandled; breaks are handled on 'close'.
  ures.on('error', () => {});
  const encoding = parseContentEncoding(ures.headers['content-encoding']);
  if (!encoding.ok) {
    a.cleanup();
    ures.destroy();
    ureq.destroy();
    return ctx.refuse(res, x, 502, 'upstream_encoding', `route "${route.name}": the upstream sent its answer with content-encoding "${encoding.coding}", which the router cannot decode to check it (it asks for identity; gzip, deflate and br are decoded) (upstream ${up.origin}).`);
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
  const { holdBody, captureJson } = answerPlan(status, sse);
  const auditBodies = ctx.auditBodies;
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
    if (auditBodies && auditText.length < MAX_AUDIT_BODY) auditText += out.toString('utf8');
    if (!res.write(out) && !a.paused) {
      a.paused = true;
      source.pause();
      res.once('drain', () => {
        a.paused = false;
        a.timer.refresh();
        source.resume();
      });
    }
  };
  ures.on('data', () => {
    a.timer.refresh();
    if (x.ttfbMs === undefined) x.ttfbMs = performance.now() - x.t0;
  });
  source.on('data', (chunk: Buffer) => deliver(scrubber ? scrubber.push(chunk) : chunk));
  source.on('end', () => {
    a.cleanup();
    if (x.done) return;
    if (scrubber) deliver(scrubber.end());
    if (holdBody) {
      const out = Buffer.concat(chunks);
      x.bytesOut = out.length;
      if (auditBodies) x.responseBody = capText(out, MAX_AUDIT_BODY);
      res.writeHead(status, { ...filterResponseHeaders(ures.headers, false, scrubHeader), 'content-length': out.length });
      res.end(out);
    } else {
      if (scanner) x.tokens = scanner.result();
      else if (captureJson && captured <= MAX_CAPTURE) x.tokens = usageFromJson(Buffer.concat(chunks).toString('utf8'));
      if (auditBodies) x.responseBody = auditText.slice(0, MAX_AUDIT_BODY);
      res.end();
    }
    ctx.finish(x);
  });
  /** The answer broke off, or could not be decoded: a fast error if the status line has not gone out, else the stream's own error event or a cut. */
  const breakOff = (code: RouterErrorCode, why: string) => {
    const message = `route "${route.name}": ${why} (upstream ${up.origin}).`;
    ctx.log?.warn({ route: route.name, upstream: up.origin, error: code }, 'inference upstream broke off');
    x.error = code;
    if (!res.headersSent) return ctx.refuse(res, x, breakOffStatus(code), code, message);
    if (sse) res.end(streamErrorEvent(route.api, code, message));
    else res.destroy();
    ctx.finish(x);
  };
  for (const d of decoders) {
    d.on('error', (err: NodeJS.ErrnoException) => {
      a.cleanup();
      if (x.done) return;
      ureq.destroy();
      breakOff('upstream_encoding', `the upstream's ${encoding.codings.join(', ')} answer could not be decoded (${err.code ?? err.message})`);
    });
  }
  ures.on('close', () => {
    a.cleanup();
    if (ures.complete || x.done) return;
    breakOff(a.timedOut ? 'upstream_timeout' : 'upstream_reset', a.timedOut ? `timed out after ${route.timeoutMs} ms waiting for more of the answer` : 'the upstream closed the connection mid-answer');
  });
}
