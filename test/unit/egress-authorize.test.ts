import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/log.js';
import { NetworkSchema, type NetworkConfigInput } from '../../src/profile/network.js';
import type { ApprovalBroker, ApprovalOutcome, ApprovalRequest } from '../../src/services/egress/approvals.js';
import { createEgressAudit, type ConnRecord } from '../../src/services/egress/audit-events.js';
import {
  approvalRefusal,
  approvalRequestOf,
  authorize,
  canonicalAddresses,
  checkAddresses,
  egressRequestOf,
  withApprovedRule,
  type AuthorizeDeps,
  type Resolver,
} from '../../src/services/egress/authorize.js';

const policy = (input: NetworkConfigInput) => NetworkSchema.parse(input);
const tunnel = (host: string, port = 443, hostIsIp = false): ConnRecord => ({ id: 'e1', via: 'connect', target: { host, hostIsIp, port } });

describe('egressRequestOf / approvalRequestOf', () => {
  it('a tunnel asks about host and port only', () => {
    expect(egressRequestOf(tunnel('a.test'))).toEqual({ host: 'a.test', port: 443 });
    expect(approvalRequestOf({ host: 'a.test', port: 443 }, 'connect')).toEqual({ host: 'a.test', port: 443, via: 'connect' });
  });

  it('a forwarded request adds method and path', () => {
    const conn: ConnRecord = { id: 'e2', via: 'http', target: { host: 'a.test', hostIsIp: false, port: 80 }, method: 'GET', path: '/x' };
    expect(egressRequestOf(conn)).toEqual({ host: 'a.test', port: 80, method: 'GET', path: '/x' });
    expect(egressRequestOf({ ...conn, path: undefined })).toEqual({ host: 'a.test', port: 80, method: 'GET' });
    expect(approvalRequestOf({ host: 'a.test', port: 80, method: 'GET' }, 'http')).toEqual({ host: 'a.test', port: 80, via: 'http', method: 'GET', path: '/' });
  });
});

describe('approvalRefusal', () => {
  it.each([
    [{ verdict: 'allow', reason: 'approved' }, undefined],
    [{ verdict: 'deny', reason: 'approval-timeout' }, { reason: 'approval-timeout', detail: 'no answer within 500 ms' }],
    [{ verdict: 'deny', reason: 'approvals-full' }, { reason: 'not-allowlisted', detail: 'why (too many requests already waiting for approval)' }],
    [{ verdict: 'deny', reason: 'denied' }, { reason: 'denied', detail: 'denied by the operator' }],
  ] as [ApprovalOutcome, unknown][])('%o', (outcome, expected) => {
    expect(approvalRefusal(outcome, 'why', 500)).toEqual(expected);
  });
});

describe('canonicalAddresses', () => {
  it('canonical text, unmapped v4, unparseable dropped', () => {
    expect(canonicalAddresses([{ address: '93.184.216.34' }, { address: '::ffff:10.0.0.1' }, { address: 'nonsense' }, { address: '2001:DB8::1' }])).toEqual(['93.184.216.34', '10.0.0.1', '2001:db8::1']);
  });
});

describe('checkAddresses', () => {
  const p = policy({ allow: [{ host: 'a.test' }, { host: '10.1.0.0/16' }] });
  it('keeps the allowed addresses in order, with the first allow decision', () => {
    const r = checkAddresses(p, { host: 'a.test', port: 443 }, ['10.0.0.1', '93.184.216.34', '10.1.2.3'], false);
    expect(r).toMatchObject({ ok: true, allowed: ['93.184.216.34', '10.1.2.3'], decision: { action: 'allow', reason: 'allowlisted', ipClass: 'public' } });
  });

  it('refuses with the first refusal when no address passes', () => {
    const r = checkAddresses(p, { host: 'a.test', port: 443 }, ['127.0.0.1', '10.0.0.1'], false);
    expect(r).toMatchObject({ ok: false, decision: { action: 'deny', reason: 'private-address', ipClass: 'loopback' } });
  });
});

describe('authorize', () => {
  const setup = (net: NetworkConfigInput, opts: { resolve?: Resolver; outcome?: ApprovalOutcome; broker?: boolean } = {}) => {
    const events: AuditEvent[] = [];
    const asked: ApprovalRequest[] = [];
    const broker = {
      timeoutMs: 500,
      request: async (req: ApprovalRequest) => {
        asked.push(req);
        return opts.outcome ?? { verdict: 'deny', reason: 'approval-timeout' };
      },
    } as unknown as ApprovalBroker;
    const lookups: string[] = [];
    const deps: AuthorizeDeps = {
      policy: () => policy(net),
      approvals: opts.broker === false ? undefined : broker,
      resolve:
        opts.resolve ??
        (async (h) => {
          lookups.push(h);
          return [{ address: '93.184.216.34', family: 4 }];
        }),
      resolveTimeoutMs: 1_000,
      audit: createEgressAudit({ emit: (e) => events.push(e), close: async () => {} }, 'sb'),
    };
    const decisions = () => events.map((e) => [e.decision, e.reason]);
    return { deps, events, decisions, asked, lookups };
  };
  const signal = new AbortController().signal;

  it('an allowlisted name is resolved and allowed, with one allow event', async () => {
    const s = setup({ allow: [{ host: 'a.test' }] });
    const r = await authorize(s.deps, tunnel('a.test'), signal);
    expect(r).toMatchObject({ ok: true, addresses: ['93.184.216.34'] });
    expect(s.events).toEqual([expect.objectContaining({ decision: 'allow', reason: 'allowlisted', rule: 'allow[0] a.test', ip: '93.184.216.34', ipClass: 'public' })]);
  });

  it('an unknown name is never resolved', async () => {
    const s = setup({});
    expect(await authorize(s.deps, tunnel('b.test'), signal)).toMatchObject({ ok: false, status: 403, reason: 'not-allowlisted' });
    expect(s.lookups).toEqual([]);
    expect(s.decisions()).toEqual([['deny', 'not-allowlisted']]);
  });

  it('held, then refused at the approval timeout', async () => {
    const s = setup({ approvals: { enabled: true } });
    expect(await authorize(s.deps, tunnel('b.test'), signal)).toMatchObject({ ok: false, status: 403, reason: 'approval-timeout', detail: 'no answer within 500 ms' });
    expect(s.asked).toEqual([{ host: 'b.test', port: 443, via: 'connect' }]);
    expect(s.decisions()).toEqual([['hold', 'not-allowlisted'], ['deny', 'approval-timeout']]);
    expect(s.lookups).toEqual([]);
  });

  it('approvals on without a broker: refused at once', async () => {
    const s = setup({ approvals: { enabled: true } }, { broker: false });
    expect(await authorize(s.deps, tunnel('b.test'), signal)).toMatchObject({ ok: false, reason: 'not-allowlisted', detail: expect.stringContaining('nobody can answer') });
  });

  it('approved: resolved and allowed as approved', async () => {
    const s = setup({ approvals: { enabled: true } }, { outcome: { verdict: 'allow', reason: 'approved' } });
    expect(await authorize(s.deps, tunnel('b.test'), signal)).toMatchObject({ ok: true, decision: { reason: 'approved' } });
    expect(s.decisions()).toEqual([['hold', 'not-allowlisted'], ['allow', 'approved']]);
  });

  it('an IP literal is not resolved; a private one is refused', async () => {
    const s = setup({ allow: [{ host: 'a.test' }] });
    expect(await authorize(s.deps, tunnel('10.0.0.1', 443, true), signal)).toMatchObject({ ok: false, status: 403 });
    expect(s.lookups).toEqual([]);
  });

  it('a resolver failure or an empty answer is 502 resolve-failed', async () => {
    const fail = setup({ allow: [{ host: 'a.test' }] }, { resolve: async () => Promise.reject(Object.assign(new Error('x'), { code: 'ENOTFOUND' })) });
    expect(await authorize(fail.deps, tunnel('a.test'), signal)).toEqual({ ok: false, status: 502, reason: 'resolve-failed', detail: 'cannot resolve a.test: ENOTFOUND' });
    const none = setup({ allow: [{ host: 'a.test' }] }, { resolve: async () => [] });
    expect(await authorize(none.deps, tunnel('a.test'), signal)).toEqual({ ok: false, status: 502, reason: 'resolve-failed', detail: 'a.test has no addresses' });
  });

  it('a name resolving only to private addresses is refused after resolution (DNS rebinding)', async () => {
    const s = setup({ allow: [{ host: 'a.test' }] }, { resolve: async () => [{ address: '169.254.169.254', family: 4 }] });
    expect(await authorize(s.deps, tunnel('a.test'), signal)).toMatchObject({ ok: false, status: 403, reason: 'private-address' });
  });
});

describe('withApprovedRule', () => {
  const p = policy({ allow: [{ host: 'A.test', ports: [443, 8443] }, { host: 'b.test', ports: [80], methods: ['GET'] }] });
  it('a rule already covered by a host-wide rule leaves the same policy object', () => {
    expect(withApprovedRule(p, { host: 'a.test', ports: [443], allowMissingSni: false })).toBe(p);
  });
  it.each([
    ['another port', { host: 'a.test', ports: [443, 9443], allowMissingSni: false }],
    ['a host only covered for some methods', { host: 'b.test', ports: [80], allowMissingSni: false }],
    ['a new host', { host: 'c.test', ports: [443], allowMissingSni: false }],
  ])('%s is appended, in a new object', (_label, rule) => {
    const next = withApprovedRule(p, rule);
    expect(next).not.toBe(p);
    expect(next.allow).toEqual([...p.allow, rule]);
    expect(p.allow).toHaveLength(2);
  });
});
