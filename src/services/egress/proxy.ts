import dns from 'node:dns';
import http from 'node:http';
import net from 'node:net';
import type { Logger } from 'pino';
import type { AuditSink } from '../../log.js';
import type { NetworkConfig } from '../../profile/network.js';
import type { ApprovalBroker } from './approvals.js';
import { createEgressAudit } from './audit-events.js';
import { authorizeWhileConnected, withApprovedRule, type AuthorizeDeps, type Resolver } from './authorize.js';
import { createConnections } from './connections.js';
import type { LocalService } from './context.js';
import { refuseUpgrade, serveForward } from './forward.js';
import { DEFAULT_EGRESS_LIMITS, type EgressLimits } from './limits.js';
import { BufferPool, nativeRelay, type RelayEngine } from './relay.js';
import { respond } from './responses.js';
import { serveConnect, type TunnelContext } from './tunnel.js';
import { createDialer } from './upstream.js';

/**
 * The allowlist proxy: HTTP CONNECT tunnels and plain-HTTP forwarding (absolute-URI requests).
 * It listens inside the sandbox (on an fd the sandbox's init created there) and connects out from
 * the supervisor's network namespace, so it is the sandbox's only way out.
 *
 * Per connection: accept (connection cap, header deadline: connections.ts) → parse the target
 * strictly (target.ts) → authorize (authorize.ts): match the policy on the name, before any DNS
 * query → (hold for approval) → resolve → match again on every address → connect to an address
 * that passed (upstream.ts: the one that was checked, no second lookup, no DNS-rebinding gap) →
 * a tunnel (tunnel.ts: the client's first bytes pass the TLS SNI check before they are forwarded,
 * then the addon's native relay carries it, relay.ts) or one forwarded request (forward.ts). Every
 * decision and every close is an audit event (audit-events.ts).
 */

export type { EgressRefusalReason, Resolver } from './authorize.js';
export { DEFAULT_EGRESS_LIMITS, type EgressLimits } from './limits.js';
export type { RelayEngine } from './relay.js';

export interface EgressProxyOptions {
  sandbox: string;
  policy: NetworkConfig;
  audit: AuditSink;
  logger?: Logger;
  /** Name → addresses. Default: the supervisor's getaddrinfo (dns.lookup). */
  resolve?: Resolver;
  /** Without a broker, destinations no rule allows are refused at once even if approvals are on. */
  approvals?: ApprovalBroker;
  /** Hosts served in-process, outside the policy (e.g. `inference.local` → the inference router). */
  localHandlers?: Record<string, http.RequestListener>;
  limits?: Partial<EgressLimits>;
  /**
   * Hand CONNECT tunnels, once checked, to the addon's native relay: `true` (the default) = its
   * `copy` engine, or name the engine; `false`, or an addon without a relay, pipes them in JS.
   */
  nativeRelay?: boolean | RelayEngine;
}

export type ListenTarget = { fd: number } | { host: string; port: number };

export interface EgressProxy {
  listen(target: ListenTarget): Promise<void>;
  /**
   * Serves one client connection accepted elsewhere (the launcher accepts on the sandbox's socket
   * and creates the proxy only when the first client arrives). A paused socket is resumed here.
   * Accept with `allowHalfOpen: true` (as http.Server does): a tunnel's client may end its
   * sending side while it still reads.
   */
  accept(socket: net.Socket): void;
  /** The bound address (for a port-0 listen in tests). */
  address(): net.AddressInfo | null;
  /** Stops accepting, ends every tunnel and forwarded request, denies requests held for approval. */
  close(): Promise<void>;
  /**
   * Replaces the policy for new connections; open tunnels are not re-checked. Pass a new object:
   * a policy object is compiled once and must not be changed in place afterwards.
   */
  updatePolicy(policy: NetworkConfig): void;
  readonly policy: NetworkConfig;
  /**
   * Open sockets: from the sandbox (clients) and to destinations (upstreams), relayed tunnels
   * included; `relayed` counts the tunnels the native relay carries.
   */
  stats(): { clients: number; upstreams: number; relayed: number };
}

const defaultResolve: Resolver = async (host) => {
  const found = await dns.promises.lookup(host, { all: true, verbatim: true, hints: dns.ADDRCONFIG });
  return found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

export function createEgressProxy(options: EgressProxyOptions): EgressProxy {
  const limits: EgressLimits = { ...DEFAULT_EGRESS_LIMITS, ...options.limits };
  const { sandbox, approvals } = options;
  const log = options.logger;
  let policy = options.policy;
  const closing = new AbortController();
  const audit = createEgressAudit(options.audit, sandbox);
  const connections = createConnections({ limits, audit, sandbox, log });
  const auth: AuthorizeDeps = { policy: () => policy, approvals, resolve: options.resolve ?? defaultResolve, resolveTimeoutMs: limits.resolveTimeoutMs, audit };
  const local = new Map<string, LocalService>();
  const ctx: TunnelContext = {
    limits,
    log,
    audit,
    connections,
    local,
    authorize: (conn, socket) => authorizeWhileConnected(auth, closing.signal, limits.idleTimeoutMs, conn, socket),
    dial: createDialer({ connectTimeoutMs: limits.connectTimeoutMs, closing: closing.signal, track: connections.trackUpstream }),
    readPool: new BufferPool(16),
    relay: options.nativeRelay === false ? undefined : nativeRelay(),
    relayEngine: typeof options.nativeRelay === 'string' ? options.nativeRelay : 'copy',
  };
  let front: net.Server | undefined;
  for (const [host, listener] of Object.entries(options.localHandlers ?? {})) {
    // A CONNECT to a local host is served by handing the raw socket to an unbound HTTP server.
    const ls = http.createServer({ maxHeaderSize: limits.maxHeaderBytes, headersTimeout: 0, requestTimeout: 0 }, listener);
    ls.timeout = limits.idleTimeoutMs;
    ls.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => connections.requestStarted(req.socket, res));
    local.set(host.toLowerCase(), { listener, server: ls });
  }

  approvals?.onRule((rule) => {
    policy = withApprovedRule(policy, rule);
  });

  // Node's header timeout is off (0): it runs only on a listening server, and this one is fed
  // sockets; the proxy's own per-socket deadline replaces it. `timeout` is per socket (Node sets
  // it on each connection and request): the idle timeout of a client while it speaks HTTP.
  const server = http.createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: 0,
    requestTimeout: 0,
    keepAliveTimeout: 5_000,
    requireHostHeader: false,
    noDelay: true,
  });
  server.timeout = limits.idleTimeoutMs;
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    connections.requestStarted(req.socket, res);
    void serveForward(ctx, req, res).catch((err: unknown) => internalError(err, res));
  });
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    connections.disarm(socket);
    serveConnect(ctx, req, socket, head).catch((err: unknown) => {
      log?.error({ err }, 'egress proxy: CONNECT handler failed');
      socket.destroy();
    });
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => refuseUpgrade(ctx, req, socket));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => connections.clientError(err, socket));
  server.on('error', (err) => log?.error({ err }, 'egress proxy: server error'));

  /**
   * Serves one client socket: the connection cap, then the header deadline, then HTTP. Whoever
   * accepted it may have paused it (pauseOnConnect): nothing was read before this point.
   */
  function accept(socket: net.Socket): void {
    // Gone while the proxy was being created: its 'close' has passed, it must not be counted.
    if (socket.destroyed) return;
    if (closing.signal.aborted) {
      socket.destroy();
      return;
    }
    if (!connections.admit(socket)) return;
    server.emit('connection', socket);
    socket.resume();
  }

  function internalError(err: unknown, res: http.ServerResponse): void {
    log?.error({ err }, 'egress proxy: request handler failed');
    if (!res.headersSent) respond(res, 502, 'upstream-unreachable', 'clawjail: internal proxy error\n');
    else res.destroy();
  }

  return {
    get policy() {
      return policy;
    },
    accept,
    listen(target) {
      // The same path as a handed-over socket: a plain listener that passes each one to accept().
      // Half-open as an HTTP server's own sockets are: a tunnel's client may end its side first.
      const f = net.createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true }, accept);
      front = f;
      return new Promise((resolveListen, reject) => {
        const onError = (err: Error): void => reject(err);
        f.once('error', onError);
        const done = (): void => {
          f.removeListener('error', onError);
          f.on('error', (err) => log?.error({ err }, 'egress proxy: listener error'));
          resolveListen();
        };
        if ('fd' in target) f.listen({ fd: target.fd }, done);
        else f.listen({ host: target.host, port: target.port }, done);
      });
    },
    address() {
      const a = front?.address();
      return a && typeof a === 'object' ? a : null;
    },
    updatePolicy(p) {
      policy = p;
    },
    stats: () => connections.stats(),
    close() {
      closing.abort();
      return new Promise((resolveClose) => {
        if (front) front.close(() => resolveClose());
        else resolveClose();
        connections.destroyAll();
        for (const { server: ls } of local.values()) ls.closeAllConnections();
      });
    },
  };
}
