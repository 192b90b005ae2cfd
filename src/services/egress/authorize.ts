import type net from 'node:net';
import type { AllowRule, NetworkConfig } from '../../profile/network.js';
import type { ApprovalBroker, ApprovalOutcome, ApprovalRequest } from './approvals.js';
import { errText, type ConnRecord, type EgressAudit } from './audit-events.js';
import { formatIp, parseIp } from '../../policy/ip.js';
import { matchEgress, type EgressDecision, type EgressReason, type EgressRequest } from './policy.js';

/**
 * May this connection go out, and to which addresses: match the policy on the name (before any
 * DNS query) → hold for approval → resolve → match again on every address. The decisions are the
 * pure functions below; authorize() runs them in order with its I/O (the resolver, the approval
 * broker, the audit sink) passed in.
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

export type Authorized = { ok: true; addresses: string[]; decision: EgressDecision };
export type Refused = { ok: false; status: number; reason: EgressRefusalReason; detail: string };
export type Authorization = Authorized | Refused;

/** What the policy is asked about a connection. Pure. */
export function egressRequestOf(conn: ConnRecord): EgressRequest {
  const req: EgressRequest = { host: conn.target.host, port: conn.target.port };
  if (conn.method !== undefined) {
    req.method = conn.method;
    if (conn.path !== undefined) req.path = conn.path;
  }
  return req;
}

/** What the operator is asked about a connection. Pure. */
export function approvalRequestOf(req: EgressRequest, via: ConnRecord['via']): ApprovalRequest {
  return { host: req.host, port: req.port, via, ...(req.method ? { method: req.method, path: req.path ?? '/' } : {}) };
}

/**
 * The refusal an approval request ended in, or undefined when it was approved. `askDetail`: why
 * the policy asked. Pure.
 */
export function approvalRefusal(outcome: ApprovalOutcome, askDetail: string, timeoutMs: number): { reason: EgressRefusalReason; detail: string } | undefined {
  if (outcome.verdict !== 'deny') return undefined;
  if (outcome.reason === 'approval-timeout') return { reason: 'approval-timeout', detail: `no answer within ${timeoutMs} ms` };
  if (outcome.reason === 'approvals-full') return { reason: 'not-allowlisted', detail: `${askDetail} (too many requests already waiting for approval)` };
  return { reason: 'denied', detail: 'denied by the operator' };
}

/** The resolver's answer as canonical IP text; anything unparseable is dropped. Pure. */
export function canonicalAddresses(found: readonly { address: string }[]): string[] {
  return found.map((a) => parseIp(a.address)).flatMap((ip) => (ip ? [formatIp(ip)] : []));
}

/**
 * The policy on each address a name resolved to: those allowed, in order, with the first allow
 * decision; or the first refusal when none is. Pure.
 */
export function checkAddresses(
  policy: NetworkConfig,
  req: EgressRequest,
  addresses: readonly string[],
  approved: boolean,
): { ok: true; allowed: string[]; decision: EgressDecision } | { ok: false; decision: EgressDecision } {
  const allowed: string[] = [];
  let allow: EgressDecision | undefined;
  let refusal: EgressDecision | undefined;
  for (const ip of addresses) {
    const d = matchEgress(policy, { ...req, ip, approved });
    if (d.action === 'allow') {
      allowed.push(ip);
      allow ??= d;
    } else {
      refusal ??= d;
    }
  }
  return allow ? { ok: true, allowed, decision: allow } : { ok: false, decision: refusal as EgressDecision };
}

/**
 * The running policy with a rule the operator approved "always": unchanged (the same object) when
 * a host-wide allow rule on the same host already covers every port of it. Pure.
 */
export function withApprovedRule(policy: NetworkConfig, rule: AllowRule): NetworkConfig {
  const host = rule.host.toLowerCase();
  if (policy.allow.some((r) => r.host.toLowerCase() === host && !r.methods && !r.paths && rule.ports.every((p) => r.ports.includes(p)))) return policy;
  return { ...policy, allow: [...policy.allow, rule] };
}

export interface AuthorizeDeps {
  /** The policy now: it may change while a request waits (an approval, an "always" rule). */
  policy(): NetworkConfig;
  /** Without a broker, destinations no rule allows are refused at once even if approvals are on. */
  approvals: ApprovalBroker | undefined;
  resolve: Resolver;
  resolveTimeoutMs: number;
  audit: Pick<EgressAudit, 'decision'>;
}

/** Emits the connection's decision events (hold, then allow or deny) on the way. */
export async function authorize(deps: AuthorizeDeps, conn: ConnRecord, signal: AbortSignal): Promise<Authorization> {
  const { approvals, audit } = deps;
  const base = egressRequestOf(conn);
  const refuse = (status: number, reason: EgressRefusalReason, detail: string, d?: EgressDecision): Refused => {
    audit.decision(conn, 'deny', reason, detail, d?.rule ? { rule: d.rule } : {});
    return { ok: false, status, reason, detail };
  };
  let decision = matchEgress(deps.policy(), base);
  let approved = false;
  if (decision.action === 'ask') {
    if (!approvals) return refuse(403, 'not-allowlisted', `${decision.detail} (approvals are on but nobody can answer)`, decision);
    audit.decision(conn, 'hold', 'not-allowlisted', `${decision.detail}; waiting up to ${approvals.timeoutMs} ms for approval`);
    const outcome = await approvals.request(approvalRequestOf(base, conn.via), signal);
    const refusal = approvalRefusal(outcome, decision.detail, approvals.timeoutMs);
    if (refusal) return refuse(403, refusal.reason, refusal.detail);
    approved = true;
    // The policy may have changed while waiting (a deny rule, an "always" rule).
    decision = matchEgress(deps.policy(), { ...base, approved });
  }
  if (decision.action !== 'allow') return refuse(403, decision.reason as EgressRefusalReason, decision.detail, decision);

  let addresses: string[];
  if (conn.target.hostIsIp) {
    addresses = [conn.target.host];
  } else {
    try {
      addresses = canonicalAddresses(await withTimeout(deps.resolve(conn.target.host), deps.resolveTimeoutMs, 'DNS lookup timed out'));
    } catch (err) {
      return refuse(502, 'resolve-failed', `cannot resolve ${conn.target.host}: ${errText(err)}`);
    }
    if (addresses.length === 0) return refuse(502, 'resolve-failed', `${conn.target.host} has no addresses`);
  }
  const checked = checkAddresses(deps.policy(), base, addresses, approved);
  if (!checked.ok) return refuse(403, checked.decision.reason as EgressRefusalReason, checked.decision.detail, checked.decision);
  const allow = checked.decision;
  audit.decision(conn, 'allow', allow.reason, allow.detail, { ...(allow.rule ? { rule: allow.rule } : {}), ip: checked.allowed[0], ...(allow.ipClass ? { ipClass: allow.ipClass } : {}) });
  return { ok: true, addresses: checked.allowed, decision: allow };
}

/**
 * authorize() for a client still connected: it stops waiting when the client goes away or the
 * proxy closes, and the client's idle timeout is off meanwhile (waiting for an approval is
 * bounded by its own timeout, which may be the longer one).
 */
export async function authorizeWhileConnected(deps: AuthorizeDeps, closing: AbortSignal, idleTimeoutMs: number, conn: ConnRecord, socket: net.Socket): Promise<Authorization> {
  const watch = watchClient(socket, closing);
  socket.setTimeout(0);
  try {
    return await authorize(deps, conn, watch.signal);
  } finally {
    watch.dispose();
    if (!socket.destroyed) socket.setTimeout(idleTimeoutMs);
  }
}

/** Aborts when the client goes away or the proxy closes; dispose() before the socket is reused. */
function watchClient(socket: net.Socket, closing: AbortSignal): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const onClose = (): void => ac.abort();
  socket.once('close', onClose);
  closing.addEventListener('abort', onClose, { once: true });
  return {
    signal: ac.signal,
    dispose() {
      socket.removeListener('close', onClose);
      closing.removeEventListener('abort', onClose);
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
