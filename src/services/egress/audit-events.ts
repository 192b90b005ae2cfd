import type { AuditEvent, AuditSink } from '../../log.js';
import type { CapDecision } from './limits.js';
import type { Target } from './target.js';

/**
 * The proxy's audit events, built as plain data from a connection record. Pure: the proxy
 * decides when to emit them; these functions only say what they contain.
 */

/** One client request the proxy decides on: a CONNECT tunnel or a forwarded plain-HTTP request. */
export interface ConnRecord {
  id: string;
  via: 'connect' | 'http';
  target: Target;
  method?: string;
  path?: string;
}

export type DecisionVerdict = 'allow' | 'deny' | 'hold';

/** The target of a request refused before it named one (a parse error, a header timeout). */
export const NO_TARGET: Readonly<Target> = Object.freeze({ host: '', hostIsIp: false, port: 0 });

export function decisionEvent(sandbox: string, conn: ConnRecord, decision: DecisionVerdict, reason: string, detail: string, extra: Record<string, unknown> = {}): AuditEvent {
  return {
    kind: 'egress.decision',
    sandbox,
    conn: conn.id,
    via: conn.via,
    host: conn.target.host,
    port: conn.target.port,
    ...(conn.method !== undefined ? { method: conn.method, path: conn.path } : {}),
    decision,
    reason,
    detail,
    ...extra,
  };
}

/** bytesIn/bytesOut: bytes on the upstream connection (HTTP headers included); in = from the destination. */
export function closeEvent(sandbox: string, conn: ConnRecord, ip: string, bytesIn: number, bytesOut: number, durationMs: number, error?: string): AuditEvent {
  return {
    kind: 'egress.close',
    sandbox,
    conn: conn.id,
    via: conn.via,
    host: conn.target.host,
    port: conn.target.port,
    ip,
    bytesIn,
    bytesOut,
    durationMs: Math.round(durationMs),
    ...(error ? { error } : {}),
  };
}

/** The connection cap reached, or cleared again after a burst of refusals. */
export function limitEvent(sandbox: string, max: number, report: NonNullable<CapDecision['report']>): AuditEvent {
  return report.state === 'reached'
    ? { kind: 'egress.limit', sandbox, limit: 'maxConnections', max, state: 'reached', open: report.open }
    : { kind: 'egress.limit', sandbox, limit: 'maxConnections', max, state: 'cleared', refused: report.refused };
}

/** An error as it appears in audit details: its code when it has one. */
export function errText(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}

/** A proxy's audit: connection ids, and the events above sent to its sink. */
export interface EgressAudit {
  connId(): string;
  decision(conn: ConnRecord, decision: DecisionVerdict, reason: string, detail: string, extra?: Record<string, unknown>): void;
  /** `started`: performance.now() when the client's request arrived. */
  close(conn: ConnRecord, ip: string, bytesIn: number, bytesOut: number, started: number, error?: string): void;
  limit(max: number, report: NonNullable<CapDecision['report']>): void;
}

export function createEgressAudit(sink: AuditSink, sandbox: string): EgressAudit {
  let nextId = 0;
  return {
    connId: () => `e${(++nextId).toString(36)}`,
    decision: (conn, decision, reason, detail, extra) => sink.emit(decisionEvent(sandbox, conn, decision, reason, detail, extra)),
    close: (conn, ip, bytesIn, bytesOut, started, error) => sink.emit(closeEvent(sandbox, conn, ip, bytesIn, bytesOut, performance.now() - started, error)),
    limit: (max, report) => sink.emit(limitEvent(sandbox, max, report)),
  };
}
