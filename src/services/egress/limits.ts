/**
 * The proxy's per-connection limits as pure decisions. The proxy's HTTP server never listens (it is
 * fed sockets accepted elsewhere), so Node's own header timeout and maxConnections never apply to
 * it: the proxy enforces these itself on every accepted socket, through the functions below.
 */

/**
 * The connection cap, with one report per burst: `refused` counts the connections refused since
 * the cap was last reached (0 = below the cap, no burst going on).
 */
export interface CapDecision {
  admit: boolean;
  refused: number;
  /**
   * `reached`: this is the first refusal of a burst; `cleared`: the burst is over (the open
   * count fell below the cap) and `refused` connections were refused during it.
   */
  report?: { state: 'reached'; open: number } | { state: 'cleared'; refused: number };
}

/** A new connection arrives while `open` are held (relayed tunnels included). */
export function admitConnection(open: number, max: number, refused: number): CapDecision {
  if (open < max) return refused > 0 ? { admit: true, refused: 0, report: { state: 'cleared', refused } } : { admit: true, refused: 0 };
  return refused === 0 ? { admit: false, refused: 1, report: { state: 'reached', open } } : { admit: false, refused: refused + 1 };
}

/** A held connection closed, leaving `open`: a burst ends as soon as there is room again. */
export function releaseConnection(open: number, max: number, refused: number): CapDecision {
  if (refused > 0 && open < max) return { admit: true, refused: 0, report: { state: 'cleared', refused } };
  return { admit: true, refused };
}

/**
 * What to do with a connection whose request headers did not arrive within the header timeout.
 * A first request, or a later one that has started to arrive, is a slow (or stalled) client: 408.
 * A kept-alive connection on which nothing at all was sent since the last response is merely
 * idle: it is closed without an answer, as HTTP/1.1 servers close idle connections (a 408 there
 * could be read as the answer to a request the client is about to send).
 */
export function headerTimeoutAction(firstRequest: boolean, bytesSinceArmed: number): 'respond-408' | 'close' {
  return firstRequest || bytesSinceArmed > 0 ? 'respond-408' : 'close';
}

/**
 * Enforced by the proxy itself on every client socket, whether it accepted the socket (listen())
 * or was handed it (accept()): its HTTP server never listens, so Node's own listen-time timers and
 * maxConnections never run (the decisions above apply instead).
 */
export interface EgressLimits {
  /** Request line + headers; more → 431. */
  maxHeaderBytes: number;
  /**
   * A client must finish its request headers within this from connecting, or from the previous
   * response on a kept-alive connection (slowloris) → 408.
   */
  headersTimeoutMs: number;
  /** A client connection, open tunnel or forwarded request with no traffic either way is closed after this. */
  idleTimeoutMs: number;
  connectTimeoutMs: number;
  resolveTimeoutMs: number;
  /** Client connections held at once, relayed tunnels included; one more is answered 503 and closed. */
  maxConnections: number;
}

/** The timeouts and cap are the profile's defaults (network.limits, ProxyLimitsSchema). */
export const DEFAULT_EGRESS_LIMITS: EgressLimits = {
  maxHeaderBytes: 16 * 1024,
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 10 * 60_000,
  connectTimeoutMs: 10_000,
  resolveTimeoutMs: 10_000,
  maxConnections: 256,
};
