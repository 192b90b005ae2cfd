import type http from 'node:http';
import type net from 'node:net';
import type { Logger } from 'pino';
import type { NativeRelay } from '../../native.js';
import { NO_TARGET, type EgressAudit } from './audit-events.js';
import type { EgressRefusalReason } from './authorize.js';
import { admitConnection, headerTimeoutAction, releaseConnection, type CapDecision, type EgressLimits } from './limits.js';
import { refuseRaw } from './responses.js';

/**
 * The accept path: every client socket the proxy holds, the connection cap (limits.ts decides,
 * this module counts and answers), the per-socket header deadline that replaces Node's own
 * (the proxy's HTTP server never listens), and the upstream sockets, for stats() and close().
 */

/** Refused over-cap sockets kept open at once for their 503 to be read; beyond, they are just closed. */
const MAX_REFUSING = 64;

/** Per client socket: its header deadline, and the requests on it not yet answered. */
interface ClientState {
  deadline: NodeJS.Timeout | undefined;
  answering: number;
}

export interface Connections {
  /**
   * Counts a new client socket against the cap: true when it is held (and its header deadline
   * runs), false when it was refused over the cap (it gets a 503 and goes soon after).
   */
  admit(socket: net.Socket): boolean;
  /**
   * Starts (or restarts) the time a client has to send complete request headers: at accept, and
   * when the last response on a kept-alive connection is out.
   */
  armHeaderDeadline(socket: net.Socket, firstRequest: boolean): void;
  disarm(socket: net.Socket): void;
  /** A request's headers are in: no deadline until its answer (and any pipelined one's) is out. */
  requestStarted(socket: net.Socket, res: http.ServerResponse): void;
  /** Node's HTTP parser refused what the client sent. */
  clientError(err: NodeJS.ErrnoException, socket: net.Socket): void;
  /** A held connection is gone without a 'close' of its own socket (a relayed tunnel ended). */
  released(): void;
  trackUpstream(socket: net.Socket): void;
  /** Tunnels carried by the native relay: their Node sockets are gone, the relay holds the fds. */
  readonly relays: Set<NativeRelay>;
  stats(): { clients: number; upstreams: number; relayed: number };
  /** Ends every relayed tunnel and destroys every socket. */
  destroyAll(): void;
}

/** How a request Node's parser refused is answered: not at all when the client is gone. Pure. */
export function clientErrorAnswer(code: string | undefined, maxHeaderBytes: number): 'close' | { status: 400 | 431; reason: EgressRefusalReason; text: string } {
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'close';
  return code === 'HPE_HEADER_OVERFLOW'
    ? { status: 431, reason: 'headers-too-large', text: `request headers larger than ${maxHeaderBytes} bytes` }
    : { status: 400, reason: 'malformed', text: `malformed request (${code ?? 'parse error'})` };
}

export function createConnections(opts: { limits: EgressLimits; audit: EgressAudit; sandbox: string; log: Logger | undefined }): Connections {
  const { limits, audit, sandbox, log } = opts;
  const clients = new Set<net.Socket>();
  const upstreams = new Set<net.Socket>();
  const relays = new Set<NativeRelay>();
  const clientState = new WeakMap<net.Socket, ClientState>();
  /** Connections refused in the current burst over maxConnections (0: no burst). */
  let refusedInBurst = 0;
  let refusing = 0;

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
    audit.limit(max, d.report);
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
      audit.decision({ id: audit.connId(), via: 'http', target: NO_TARGET }, 'deny', 'header-timeout', text);
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

  return {
    relays,
    admit(socket) {
      const d = admitConnection(held(), limits.maxConnections, refusedInBurst);
      reportCap(d);
      if (!d.admit) {
        refuseOverCap(socket);
        return false;
      }
      track(clients, socket);
      socket.once('close', released);
      armHeaderDeadline(socket, true);
      return true;
    },
    armHeaderDeadline,
    disarm,
    requestStarted(socket, res) {
      const st = clientState.get(socket);
      if (!st) return;
      disarm(socket);
      st.answering++;
      res.once('close', () => {
        // Node has already ended the socket when the connection is not kept alive.
        if (--st.answering === 0 && socket.writable && !socket.destroyed) armHeaderDeadline(socket, false);
      });
    },
    clientError(err, socket) {
      disarm(socket);
      const answer = clientErrorAnswer(err.code, limits.maxHeaderBytes);
      if (answer === 'close' || !socket.writable) {
        socket.destroy();
        return;
      }
      audit.decision({ id: audit.connId(), via: 'http', target: NO_TARGET }, 'deny', answer.reason, answer.text);
      refuseRaw(socket, answer.status, answer.reason, `clawjail: ${answer.text}\n`);
    },
    released,
    trackUpstream(socket) {
      track(upstreams, socket);
    },
    stats() {
      return { clients: clients.size + relays.size, upstreams: upstreams.size + relays.size, relayed: relays.size };
    },
    destroyAll() {
      // cancel() closes a relay's sockets and reports its close event before it returns.
      for (const r of [...relays]) r.cancel();
      for (const s of clients) s.destroy();
      for (const s of upstreams) s.destroy();
    },
  };
}
