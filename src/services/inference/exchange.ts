import type http from 'node:http';
import type { ServerResponse } from 'node:http';
import type { AuditEvent } from '../../log.js';
import type { InferenceApi, InferenceRoute } from '../../profile/inference.js';
import { errorBody, ROUTER_ERROR_HEADER, type RouterErrorCode } from './api-errors.js';
import type { TokenCounts } from './usage.js';

/**
 * One request through the router, as a record the request path fills in (route, model, status,
 * tokens, bytes), and the audit event it becomes: built by a pure function, emitted once.
 */

/** What one request did; becomes its audit event. */
export interface Exchange {
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

/** A fresh record: nothing answered, nothing counted yet. */
export function openExchange(t0: number, route: InferenceRoute | undefined, api: InferenceApi, method: string, path: string): Exchange {
  return { t0, route, api, method, path, status: 0, stream: false, bytesIn: 0, bytesOut: 0, done: false };
}

/** The `inference` audit event of an exchange that ended at `now` (performance.now()). Pure. */
export function exchangeEvent(sandbox: string, x: Exchange, now: number): AuditEvent {
  const event: AuditEvent = {
    kind: 'inference',
    sandbox,
    route: x.route?.name ?? null,
    api: x.api,
    method: x.method,
    path: x.path,
    status: x.status,
    stream: x.stream,
    latencyMs: ms(now - x.t0),
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
  return event;
}

/**
 * Answers with the router's own error in the API's shape (unless an answer has started or the
 * caller is gone), and records it on the exchange; the caller then finishes the exchange.
 */
export function writeRouterError(res: ServerResponse, x: Exchange, status: number, code: RouterErrorCode, message: string, extra?: Record<string, string>): void {
  x.status = status;
  if (!x.error) x.error = code;
  if (!res.headersSent && !res.destroyed) {
    const text = JSON.stringify(errorBody(x.api, status, code, message));
    x.bytesOut = Buffer.byteLength(text);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': x.bytesOut, [ROUTER_ERROR_HEADER]: code, ...extra });
    res.end(text);
  }
}

/** A body as audit text, cut at `max` bytes. */
export function capText(b: Buffer, max: number): string {
  return b.length <= max ? b.toString('utf8') : b.subarray(0, max).toString('utf8');
}

function ms(v: number): number {
  return Math.round(v * 100) / 100;
}
