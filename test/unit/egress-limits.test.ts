import { describe, expect, it } from 'vitest';
import { NetworkSchema, ProxyLimitsSchema } from '../../src/profile/network.js';
import { admitConnection, headerTimeoutAction, releaseConnection } from '../../src/services/egress/limits.js';
import { DEFAULT_EGRESS_LIMITS } from '../../src/services/egress/proxy.js';

describe('admitConnection', () => {
  it.each([
    // open, max, refused so far → admit, refused after, report
    [0, 3, 0, true, 0, undefined],
    [2, 3, 0, true, 0, undefined],
    [3, 3, 0, false, 1, { state: 'reached', open: 3 }],
    [3, 3, 1, false, 2, undefined],
    [3, 3, 41, false, 42, undefined],
    [2, 3, 5, true, 0, { state: 'cleared', refused: 5 }],
    // relayed tunnels count too: open may exceed max after the cap was lowered
    [7, 3, 0, false, 1, { state: 'reached', open: 7 }],
  ] as const)('open %i of %i, %i refused → admit %s', (open, max, refused, admit, after, report) => {
    expect(admitConnection(open, max, refused)).toEqual({ admit, refused: after, ...(report ? { report } : {}) });
  });

  it('reports a burst once however long it lasts, and its end once', () => {
    let refused = 0;
    const reports: unknown[] = [];
    const step = (d: ReturnType<typeof admitConnection>) => {
      refused = d.refused;
      if (d.report) reports.push(d.report);
      return d.admit;
    };
    const admitted = [3, 3, 3, 3].map((open) => step(admitConnection(open, 3, refused)));
    expect(admitted).toEqual([false, false, false, false]);
    step(releaseConnection(3, 3, refused)); // a close that leaves it at the cap: still a burst
    step(releaseConnection(2, 3, refused));
    step(releaseConnection(1, 3, refused)); // nothing more to report
    expect(step(admitConnection(1, 3, refused))).toBe(true);
    expect(reports).toEqual([
      { state: 'reached', open: 3 },
      { state: 'cleared', refused: 4 },
    ]);
  });
});

describe('headerTimeoutAction', () => {
  it.each([
    [true, 0, 'respond-408'],
    [true, 5, 'respond-408'],
    [false, 1, 'respond-408'],
    [false, 0, 'close'],
  ] as const)('first request %s, %i bytes since armed → %s', (first, bytes, action) => {
    expect(headerTimeoutAction(first, bytes)).toBe(action);
  });
});

describe('network.limits', () => {
  it('defaults to the proxy\'s own defaults', () => {
    const { maxConnections, headersTimeoutMs, idleTimeoutMs } = DEFAULT_EGRESS_LIMITS;
    expect(NetworkSchema.parse({}).limits).toEqual({ maxConnections, headersTimeoutMs, idleTimeoutMs });
    expect(maxConnections).toBe(256);
  });

  it.each([
    [{ maxConnections: 0 }, 'maxConnections'],
    [{ maxConnections: 1.5 }, 'maxConnections'],
    [{ headersTimeoutMs: 10 }, 'headersTimeoutMs'],
    [{ idleTimeoutMs: -1 }, 'idleTimeoutMs'],
    [{ maxconnections: 10 }, ''],
  ])('refuses %j, naming the field', (value, field) => {
    const r = ProxyLimitsSchema.safeParse(value);
    expect(r.success).toBe(false);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      if (field) expect(issue.path).toEqual([field]);
      else expect(issue.code).toBe('unrecognized_keys');
    }
  });
});
