import type http from 'node:http';
import type net from 'node:net';
import type { Logger } from 'pino';
import type { ConnRecord, EgressAudit } from './audit-events.js';
import type { Authorization } from './authorize.js';
import type { Connections } from './connections.js';
import type { EgressLimits } from './limits.js';
import type { Dialer } from './upstream.js';

/** A host served in-process (`inference.local`): its listener, and the unbound HTTP server that serves CONNECTs to it. */
export interface LocalService {
  listener: http.RequestListener;
  server: http.Server;
}

/** What the request handlers (tunnel.ts, forward.ts) share with the proxy that created them. */
export interface ProxyContext {
  readonly limits: EgressLimits;
  readonly log: Logger | undefined;
  readonly audit: EgressAudit;
  readonly connections: Connections;
  readonly local: ReadonlyMap<string, LocalService>;
  /** authorizeWhileConnected() (authorize.ts) with the proxy's policy, broker and resolver. */
  authorize(conn: ConnRecord, socket: net.Socket): Promise<Authorization>;
  readonly dial: Dialer;
}
