import { randomBytes } from 'node:crypto';
import { ClawjailError } from '../../errors.js';
import type { AllowRule } from '../../profile/network.js';

/**
 * Pending approvals for destinations no rule allows. A request waits until an operator answers
 * (control socket, or the library's `onApproval`) or the timeout denies it. Requests for the same
 * host:port while one is pending join it: one entry, one answer for all of them.
 */

export type ApprovalVerdict = 'allow' | 'deny' | 'always';

export interface ApprovalRequest {
  host: string;
  port: number;
  via: 'connect' | 'http';
  method?: string;
  path?: string;
}

export interface PendingApproval extends ApprovalRequest {
  id: string;
  /** How many requests are waiting on this entry (and have waited, if they gave up). */
  requests: number;
  createdAt: string;
  expiresAt: string;
}

export interface ApprovalOutcome {
  verdict: 'allow' | 'deny';
  reason: 'approved' | 'denied' | 'approval-timeout' | 'approvals-full';
  /** Set when the operator chose "always": the rule to add to the running policy. */
  rule?: AllowRule;
}

export interface DecideResult {
  id: string;
  host: string;
  port: number;
  verdict: ApprovalVerdict;
  /** Where an "always" rule was written, when it was. */
  persistedTo?: string;
  persistError?: string;
}

export interface ApprovalBroker {
  readonly timeoutMs: number;
  /** Waits for an answer; `signal` lets a request that went away stop waiting (the entry stays). */
  request(req: ApprovalRequest, signal?: AbortSignal): Promise<ApprovalOutcome>;
  list(): PendingApproval[];
  /** Answers a pending entry. Throws ERR_CLAWJAIL_NOT_FOUND for an unknown or expired id. */
  decide(id: string, verdict: ApprovalVerdict): Promise<DecideResult>;
  /** Called with each rule approved "always", after it is persisted (the proxy adds it live). */
  onRule(listener: (rule: AllowRule) => void): void;
  /**
   * Denies everything pending, and resolves once every "always" rule already decided is written:
   * the supervisor may exit right after, and a rule must not be lost with it.
   */
  close(): Promise<void>;
}

export interface ApprovalBrokerOptions {
  timeoutMs: number;
  /** Asked once per new pending entry; a returned verdict answers it, void leaves it to the control socket. */
  onApproval?: (pending: PendingApproval) => Promise<ApprovalVerdict | void> | ApprovalVerdict | void;
  /** Writes an "always" rule to the profile file. */
  persist?: (rule: AllowRule) => Promise<{ file: string }>;
  /** Distinct destinations held at once; more are refused at once. */
  maxPending?: number;
  onError?: (err: unknown) => void;
}

interface Entry {
  pending: PendingApproval;
  key: string;
  waiters: Set<(o: ApprovalOutcome) => void>;
  timer: NodeJS.Timeout;
}

export function createApprovalBroker(options: ApprovalBrokerOptions): ApprovalBroker {
  const byKey = new Map<string, Entry>();
  const byId = new Map<string, Entry>();
  const ruleListeners: ((rule: AllowRule) => void)[] = [];
  const maxPending = options.maxPending ?? 64;
  /** Rules being written to the profile file. */
  const persisting = new Set<Promise<unknown>>();
  let closed = false;

  const settle = (entry: Entry, outcome: ApprovalOutcome): void => {
    clearTimeout(entry.timer);
    byKey.delete(entry.key);
    byId.delete(entry.pending.id);
    for (const w of entry.waiters) w(outcome);
    entry.waiters.clear();
  };

  const newId = (): string => {
    for (;;) {
      const id = randomBytes(4).toString('hex');
      if (!byId.has(id)) return id;
    }
  };

  const broker: ApprovalBroker = {
    timeoutMs: options.timeoutMs,
    request(req, signal) {
      if (closed) return Promise.resolve({ verdict: 'deny', reason: 'denied' });
      const key = `${req.host}|${req.port}`;
      let entry = byKey.get(key);
      const isNew = !entry;
      if (!entry) {
        if (byKey.size >= maxPending) return Promise.resolve({ verdict: 'deny', reason: 'approvals-full' });
        const now = Date.now();
        const pending: PendingApproval = {
          id: newId(),
          host: req.host,
          port: req.port,
          via: req.via,
          ...(req.method !== undefined ? { method: req.method } : {}),
          ...(req.path !== undefined ? { path: req.path } : {}),
          requests: 0,
          createdAt: new Date(now).toISOString(),
          expiresAt: new Date(now + options.timeoutMs).toISOString(),
        };
        const created: Entry = { pending, key, waiters: new Set(), timer: setTimeout(() => settle(created, { verdict: 'deny', reason: 'approval-timeout' }), options.timeoutMs) };
        created.timer.unref();
        entry = created;
        byKey.set(key, entry);
        byId.set(pending.id, entry);
      }
      entry.pending.requests++;
      if (isNew) askCallback(entry);
      const joined = entry;
      return new Promise<ApprovalOutcome>((resolve) => {
        const waiter = (o: ApprovalOutcome): void => resolve(o);
        joined.waiters.add(waiter);
        signal?.addEventListener(
          'abort',
          () => {
            joined.waiters.delete(waiter);
            resolve({ verdict: 'deny', reason: 'denied' });
          },
          { once: true },
        );
      });
    },
    list() {
      return [...byId.values()].map((e) => ({ ...e.pending }));
    },
    async decide(id, verdict) {
      const entry = byId.get(id);
      if (!entry) {
        throw new ClawjailError('ERR_CLAWJAIL_NOT_FOUND', `no pending approval with id ${id}`, {
          hint: 'it may have been answered or timed out; list the pending ones with `clawjail approvals`',
        });
      }
      const { host, port } = entry.pending;
      const result: DecideResult = { id, host, port, verdict };
      if (verdict === 'deny') {
        settle(entry, { verdict: 'deny', reason: 'denied' });
        return result;
      }
      if (verdict === 'allow') {
        settle(entry, { verdict: 'allow', reason: 'approved' });
        return result;
      }
      const rule: AllowRule = { host, ports: [port], allowMissingSni: false };
      // Answer the waiting requests first: a slow disk must not cost them their connection.
      settle(entry, { verdict: 'allow', reason: 'approved', rule });
      for (const l of ruleListeners) l(rule);
      if (options.persist) {
        const write = options.persist(rule);
        persisting.add(write);
        try {
          result.persistedTo = (await write).file;
        } catch (err) {
          result.persistError = err instanceof Error ? err.message : String(err);
        } finally {
          persisting.delete(write);
        }
      } else {
        result.persistError = 'this sandbox has no profile file to write the rule to; it was added to the running policy only';
      }
      return result;
    },
    onRule(listener) {
      ruleListeners.push(listener);
    },
    async close() {
      closed = true;
      for (const e of [...byId.values()]) settle(e, { verdict: 'deny', reason: 'denied' });
      await Promise.allSettled([...persisting]);
    },
  };

  function askCallback(entry: Entry): void {
    if (!options.onApproval) return;
    const snapshot = { ...entry.pending };
    Promise.resolve()
      .then(() => options.onApproval?.(snapshot))
      .then((verdict) => {
        if (verdict && byId.get(snapshot.id) === entry) return broker.decide(snapshot.id, verdict);
        return undefined;
      })
      .catch((err: unknown) => options.onError?.(err));
  }

  return broker;
}
