import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/log.js';
import { closeEvent, createEgressAudit, decisionEvent, errText, limitEvent, NO_TARGET, type ConnRecord } from '../../src/services/egress/audit-events.js';

const tunnel: ConnRecord = { id: 'e1', via: 'connect', target: { host: 'api.example.com', hostIsIp: false, port: 443 } };
const request: ConnRecord = { id: 'e2', via: 'http', target: { host: '10.0.0.1', hostIsIp: true, port: 80 }, method: 'POST', path: '/upload' };

describe('decisionEvent', () => {
  it('names the destination, the verdict and why; no method or path for a tunnel', () => {
    expect(decisionEvent('sb', tunnel, 'allow', 'allowlisted', 'api.example.com:443 allowed by allow[0] api.example.com', { rule: 'allow[0] api.example.com', ip: '93.184.216.34' })).toEqual({
      kind: 'egress.decision',
      sandbox: 'sb',
      conn: 'e1',
      via: 'connect',
      host: 'api.example.com',
      port: 443,
      decision: 'allow',
      reason: 'allowlisted',
      detail: 'api.example.com:443 allowed by allow[0] api.example.com',
      rule: 'allow[0] api.example.com',
      ip: '93.184.216.34',
    });
  });

  it('carries method and path for a forwarded request', () => {
    const e = decisionEvent('sb', request, 'deny', 'private-address', 'no');
    expect(e).toEqual({ kind: 'egress.decision', sandbox: 'sb', conn: 'e2', via: 'http', host: '10.0.0.1', port: 80, method: 'POST', path: '/upload', decision: 'deny', reason: 'private-address', detail: 'no' });
    expect(Object.keys(e)).toEqual(['kind', 'sandbox', 'conn', 'via', 'host', 'port', 'method', 'path', 'decision', 'reason', 'detail']);
  });

  it('a request refused before naming a target has an empty host and port 0', () => {
    expect(decisionEvent('sb', { id: 'e3', via: 'http', target: NO_TARGET }, 'deny', 'malformed', 'x')).toMatchObject({ host: '', port: 0, reason: 'malformed' });
  });

  it('holds say so', () => {
    expect(decisionEvent('sb', tunnel, 'hold', 'not-allowlisted', 'waiting')).toMatchObject({ decision: 'hold', reason: 'not-allowlisted' });
  });
});

describe('closeEvent', () => {
  it('rounds the duration and leaves out a missing error', () => {
    expect(closeEvent('sb', tunnel, '93.184.216.34', 10, 20, 12.6)).toEqual({
      kind: 'egress.close',
      sandbox: 'sb',
      conn: 'e1',
      via: 'connect',
      host: 'api.example.com',
      port: 443,
      ip: '93.184.216.34',
      bytesIn: 10,
      bytesOut: 20,
      durationMs: 13,
    });
  });

  it('carries the destination error, and no method or path even for a forwarded request', () => {
    const e = closeEvent('sb', request, '10.0.0.1', 0, 5, 0.2, 'ECONNRESET');
    expect(e).toMatchObject({ error: 'ECONNRESET', durationMs: 0 });
    expect(e).not.toHaveProperty('method');
    expect(closeEvent('sb', request, '10.0.0.1', 0, 5, 1, '')).not.toHaveProperty('error');
  });
});

describe('limitEvent', () => {
  it.each([
    [{ state: 'reached', open: 256 } as const, { state: 'reached', open: 256 }],
    [{ state: 'cleared', refused: 7 } as const, { state: 'cleared', refused: 7 }],
  ])('%o', (report, fields) => {
    expect(limitEvent('sb', 256, report)).toEqual({ kind: 'egress.limit', sandbox: 'sb', limit: 'maxConnections', max: 256, ...fields });
  });
});

describe('errText', () => {
  it('prefers the code, then the message', () => {
    expect(errText(Object.assign(new Error('connect ECONNREFUSED 1.2.3.4:5'), { code: 'ECONNREFUSED' }))).toBe('ECONNREFUSED');
    expect(errText(new Error('DNS lookup timed out'))).toBe('DNS lookup timed out');
    expect(errText('odd')).toBe('odd');
  });
});

describe('createEgressAudit', () => {
  it('numbers connections per proxy and sends the events to its sink', () => {
    const seen: AuditEvent[] = [];
    const a = createEgressAudit({ emit: (e) => seen.push(e), close: async () => {} }, 'sb');
    const b = createEgressAudit({ emit: () => {}, close: async () => {} }, 'sb');
    expect([a.connId(), a.connId(), b.connId()]).toEqual(['e1', 'e2', 'e1']);
    a.decision(tunnel, 'deny', 'denied', 'd');
    a.close(tunnel, '1.2.3.4', 1, 2, performance.now());
    a.limit(3, { state: 'reached', open: 3 });
    expect(seen.map((e) => e.kind)).toEqual(['egress.decision', 'egress.close', 'egress.limit']);
  });
});
