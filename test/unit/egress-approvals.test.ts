import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { NetworkSchema } from '../../src/profile/network.js';
import { createApprovalBroker, type ApprovalVerdict, type PendingApproval } from '../../src/services/egress/approvals.js';
import { addAllowRuleToProfile, createProfileRulePersister } from '../../src/services/egress/persist.js';

const req = { host: 'new.test', port: 443, via: 'connect' as const };

describe('createApprovalBroker', () => {
  it('collapses requests for one destination into one pending entry and answers them all', async () => {
    const broker = createApprovalBroker({ timeoutMs: 5_000 });
    const waits = [broker.request(req), broker.request(req), broker.request(req)];
    const other = broker.request({ ...req, port: 8443 });
    const pending = broker.list();
    expect(pending).toHaveLength(2);
    expect(pending[0]).toMatchObject({ host: 'new.test', port: 443, requests: 3, via: 'connect' });
    expect(pending[0]?.id).toMatch(/^[0-9a-f]{8}$/);
    await broker.decide(pending[0]!.id, 'allow');
    for (const o of await Promise.all(waits)) expect(o).toEqual({ verdict: 'allow', reason: 'approved' });
    expect(broker.list().map((p) => p.port)).toEqual([8443]);
    broker.close();
    expect(await other).toEqual({ verdict: 'deny', reason: 'denied' });
  });

  it('denies on timeout and forgets the entry', async () => {
    const broker = createApprovalBroker({ timeoutMs: 100 });
    const started = Date.now();
    expect(await broker.request(req)).toEqual({ verdict: 'deny', reason: 'approval-timeout' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(95);
    expect(broker.list()).toEqual([]);
    await expect(broker.decide('00000000', 'allow')).rejects.toMatchObject({ code: 'ERR_CLAWJAIL_NOT_FOUND' });
  });

  it('deny answers every waiter with denied', async () => {
    const broker = createApprovalBroker({ timeoutMs: 5_000 });
    const a = broker.request(req);
    const b = broker.request(req);
    await broker.decide(broker.list()[0]!.id, 'deny');
    expect(await a).toEqual({ verdict: 'deny', reason: 'denied' });
    expect(await b).toEqual({ verdict: 'deny', reason: 'denied' });
  });

  it('"always" hands the rule to listeners and to persist, and reports where it went', async () => {
    const rules: unknown[] = [];
    const persisted: unknown[] = [];
    const broker = createApprovalBroker({
      timeoutMs: 5_000,
      persist: async (rule) => {
        persisted.push(rule);
        return { file: '/profiles/p.yaml' };
      },
    });
    broker.onRule((r) => rules.push(r));
    const wait = broker.request(req);
    const result = await broker.decide(broker.list()[0]!.id, 'always');
    const rule = { host: 'new.test', ports: [443], allowMissingSni: false };
    expect(result).toMatchObject({ verdict: 'always', host: 'new.test', port: 443, persistedTo: '/profiles/p.yaml' });
    expect(await wait).toEqual({ verdict: 'allow', reason: 'approved', rule });
    expect(rules).toEqual([rule]);
    expect(persisted).toEqual([rule]);
  });

  it('"always" without a profile file says so, and still allows', async () => {
    const broker = createApprovalBroker({ timeoutMs: 5_000 });
    const wait = broker.request(req);
    const result = await broker.decide(broker.list()[0]!.id, 'always');
    expect(result.persistError).toMatch(/no profile file/);
    expect((await wait).verdict).toBe('allow');
  });

  it('a failing persist is reported, not thrown', async () => {
    const broker = createApprovalBroker({ timeoutMs: 5_000, persist: () => Promise.reject(new Error('disk full')) });
    const wait = broker.request(req);
    expect((await broker.decide(broker.list()[0]!.id, 'always')).persistError).toBe('disk full');
    expect((await wait).verdict).toBe('allow');
  });

  it('asks onApproval once per entry and applies its verdict', async () => {
    const seen: PendingApproval[] = [];
    const broker = createApprovalBroker({
      timeoutMs: 5_000,
      onApproval: async (p): Promise<ApprovalVerdict> => {
        seen.push(p);
        return p.port === 443 ? 'allow' : 'deny';
      },
    });
    const [a, b, c] = await Promise.all([broker.request(req), broker.request(req), broker.request({ ...req, port: 25 })]);
    expect(a.verdict).toBe('allow');
    expect(b.verdict).toBe('allow');
    expect(c).toEqual({ verdict: 'deny', reason: 'denied' });
    expect(seen.map((p) => [p.port, p.requests])).toEqual([
      [443, 1],
      [25, 1],
    ]);
  });

  it('an onApproval that returns nothing leaves the entry to the operator', async () => {
    const broker = createApprovalBroker({ timeoutMs: 150, onApproval: () => undefined });
    expect(await broker.request(req)).toEqual({ verdict: 'deny', reason: 'approval-timeout' });
  });

  it('bounds the number of pending destinations', async () => {
    const broker = createApprovalBroker({ timeoutMs: 5_000, maxPending: 2 });
    void broker.request({ ...req, port: 1 });
    void broker.request({ ...req, port: 2 });
    expect(await broker.request({ ...req, port: 3 })).toEqual({ verdict: 'deny', reason: 'approvals-full' });
    // Joining an existing entry is still fine.
    const joined = broker.request({ ...req, port: 1 });
    expect(broker.list().find((p) => p.port === 1)?.requests).toBe(2);
    broker.close();
    expect((await joined).verdict).toBe('deny');
  });

  it('a waiter that gives up stops waiting; the entry stays for the operator', async () => {
    const broker = createApprovalBroker({ timeoutMs: 5_000 });
    const ac = new AbortController();
    const wait = broker.request(req, ac.signal);
    ac.abort();
    expect(await wait).toEqual({ verdict: 'deny', reason: 'denied' });
    expect(broker.list()).toHaveLength(1);
    broker.close();
  });
});

describe('addAllowRuleToProfile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'clawjail-egress-persist-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const profile = `# my profile
extends: default
network:
  mode: proxy # keep this comment
  # the allowlist
  allow:
    - host: api.github.com
  deny: []
seccomp:
  mode: enforce
`;
  const rule = { host: 'new.test', ports: [8443], allowMissingSni: false };

  it('appends the rule, keeps comments and the rest of the file, and stays a valid profile', async () => {
    const file = join(dir, 'p.yaml');
    await writeFile(file, profile);
    await chmod(file, 0o640);
    expect(await addAllowRuleToProfile(file, rule)).toBe('added');
    const text = await readFile(file, 'utf8');
    expect(text).toContain('# my profile');
    expect(text).toContain('mode: proxy # keep this comment');
    expect(text).toContain('# the allowlist');
    expect(text).toMatch(/# added by `clawjail approve --always` on \d{4}-\d\d-\d\d\n\s+- host: new\.test\n\s+ports: \[ 8443 \]/);
    const parsed = YAML.parse(text) as { network: unknown; seccomp: unknown };
    expect(parsed.seccomp).toEqual({ mode: 'enforce' });
    expect(NetworkSchema.parse(parsed.network).allow.map((r) => `${r.host}:${r.ports.join(',')}`)).toEqual(['api.github.com:443', 'new.test:8443']);
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    // Atomic replacement leaves no temp files behind.
    expect(await readdir(dir)).toEqual(['p.yaml']);
  });

  it('does not add a rule twice', async () => {
    const file = join(dir, 'p.yaml');
    await writeFile(file, profile);
    expect(await addAllowRuleToProfile(file, { host: 'API.github.com', ports: [443], allowMissingSni: false })).toBe('present');
    expect(await readFile(file, 'utf8')).toBe(profile);
  });

  it('creates network.allow where there is none, turning a flow list into a block list', async () => {
    const file = join(dir, 'p.yaml');
    await writeFile(file, 'network:\n  allow: []\n');
    await addAllowRuleToProfile(file, rule);
    expect(YAML.parse(await readFile(file, 'utf8'))).toEqual({ network: { allow: [{ host: 'new.test', ports: [8443] }] } });
    const empty = join(dir, 'empty.yaml');
    await writeFile(empty, '# nothing yet\n');
    await addAllowRuleToProfile(empty, rule);
    expect(YAML.parse(await readFile(empty, 'utf8'))).toEqual({ network: { allow: [{ host: 'new.test', ports: [8443] }] } });
  });

  it('serializes concurrent writers: every rule lands', async () => {
    const file = join(dir, 'p.yaml');
    await writeFile(file, profile);
    const persist = createProfileRulePersister(file);
    await Promise.all(Array.from({ length: 10 }, (_, i) => persist({ host: `h${i}.test`, ports: [443], allowMissingSni: false })));
    const allow = (YAML.parse(await readFile(file, 'utf8')) as { network: { allow: { host: string }[] } }).network.allow;
    expect(allow.map((r) => r.host).sort()).toEqual(['api.github.com', ...Array.from({ length: 10 }, (_, i) => `h${i}.test`)].sort());
  });

  it('refuses a file that is not YAML, and leaves it untouched', async () => {
    const file = join(dir, 'p.yaml');
    await writeFile(file, 'network: [unclosed\n');
    await expect(addAllowRuleToProfile(file, rule)).rejects.toMatchObject({ code: 'ERR_CLAWJAIL_PROFILE', message: expect.stringMatching(/not valid YAML/) });
    expect(await readFile(file, 'utf8')).toBe('network: [unclosed\n');
  });

  it('refuses a network section that is not a mapping', async () => {
    const file = join(dir, 'p.yaml');
    await writeFile(file, 'network: none\n');
    await expect(addAllowRuleToProfile(file, rule)).rejects.toThrow(/`network` is not a mapping/);
  });
});
