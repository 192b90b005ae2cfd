import { describe, expect, it } from 'vitest';
import { nextRestart, DEFAULT_RESTART } from '../../src/tenants/backoff.js';
import { checkTenantSet, parseTenantsConfig, parseTenantSpec } from '../../src/tenants/config.js';
import { credentialEnvFor, tenantLaunchOptions } from '../../src/tenants/orchestrator.js';
import { allocateUid, parsePasswdUids } from '../../src/tenants/uids.js';

const range = { first: 70000, count: 3 };

describe('allocateUid', () => {
  const cases: { label: string; inUse: [number, string][]; tenant: string; requested?: number; accounts?: number[]; want: number | RegExp }[] = [
    { label: 'first free uid of an empty range', inUse: [], tenant: 'a', want: 70000 },
    { label: 'skips uids held by other tenants', inUse: [[70000, 'a'], [70001, 'b']], tenant: 'c', want: 70002 },
    { label: 'fills a hole left by a removed tenant', inUse: [[70000, 'a'], [70002, 'c']], tenant: 'd', want: 70001 },
    { label: 'a tenant that has a uid keeps it', inUse: [[70000, 'a'], [70001, 'b']], tenant: 'b', want: 70001 },
    { label: 'a requested free uid is granted', inUse: [[70000, 'a']], tenant: 'b', requested: 70002, want: 70002 },
    { label: 'a requested uid of another tenant is refused', inUse: [[70000, 'a']], tenant: 'b', requested: 70000, want: /uid 70000 already belongs to tenant a/ },
    { label: 'a requested uid outside the range is refused', inUse: [], tenant: 'b', requested: 61000, want: /outside the tenant uid range 70000-70002/ },
    { label: 'skips uids of host accounts', inUse: [], tenant: 'a', accounts: [70000, 70001], want: 70002 },
    { label: 'a requested uid of a host account is refused', inUse: [], tenant: 'a', requested: 70001, accounts: [70001], want: /uid 70001 belongs to an account of this host/ },
    { label: 'a full range is refused', inUse: [[70000, 'a'], [70001, 'b'], [70002, 'c']], tenant: 'd', want: /no free uid left .* \(3 tenants\)/ },
  ];
  for (const c of cases) {
    it(c.label, () => {
      const run = () => allocateUid(range, new Map(c.inUse), c.tenant, c.requested, new Set(c.accounts ?? []));
      if (typeof c.want === 'number') expect(run()).toBe(c.want);
      else expect(run).toThrow(expect.objectContaining({ code: 'ERR_CLAWJAIL_TENANT_UID', message: expect.stringMatching(c.want) }));
    });
  }
});

it('parsePasswdUids reads the third field of each account line', () => {
  expect([...parsePasswdUids('root:x:0:0:root:/root:/bin/bash\n# comment\nnobody:x:65534:65534::/:/usr/sbin/nologin\nbroken\n\nalice:x:70001:70001::/home/a:/bin/sh\n')]).toEqual([0, 65534, 70001]);
});

describe('nextRestart', () => {
  const p = { ...DEFAULT_RESTART, initialMs: 100, maxMs: 1000, factor: 2, resetAfterMs: 5000, maxAttempts: 0 };
  const cases: { label: string; policy?: typeof p; attempt: number; ranMs: number; want: ReturnType<typeof nextRestart> }[] = [
    { label: 'first crash waits initialMs', attempt: 0, ranMs: 10, want: { action: 'restart', delayMs: 100, attempt: 1 } },
    { label: 'consecutive crashes double the delay', attempt: 2, ranMs: 10, want: { action: 'restart', delayMs: 400, attempt: 3 } },
    { label: 'the delay is capped at maxMs', attempt: 9, ranMs: 10, want: { action: 'restart', delayMs: 1000, attempt: 10 } },
    { label: 'a long healthy run resets the backoff', attempt: 9, ranMs: 5000, want: { action: 'restart', delayMs: 100, attempt: 1 } },
    { label: 'maxAttempts gives up', policy: { ...p, maxAttempts: 3 }, attempt: 3, ranMs: 10, want: { action: 'give-up', attempt: 3 } },
    { label: 'maxAttempts counts only consecutive crashes', policy: { ...p, maxAttempts: 3 }, attempt: 3, ranMs: 6000, want: { action: 'restart', delayMs: 100, attempt: 1 } },
  ];
  for (const c of cases) it(c.label, () => expect(nextRestart(c.policy ?? p, c.attempt, c.ranMs)).toEqual(c.want));
});

describe('tenants config', () => {
  const err = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return e as { code: string; message: string };
    }
    throw new Error('no error');
  };
  it('defaults: uid range 70000+10000, restart policy, no tenants', () => {
    const c = parseTenantsConfig({});
    expect(c.uids).toEqual({ first: 70000, count: 10000 });
    expect(c.restart).toEqual(DEFAULT_RESTART);
    expect(c.tenants).toEqual([]);
  });
  const bad: { label: string; raw: unknown; message: RegExp }[] = [
    { label: 'unknown top-level key', raw: { tenant: [] }, message: /\(top level\): Unrecognized key: "tenant"/ },
    { label: 'unknown tenant key', raw: { tenants: [{ name: 'a', comand: ['x'] }] }, message: /tenants\[0\]: Unrecognized key: "comand"/ },
    { label: 'bad tenant name', raw: { tenants: [{ name: 'Acme_Corp' }] }, message: /tenants\[0\]\.name: a tenant name is 1-40 lower-case letters/ },
    { label: 'uid range containing nobody', raw: { uids: { first: 65000, count: 1000 } }, message: /uids: the range must not contain 65534/ },
    { label: 'duplicate names', raw: { tenants: [{ name: 'a' }, { name: 'a' }] }, message: /tenant name a is used twice/ },
    { label: 'duplicate uids', raw: { tenants: [{ name: 'a', uid: 70001 }, { name: 'b', uid: 70001 }] }, message: /tenants a and b share the uid 70001/ },
    { label: 'duplicate gateway host ports', raw: { tenants: [{ name: 'a', gateway: { hostPort: 9000 } }, { name: 'b', gateway: { hostPort: 9000 } }] }, message: /tenants a and b share the gateway host port 9000/ },
    { label: 'a shared gateway socket', raw: { tenants: [{ name: 'a', gateway: { socket: '/run/gw.sock' } }, { name: 'b', gateway: { socket: '/run/gw.sock' } }] }, message: /tenants a and b share the gateway socket \/run\/gw\.sock/ },
    { label: 'a relative gateway socket', raw: { tenants: [{ name: 'a', gateway: { socket: 'gw.sock' } }] }, message: /tenants\[0\]\.gateway\.socket: an absolute path/ },
    {
      label: 'a key shared between two tenants',
      raw: {
        tenants: [
          { name: 'a', routes: [{ name: 'm', api: 'openai', upstream: 'https://api.openai.com/v1', credential: { env: 'KEY' } }] },
          { name: 'b', routes: [{ name: 'm', api: 'openai', upstream: 'https://api.openai.com/v1', credential: { env: 'KEY' } }] },
        ],
      },
      message: /tenants a and b share the credential source env KEY[\s\S]*a key is never shared between tenants/,
    },
  ];
  for (const c of bad) {
    it(`refuses ${c.label}, naming it`, () => {
      const e = err(() => parseTenantsConfig(c.raw));
      expect(e.code).toBe('ERR_CLAWJAIL_TENANT_CONFIG');
      expect(e.message).toMatch(c.message);
    });
  }
  it('one tenant may use its own key in two routes', () => {
    const route = (name: string) => ({ name, api: 'openai', upstream: 'https://api.openai.com/v1', credential: { env: 'KEY_A' } });
    expect(() => checkTenantSet([parseTenantSpec({ name: 'a', routes: [route('m'), route('n')] })])).not.toThrow();
  });
});

describe('tenantLaunchOptions', () => {
  const spec = parseTenantSpec({
    name: 'acme',
    command: ['python3', 'gw.py'],
    allow: [{ host: 'api.acme.example' }],
    routes: [{ name: 'm', api: 'openai', upstream: 'https://api.openai.com/v1', credential: { env: 'ACME_KEY' } }],
    gateway: { port: 8080, health: '/readyz' },
    env: { MODE: 'x' },
  });
  const opts = tenantLaunchOptions(spec, { uid: 70005, stateDir: '/srv/t/acme', env: { ACME_KEY: 'k-acme', OTHER_KEY: 'k-other', PATH: '/bin' } });
  it('runs as the tenant uid with its state dir, allowlist, routes, published gateway', () => {
    expect(opts.name).toBe('acme');
    expect(opts.command).toEqual(['python3', 'gw.py']);
    expect(opts.overrides![0]).toEqual({
      name: 'acme',
      identity: { uid: 70005, gid: 70005 },
      filesystem: { sandboxDir: '/srv/t/acme' },
      network: { allow: [expect.objectContaining({ host: 'api.acme.example', ports: [443] })] },
      inference: { routes: [expect.objectContaining({ name: 'm', credential: { env: 'ACME_KEY' } })] },
      env: { set: { MODE: 'x' } },
      publish: [{ hostPort: 0, port: 8080 }],
      landlock: { bindPorts: [8080] },
    });
  });
  it('gives the router only the variables its own routes name', () => {
    expect(opts.credentialEnv).toEqual({ ACME_KEY: 'k-acme' });
    expect(credentialEnvFor(spec, { OTHER_KEY: 'x' })).toEqual({});
  });
});
