import dns from 'node:dns';
import http from 'node:http';
import net from 'node:net';
import type { Logger } from 'pino';
import type { AuditSink } from '../../log.js';
import type { NativeRelay, NativeRelayResult } from '../../native.js';
import type { AllowRule, NetworkConfig } from '../../profile/network.js';
import type { ApprovalBroker } from './approvals.js';
import { createEgressAudit, errText, NO_TARGET, type ConnRecord } from './audit-events.js';
import { formatIp, parseIp } from './ip.js';
import { admitConnection, headerTimeoutAction, releaseConnection, type CapDecision } from './limits.js';
import { matchEgress, type EgressDecision, type EgressReason, type EgressRequest } from './policy.js';
import { MAX_CLIENT_HELLO_BYTES, TLS_PORTS, checkTunnelStart, scanClientHello } from './sni.js';
import { forwardHeaders, stripHopByHop } from './forward-headers.js';
import { BufferPool, createUpstreamReader, flushed, nativeRelay, streamHandle, type RelayEngine, type RelayFn, type StreamHandle, type UpstreamReader } from './relay.js';
import { refusalBody, refuseRaw, respond, TLS_ALERT_ACCESS_DENIED } from './responses.js';
import { parseConnectTarget, parseProxyRequestUrl } from './target.js';

/**
 * The allowlist proxy: HTTP CONNECT tunnels and plain-HTTP forwarding (absolute-URI requests).
 * It listens inside the sandbox (on an fd the sandbox's init created there) and connects out from
 * the supervisor's network namespace, so it is the sandbox's only way out.
 *
 * Per connection: parse the target strictly → match the policy on the name, before any DNS query
 * → (hold for approval) → resolve → match again on every address → connect to an address that
 * passed (the one that was checked: no second lookup, no DNS-rebinding gap) → for tunnels, read
 * the client's first bytes and check the TLS SNI before forwarding them → hand the two sockets to
 * the addon's native relay for the rest of the tunnel (or keep piping in JS without one).
 */

export type Resolver = (host: string) => Promise<{ address: string; family: 4 | 6 }[]>;

/** The `X-Clawjail-Reason` of a refusal, and the `reason` of audit events. */
export type EgressRefusalReason =
  | Exclude<EgressReason, 'allowlisted' | 'approved'>
  | 'sni-mismatch'
  | 'approval-timeout'
  | 'malformed'
  | 'headers-too-large'
  | 'header-timeout'
  | 'resolve-failed'
  | 'upstream-unreachable'
  | 'unsupported'
  | 'too-many-connections';

/**
 * Enforced by the proxy itself on every client socket, whether it accepted the socket (listen())
 * or was handed it (accept()): its HTTP server never listens, so Node's own listen-time timers and
 * maxConnections never run (see limits.ts).
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

/** Refused over-cap sockets kept open at once for their 503 to be read; beyond, they are just closed. */
const MAX_REFUSING = 64;

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

type Authorized = { ok: true; addresses: string[]; decision: EgressDecision };
type Refused = { ok: false; status: number; reason: EgressRefusalReason; detail: string };

/** Per client socket: its header deadline, and the requests on it not yet answered. */
interface ClientState {
  deadline: NodeJS.Timeout | undefined;
  answering: number;
}

export function createEgressProxy(options: EgressProxyOptions): EgressProxy {
  const limits: EgressLimits = { ...DEFAULT_EGRESS_LIMITS, ...options.limits };
  const resolve = options.resolve ?? defaultResolve;
  const { audit, sandbox, approvals } = options;
  const log = options.logger;
  let policy = options.policy;
  const events = createEgressAudit(audit, sandbox);
  const readPool = new BufferPool(16);
  const clients = new Set<net.Socket>();
  const upstreams = new Set<net.Socket>();
  /** Tunnels carried by the native relay: their Node sockets are gone, the relay holds the fds. */
  const relays = new Set<NativeRelay>();
  const relay = options.nativeRelay === false ? undefined : nativeRelay();
  const relayEngine: RelayEngine = typeof options.nativeRelay === 'string' ? options.nativeRelay : 'copy';
  const closing = new AbortController();
  const clientState = new WeakMap<net.Socket, ClientState>();
  /** Connections refused in the current burst over maxConnections (0: no burst). */
  let refusedInBurst = 0;
  let refusing = 0;
  let front: net.Server | undefined;
  const local = new Map<string, { listener: http.RequestListener; server: http.Server }>();
  for (const [host, listener] of Object.entries(options.localHandlers ?? {})) {
    // A CONNECT to a local host is served by handing the raw socket to an unbound HTTP server.
    const ls = http.createServer({ maxHeaderSize: limits.maxHeaderBytes, headersTimeout: 0, requestTimeout: 0 }, listener);
    ls.timeout = limits.idleTimeoutMs;
    ls.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => requestStarted(req.socket, res));
    local.set(host.toLowerCase(), { listener, server: ls });
  }

  approvals?.onRule((rule: AllowRule) => {
    const host = rule.host.toLowerCase();
    if (policy.allow.some((r) => r.host.toLowerCase() === host && !r.methods && !r.paths && rule.ports.every((p) => r.ports.includes(p)))) return;
    policy = { ...policy, allow: [...policy.allow, rule] };
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
    requestStarted(req.socket, res);
    void onRequest(req, res).catch((err: unknown) => internalError(err, res));
  });
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    disarm(socket);
    onConnect(req, socket, head).catch((err: unknown) => {
      log?.error({ err }, 'egress proxy: CONNECT handler failed');
      socket.destroy();
    });
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    disarm(socket);
    socket.on('error', () => socket.destroy());
    refuseRaw(socket, 501, 'unsupported', 'clawjail: protocol upgrades over plain-HTTP forwarding are not supported; use CONNECT (wss://, or a proxy-aware client)\n');
    events.decision({ id: events.connId(), via: 'http', target: NO_TARGET }, 'deny', 'unsupported', `Upgrade: ${String(req.headers.upgrade ?? '').slice(0, 40)}`);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => onClientError(err, socket));
  server.on('error', (err) => log?.error({ err }, 'egress proxy: server error'));

  function track(set: Set<net.Socket>, s: net.Socket): void {
    set.add(s);
    s.once('close', () => set.delete(s));
  }

  /** Client connections held, relayed tunnels included (their Node sockets are gone). */
  function held(): number {
    return clients.size + relays.size;
  }

  function reportCap(d: CapDecision): void {
    refusedInBurst = d.refused;
    if (!d.report) return;
    const max = limits.maxConnections;
    events.limit(max, d.report);
    if (d.report.state === 'reached') {
      log?.warn({ sandbox, maxConnections: max }, `egress proxy: the sandbox holds ${d.report.open} connections, its limit (network.limits.maxConnections); refusing more until some close`);
    } else {
      log?.info({ sandbox, maxConnections: max, refused: d.report.refused }, 'egress proxy: below the connection limit again');
    }
  }

  function released(): void {
    if (refusedInBurst > 0) reportCap(releaseConnection(held(), limits.maxConnections, refusedInBurst));
  }

  /** Over the cap: a 503 the client can read, without reading its request; the socket goes soon after. */
  function refuseOverCap(socket: net.Socket): void {
    socket.on('error', () => socket.destroy());
    if (refusing >= MAX_REFUSING) {
      socket.destroy();
      return;
    }
    refusing++;
    socket.once('close', () => refusing--);
    // Read and drop what the client sends: unread bytes at close would turn the FIN into a reset
    // that can discard the 503 before the client reads it.
    socket.resume();
    const detail = `this sandbox already holds ${limits.maxConnections} connections through the egress proxy (network.limits.maxConnections); close some, or raise the limit in the profile`;
    refuseRaw(socket, 503, 'too-many-connections', `clawjail: ${detail}\n`, 1_000);
  }

  /**
   * Starts (or restarts) the time a client has to send complete request headers: at accept, and
   * when the last response on a kept-alive connection is out.
   */
  function armHeaderDeadline(socket: net.Socket, firstRequest: boolean): void {
    let st = clientState.get(socket);
    if (!st) {
      st = { deadline: undefined, answering: 0 };
      clientState.set(socket, st);
      const own = st;
      socket.once('close', () => clearTimeout(own.deadline));
    }
    clearTimeout(st.deadline);
    const bytesAtArm = socket.bytesRead;
    st.deadline = setTimeout(() => {
      const state = clientState.get(socket);
      if (state) state.deadline = undefined;
      // Already answered and closing (a parse error got its 400 meanwhile).
      if (socket.destroyed || !socket.writable) return;
      if (headerTimeoutAction(firstRequest, socket.bytesRead - bytesAtArm) === 'close') {
        socket.destroy();
        return;
      }
      const text = `request headers not complete within ${limits.headersTimeoutMs} ms`;
      events.decision({ id: events.connId(), via: 'http', target: NO_TARGET }, 'deny', 'header-timeout', text);
      refuseRaw(socket, 408, 'header-timeout', `clawjail: ${text}\n`);
    }, limits.headersTimeoutMs);
  }

  function disarm(socket: net.Socket): void {
    const st = clientState.get(socket);
    if (st) {
      clearTimeout(st.deadline);
      st.deadline = undefined;
    }
  }

  /** A request's headers are in: no deadline until its answer (and any pipelined one's) is out. */
  function requestStarted(socket: net.Socket, res: http.ServerResponse): void {
    const st = clientState.get(socket);
    if (!st) return;
    disarm(socket);
    st.answering++;
    res.once('close', () => {
      // Node has already ended the socket when the connection is not kept alive.
      if (--st.answering === 0 && socket.writable && !socket.destroyed) armHeaderDeadline(socket, false);
    });
  }

  async function authorize(conn: ConnRecord, signal: AbortSignal): Promise<Authorized | Refused> {
    const base: EgressRequest = { host: conn.target.host, port: conn.target.port };
    if (conn.method !== undefined) {
      base.method = conn.method;
      if (conn.path !== undefined) base.path = conn.path;
    }
    const refuse = (status: number, reason: EgressRefusalReason, detail: string, d?: EgressDecision): Refused => {
      events.decision(conn, 'deny', reason, detail, d?.rule ? { rule: d.rule } : {});
      return { ok: false, status, reason, detail };
    };
    let decision = matchEgress(policy, base);
    let approved = false;
    if (decision.action === 'ask') {
      if (!approvals) return refuse(403, 'not-allowlisted', `${decision.detail} (approvals are on but nobody can answer)`, decision);
      events.decision(conn, 'hold', 'not-allowlisted', `${decision.detail}; waiting up to ${approvals.timeoutMs} ms for approval`);
      const outcome = await approvals.request({ host: base.host, port: base.port, via: conn.via, ...(base.method ? { method: base.method, path: base.path ?? '/' } : {}) }, signal);
      if (outcome.verdict === 'deny') {
        if (outcome.reason === 'approval-timeout') return refuse(403, 'approval-timeout', `no answer within ${approvals.timeoutMs} ms`);
        if (outcome.reason === 'approvals-full') return refuse(403, 'not-allowlisted', `${decision.detail} (too many requests already waiting for approval)`);
        return refuse(403, 'denied', 'denied by the operator');
      }
      approved = true;
      // The policy may have changed while waiting (a deny rule, an "always" rule).
      decision = matchEgress(policy, { ...base, approved });
    }
    if (decision.action !== 'allow') return refuse(403, decision.reason as EgressRefusalReason, decision.detail, decision);

    let addresses: string[];
    if (conn.target.hostIsIp) {
      addresses = [conn.target.host];
    } else {
      try {
        const found = await withTimeout(resolve(conn.target.host), limits.resolveTimeoutMs, 'DNS lookup timed out');
        addresses = found.map((a) => parseIp(a.address)).flatMap((ip) => (ip ? [formatIp(ip)] : []));
      } catch (err) {
        return refuse(502, 'resolve-failed', `cannot resolve ${conn.target.host}: ${errText(err)}`);
      }
      if (addresses.length === 0) return refuse(502, 'resolve-failed', `${conn.target.host} has no addresses`);
    }
    const allowed: string[] = [];
    let allow: EgressDecision | undefined;
    let refusal: EgressDecision | undefined;
    for (const ip of addresses) {
      const d = matchEgress(policy, { ...base, ip, approved });
      if (d.action === 'allow') {
        allowed.push(ip);
        allow ??= d;
      } else {
        refusal ??= d;
      }
    }
    if (!allow) {
      const d = refusal as EgressDecision;
      return refuse(403, d.reason as EgressRefusalReason, d.detail, d);
    }
    events.decision(conn, 'allow', allow.reason, allow.detail, { ...(allow.rule ? { rule: allow.rule } : {}), ip: allowed[0], ...(allow.ipClass ? { ipClass: allow.ipClass } : {}) });
    return { ok: true, addresses: allowed, decision: allow };
  }

  /** Tries each checked address in turn; never looks the name up again. */
  async function connectFirst(addresses: string[], port: number, reader?: UpstreamReader): Promise<{ socket: net.Socket; ip: string }> {
    let last: unknown;
    for (const ip of addresses) {
      if (closing.signal.aborted) break;
      try {
        const socket = await connectOne(ip, port, reader);
        return { socket, ip };
      } catch (err) {
        last = err;
      }
    }
    throw last ?? new Error('proxy is closing');
  }

  function connectOne(ip: string, port: number, reader?: UpstreamReader): Promise<net.Socket> {
    return new Promise((resolveConnect, reject) => {
      // A tunnel's upstream may half-close while the client still sends (the relay passes that
      // on too): Node must not end the writing side by itself when the reading side ends.
      const socket = net.connect({ host: ip, port, noDelay: true, ...(reader ? { onread: reader.onread, allowHalfOpen: true } : {}) });
      track(upstreams, socket);
      const timer = setTimeout(() => socket.destroy(Object.assign(new Error(`connect to ${ip}:${port} timed out`), { code: 'ETIMEDOUT' })), limits.connectTimeoutMs);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(err);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        resolveConnect(socket);
      });
    });
  }

  /** Aborts when the client goes away or the proxy closes; dispose() before the socket is reused. */
  function watchClient(socket: net.Socket): { signal: AbortSignal; dispose(): void } {
    const ac = new AbortController();
    const onClose = (): void => ac.abort();
    socket.once('close', onClose);
    closing.signal.addEventListener('abort', onClose, { once: true });
    return {
      signal: ac.signal,
      dispose() {
        socket.removeListener('close', onClose);
        closing.signal.removeEventListener('abort', onClose);
      },
    };
  }

  async function authorizeWhileConnected(conn: ConnRecord, socket: net.Socket): Promise<Authorized | Refused> {
    const watch = watchClient(socket);
    // Waiting for an approval is bounded by its own timeout, which may be the longer one.
    socket.setTimeout(0);
    try {
      return await authorize(conn, watch.signal);
    } finally {
      watch.dispose();
      if (!socket.destroyed) socket.setTimeout(limits.idleTimeoutMs);
    }
  }

  async function onConnect(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    const started = performance.now();
    socket.on('error', () => socket.destroy());
    socket.setTimeout(limits.idleTimeoutMs, () => socket.destroy());
    const target = parseConnectTarget(req.url ?? '');
    const conn: ConnRecord = { id: events.connId(), via: 'connect', target: target ?? NO_TARGET };
    if (!target) {
      const detail = `bad CONNECT target ${JSON.stringify((req.url ?? '').slice(0, 100))}; expected host:port`;
      events.decision(conn, 'deny', 'malformed', detail);
      refuseRaw(socket, 400, 'malformed', `clawjail: ${detail}\n`);
      return;
    }
    const handler = local.get(target.host);
    if (handler && !target.hostIsIp && TLS_PORTS.has(target.port)) {
      // The local services speak plain HTTP: the traffic never leaves this machine, so TLS would
      // add nothing but a certificate the sandbox would have to trust. Say so instead of failing
      // the client's handshake with an unreadable error.
      const detail = `${target.host} is served by clawjail in plain HTTP only: use http://${target.host}/ (the request never leaves this machine)`;
      events.decision(conn, 'deny', 'unsupported', detail);
      refuseRaw(socket, 403, 'unsupported', `clawjail: ${detail}\n`);
      return;
    }
    if (handler && !target.hostIsIp) {
      events.decision(conn, 'allow', 'local', `${target.host} is served by the supervisor`);
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) socket.unshift(head);
      armHeaderDeadline(socket, true);
      handler.server.emit('connection', socket);
      return;
    }
    // Hold what the client sends before the 200 (some clients pipeline their ClientHello), and
    // notice a client that gives up: without a reader, a half-open socket would linger.
    const early: Buffer[] = head.length > 0 ? [head] : [];
    let earlyBytes = head.length;
    const onEarly = (chunk: Buffer): void => {
      early.push(chunk);
      earlyBytes += chunk.length;
      if (earlyBytes > MAX_CLIENT_HELLO_BYTES + 64) socket.destroy();
    };
    const onEarlyEnd = (): void => {
      if (!socket.writableEnded) socket.destroy();
    };
    socket.on('data', onEarly);
    socket.once('end', onEarlyEnd);
    const auth = await authorizeWhileConnected(conn, socket);
    if (socket.destroyed) return;
    if (!auth.ok) {
      refuseRaw(socket, auth.status, auth.reason, refusalBody(target, auth));
      return;
    }
    let upstream: { socket: net.Socket; ip: string };
    const reader = createUpstreamReader(readPool);
    try {
      upstream = await connectFirst(auth.addresses, target.port, reader);
    } catch (err) {
      const detail = `cannot connect to ${auth.addresses.join(', ')} port ${target.port}: ${errText(err)}`;
      events.decision(conn, 'deny', 'upstream-unreachable', detail, { ip: auth.addresses[0] });
      refuseRaw(socket, 502, 'upstream-unreachable', refusalBody(target, { status: 502, reason: 'upstream-unreachable', detail }));
      return;
    }
    if (socket.destroyed) {
      upstream.socket.destroy();
      return;
    }
    socket.removeListener('data', onEarly);
    socket.removeListener('end', onEarlyEnd);
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    splice(conn, socket, upstream.socket, reader, upstream.ip, early.length === 1 ? (early[0] as Buffer) : Buffer.concat(early), auth.decision.allowMissingSni === true, started);
  }

  /**
   * Joins client and upstream. Upstream → client flows at once (some protocols speak first);
   * client → upstream waits until the first client bytes pass the SNI check. Then the tunnel goes
   * to the native relay when there is one (see handOver), else client → upstream is piped too.
   */
  function splice(conn: ConnRecord, client: net.Socket, upstream: net.Socket, reader: UpstreamReader, ip: string, head: Buffer, allowMissingSni: boolean, started: number): void {
    let closed = 0;
    let error: string | undefined;
    // Set once the relay owns the tunnel: destroying the Node sockets then is not the tunnel's end.
    let relayed = false;
    const onClose = (): void => {
      if (++closed === 2) events.close(conn, ip, upstream.bytesRead, upstream.bytesWritten, started, error);
    };
    client.once('close', (hadError) => {
      if (relayed) return;
      onClose();
      if (hadError) upstream.destroy();
      else upstream.destroySoon();
    });
    upstream.once('close', (hadError) => {
      if (relayed) return;
      onClose();
      if (hadError) client.destroy();
      else client.destroySoon();
    });
    upstream.on('error', (err) => {
      error = errText(err);
      client.destroy();
    });
    client.on('error', () => upstream.destroy());
    client.setTimeout(limits.idleTimeoutMs, () => client.destroy());
    upstream.setTimeout(limits.idleTimeoutMs, () => upstream.destroy());
    upstream.once('end', () => client.end());
    reader.attach(client, upstream);

    /**
     * Hands the checked tunnel to the native relay. Node must neither read from nor close the
     * sockets afterwards, and no byte may be lost or reordered on the way:
     * 1. Node stops reading both sockets, for good: readStop() on the handles with their `reading`
     *    flag set, so no pause/resume/pipe/drain in Node can start reading again. Whatever
     *    arrives from now on waits in the kernel's socket buffers for the relay.
     * 2. The first client bytes (checked) go to the upstream through Node like everything Node
     *    already read; the relay starts only when both sockets' Node write queues are empty (a
     *    write callback), so Node's bytes reach the wire before any byte of the relay's.
     * 3. relay() works on its own close-on-exec dup()s of the two fds. Then destroying the Node
     *    sockets closes only Node's descriptors: a TCP connection ends when its last descriptor
     *    closes (Node's destroy() neither shuts down nor resets), and libuv removes its fd from
     *    epoll before closing it, so the relay's own registration of the dup is untouched.
     * If the sockets broke meanwhile, the JS handlers above already ended and reported the
     * tunnel; if relay() itself fails (e.g. EMFILE), Node's reading resumes and JS carries on.
     */
    const handOver = (first: Buffer, fn: RelayFn, ch: StreamHandle, uh: StreamHandle): void => {
      ch.readStop();
      uh.readStop();
      // Node restarts reading only when it believes a handle is not reading.
      ch.reading = true;
      uh.reading = true;
      reader.stop();
      client.pause();
      let pending = first;
      while (client.readableLength > 0) {
        const more = client.read() as Buffer | null;
        if (!more) break;
        pending = Buffer.concat([pending, more]);
      }
      upstream.write(pending);
      void Promise.all([flushed(client), flushed(upstream)]).then(() => {
        if (client.destroyed || upstream.destroyed) return;
        // Counts so far (Node's, exact now that its queues are empty); the relay adds its own.
        const bytesIn = upstream.bytesRead;
        const bytesOut = upstream.bytesWritten;
        const entry: { handle?: NativeRelay } = {};
        const onDone = (r: NativeRelayResult): void => {
          if (entry.handle) relays.delete(entry.handle);
          released();
          // As in the JS path, only the destination's errors are reported (the client's own
          // resets, idle timeouts and closing the proxy end a tunnel without one).
          events.close(conn, ip, bytesIn + r.bytesBtoA, bytesOut + r.bytesAtoB, started, r.errorSide === 'b' ? r.error : undefined);
        };
        try {
          entry.handle = fn(ch.fd as number, uh.fd as number, onDone, { idleTimeoutMs: limits.idleTimeoutMs, engine: relayEngine });
        } catch (err) {
          log?.warn({ err }, 'egress proxy: native relay unavailable for a tunnel; piping it in JS');
          // The client's stream still waits for the data of its last read request: restart the
          // handle itself. The upstream's reader resumes it now, or on the client's drain.
          ch.readStart();
          uh.reading = false;
          reader.restart();
          client.pipe(upstream);
          return;
        }
        relayed = true;
        relays.add(entry.handle);
        client.destroy();
        upstream.destroy();
      });
    };

    const chunks: Buffer[] = [];
    let buffered = 0;
    const inspect = (): void => {
      const buf = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, buffered);
      const scan = scanClientHello(buf);
      if (scan.kind === 'need-more') return;
      client.removeListener('data', onData);
      client.removeListener('end', onEndBeforeCheck);
      const verdict = checkTunnelStart(scan, { host: conn.target.host, hostIsIp: conn.target.hostIsIp, port: conn.target.port, allowMissingSni });
      if (!verdict.ok) {
        error = verdict.reason;
        events.decision(conn, 'deny', verdict.reason, verdict.detail, { ip });
        reader.detach();
        upstream.destroy();
        if (scan.kind === 'client-hello' || scan.kind === 'malformed') client.end(TLS_ALERT_ACCESS_DENIED);
        else client.end();
        client.resume();
        return;
      }
      const ch = streamHandle(client);
      const uh = streamHandle(upstream);
      if (relay && ch && uh) {
        handOver(buf, relay, ch, uh);
        return;
      }
      upstream.write(buf);
      client.pipe(upstream);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      buffered += chunk.length;
      inspect();
    };
    // The client stopped sending before its first bytes could be checked: nothing to forward.
    const onEndBeforeCheck = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.once('end', onEndBeforeCheck);
    client.on('data', onData);
    if (head.length > 0) onData(head);
  }

  async function onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = performance.now();
    const target = parseProxyRequestUrl(req.url ?? '');
    const method = req.method ?? 'GET';
    const conn: ConnRecord = { id: events.connId(), via: 'http', target: target ?? NO_TARGET, method };
    if (!target) {
      const origin = (req.url ?? '').startsWith('/');
      const detail = origin
        ? `this is the clawjail egress proxy: send requests as absolute URIs (GET http://host/path) or use CONNECT; set HTTP_PROXY/HTTPS_PROXY to reach the network`
        : `bad request target ${JSON.stringify((req.url ?? '').slice(0, 100))}; a proxy request needs an absolute http:// URL (https:// goes through CONNECT)`;
      events.decision(conn, 'deny', 'malformed', detail);
      // A client that gets the protocol wrong is not worth keeping a connection open for.
      res.shouldKeepAlive = false;
      respond(res, 400, 'malformed', `clawjail: ${detail}\n`);
      return;
    }
    conn.path = target.pathname;
    const handler = local.get(target.host);
    if (handler && !target.hostIsIp) {
      events.decision(conn, 'allow', 'local', `${target.host} is served by the supervisor`);
      req.url = target.requestPath;
      handler.listener(req, res);
      return;
    }
    const auth = await authorizeWhileConnected(conn, req.socket);
    if (res.destroyed || req.socket.destroyed) return;
    if (!auth.ok) {
      respond(res, auth.status, auth.reason, refusalBody(target, auth));
      return;
    }
    let upstream: { socket: net.Socket; ip: string };
    try {
      upstream = await connectFirst(auth.addresses, target.port);
    } catch (err) {
      const detail = `cannot connect to ${auth.addresses.join(', ')} port ${target.port}: ${errText(err)}`;
      events.decision(conn, 'deny', 'upstream-unreachable', detail, { ip: auth.addresses[0] });
      respond(res, 502, 'upstream-unreachable', refusalBody(target, { status: 502, reason: 'upstream-unreachable', detail }));
      return;
    }
    const up = upstream.socket;
    let error: string | undefined;
    up.setTimeout(limits.idleTimeoutMs, () => up.destroy(new Error('idle timeout')));
    up.once('close', () => events.close(conn, upstream.ip, up.bytesRead, up.bytesWritten, started, error));
    const upReq = http.request({
      createConnection: () => up,
      method,
      path: target.requestPath,
      headers: forwardHeaders(req.rawHeaders, target.hostHeader),
    });
    upReq.on('response', (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, stripHopByHop(upRes.rawHeaders));
      upRes.pipe(res);
      upRes.on('error', () => res.destroy());
    });
    upReq.on('error', (err) => {
      error = errText(err);
      if (!res.headersSent) respond(res, 502, 'upstream-unreachable', refusalBody(target, { status: 502, reason: 'upstream-unreachable', detail: error }));
      else res.destroy();
    });
    res.on('close', () => {
      if (!res.writableFinished) upReq.destroy();
    });
    req.pipe(upReq);
  }

  function onClientError(err: NodeJS.ErrnoException, socket: net.Socket): void {
    disarm(socket);
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason, text]: [number, EgressRefusalReason, string] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'headers-too-large', `request headers larger than ${limits.maxHeaderBytes} bytes`]
        : [400, 'malformed', `malformed request (${err.code ?? 'parse error'})`];
    events.decision({ id: events.connId(), via: 'http', target: NO_TARGET }, 'deny', reason, text);
    refuseRaw(socket, status, reason, `clawjail: ${text}\n`);
  }

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
    const d = admitConnection(held(), limits.maxConnections, refusedInBurst);
    reportCap(d);
    if (!d.admit) {
      refuseOverCap(socket);
      return;
    }
    track(clients, socket);
    socket.once('close', released);
    armHeaderDeadline(socket, true);
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
    stats() {
      return { clients: clients.size + relays.size, upstreams: upstreams.size + relays.size, relayed: relays.size };
    },
    close() {
      closing.abort();
      // cancel() closes a relay's sockets and reports its close event before it returns.
      for (const r of [...relays]) r.cancel();
      return new Promise((resolveClose) => {
        if (front) front.close(() => resolveClose());
        else resolveClose();
        for (const s of clients) s.destroy();
        for (const s of upstreams) s.destroy();
        for (const { server: ls } of local.values()) ls.closeAllConnections();
      });
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]);
}
