import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { InferenceApi } from '../../profile/inference.js';

/**
 * Header policy, both directions. Requests carry only headers on an allowlist, so the caller's
 * Authorization, x-api-key, cookies, proxy headers and SDK telemetry never leave the sandbox;
 * the route's credential is added afterwards. Responses carry only headers a client needs.
 */

const REQUEST_HEADERS: Readonly<Record<InferenceApi, readonly string[]>> = {
  openai: ['accept', 'content-type', 'user-agent', 'idempotency-key', 'openai-beta'],
  anthropic: ['accept', 'content-type', 'user-agent', 'idempotency-key', 'anthropic-version', 'anthropic-beta'],
};

/** Sent when the caller names none; the only version the Messages API has published. */
export const DEFAULT_ANTHROPIC_VERSION = '2023-06-01';

export function buildUpstreamHeaders(api: InferenceApi, incoming: IncomingHttpHeaders, credential: string | undefined, bodyLength: number | undefined): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name of REQUEST_HEADERS[api]) {
    const v = incoming[name];
    if (typeof v === 'string') out[name] = v;
  }
  // Identity encoding spares the router decoding the answer it scrubs for the key and reads `usage` from.
  out['accept-encoding'] = 'identity';
  if (bodyLength !== undefined) out['content-length'] = bodyLength;
  if (api === 'anthropic') {
    out['anthropic-version'] ??= DEFAULT_ANTHROPIC_VERSION;
    if (credential !== undefined) out['x-api-key'] = credential;
  } else if (credential !== undefined) {
    out.authorization = `Bearer ${credential}`;
  }
  return out;
}

const RESPONSE_HEADERS = new Set([
  'content-type',
  'content-length',
  'cache-control',
  'retry-after',
  'retry-after-ms',
  'x-request-id',
  'request-id',
  'openai-processing-ms',
  'openai-version',
]);
const RESPONSE_HEADER_PREFIXES = ['x-ratelimit-', 'anthropic-ratelimit-'];

/**
 * Upstream response headers the caller sees: only those on the allowlist (cookies, account ids,
 * location, hop-by-hop headers and anything an upstream echoes stay out), each value passed
 * through `scrub`; a name that `scrub` would change (a key inside a header name) is dropped.
 * content-encoding never passes: the router decodes bodies. content-length passes only with
 * `keepLength`, when the body goes out byte for byte.
 */
export function filterResponseHeaders(headers: IncomingHttpHeaders, keepLength: boolean, scrub: (text: string) => string = (t) => t): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (name === 'content-length' && !keepLength) continue;
    if (!RESPONSE_HEADERS.has(name) && !RESPONSE_HEADER_PREFIXES.some((p) => name.startsWith(p))) continue;
    if (scrub(name) !== name) continue;
    out[name] = Array.isArray(value) ? value.map(scrub) : scrub(value);
  }
  return out;
}

export function isEventStream(headers: IncomingHttpHeaders): boolean {
  return (headers['content-type'] ?? '').toLowerCase().startsWith('text/event-stream');
}
