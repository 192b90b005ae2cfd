import http from 'node:http';
import https from 'node:https';
import type { InferenceRoute } from '../../profile/inference.js';
import type { RouterErrorCode } from './api-errors.js';
import { compileKeyPattern, type KeyPattern } from './scrub.js';

/**
 * A route's upstream as the router talks to it (address, agent, credential, scrub pattern), and
 * what its failures mean to the caller: pure classifications on error codes, never on messages.
 */

const MAX_CONNECT_MS = 10_000;

export interface Upstream {
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

export function createUpstream(route: InferenceRoute, credential: string | undefined): Upstream {
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

/** The error code the router gives its own upstream timeouts. */
export const TIMEOUT_CODE = 'CLAWJAIL_TIMEOUT';

/** Where an upstream request is: each phase has its own timer (see forward.ts). */
export type UpstreamPhase = 'connect' | 'headers' | 'body';

/** The message of an upstream timeout in a phase. Pure. */
export function timeoutMessage(phase: UpstreamPhase, connectTimeoutMs: number, timeoutMs: number): string {
  const what = phase === 'connect' ? `${connectTimeoutMs} ms connecting to` : phase === 'headers' ? `${timeoutMs} ms waiting for an answer from` : `${timeoutMs} ms waiting for more of the answer from`;
  return `timed out after ${what} the upstream`;
}

export function classifyUpstreamError(err: NodeJS.ErrnoException): { status: 502 | 504; code: RouterErrorCode; why: string } {
  const code = err.code ?? '';
  if (code === TIMEOUT_CODE || code === 'ETIMEDOUT') return { status: 504, code: 'upstream_timeout', why: err.message };
  if (code === 'ECONNREFUSED') return { status: 502, code: 'upstream_unreachable', why: 'the upstream refused the connection (ECONNREFUSED); is it running?' };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { status: 502, code: 'upstream_unreachable', why: `the upstream's host name does not resolve (${code})` };
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL') return { status: 502, code: 'upstream_unreachable', why: `no network path to the upstream (${code})` };
  if (code === 'EPROTO' || code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    return { status: 502, code: 'upstream_tls', why: `TLS with the upstream failed (${code}: ${err.message.split('\n')[0]})` };
  }
  // Node's "socket hang up" (the upstream closed before answering) carries ECONNRESET.
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return { status: 502, code: 'upstream_reset', why: `the upstream closed the connection before answering (${code})` };
  }
  return { status: 502, code: 'upstream_unreachable', why: `the upstream request failed (${code || err.message})` };
}
