import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { AllowRuleSchema, NetworkSchema, parseAllowHostFlag, type NetworkConfigInput } from '../../src/profile/network.js';
import { normalizeHostname, parseHostPattern } from '../../src/policy/host.js';
import { matchEgress, type EgressRequest } from '../../src/services/egress/policy.js';
import { parseConnectTarget, parseProxyRequestUrl } from '../../src/services/egress/target.js';

const policy = (input: NetworkConfigInput) => NetworkSchema.parse(input);
const DEFAULT_LIMITS = { maxConnections: 256, headersTimeoutMs: 10_000, idleTimeoutMs: 600_000 };
const issues = (input: unknown): string => {
  const r = NetworkSchema.safeParse(input);
  if (r.success) throw new Error('expected the schema to refuse this');
  return r.error.issues.map((i) => i.message).join('\n');
};

describe('NetworkSchema', () => {
  it('fills defaults: proxy mode, empty lists, approvals off with 30 s, proxy limits', () => {
    expect(policy({})).toEqual({ mode: 'proxy', allow: [], deny: [], approvals: { enabled: false, timeoutMs: 30_000 }, limits: DEFAULT_LIMITS });
  });

  it('defaults a rule to port 443 and SNI required', () => {
    expect(policy({ allow: [{ host: 'api.github.com' }] }).allow[0]).toEqual({ host: 'api.github.com', ports: [443], allowMissingSni: false });
  });

  it('refuses TLD-only wildcards and teaches the fix', () => {
    expect(issues({ allow: [{ host: '*.com' }] })).toMatch(/every name under the top-level domain "\.com".*"\*\.example\.com"/);
  });

  it.each(['foo.*.com', '*', 'a*.b.com', '*.*.b.com'])('refuses a misplaced wildcard %j', (host) => {
    expect(issues({ allow: [{ host }] })).toMatch(/only allowed as a leading "\*\."|not a valid host name/);
  });

  it('refuses methods/paths on a TLS port with the reason, naming the default', () => {
    const msg = issues({ allow: [{ host: 'api.github.com', methods: ['GET'] }] });
    expect(msg).toMatch(/methods can only be enforced on plain-HTTP requests/);
    expect(msg).toMatch(/no TLS interception/);
    expect(msg).toMatch(/ports defaults to \[443\]/);
    expect(issues({ allow: [{ host: 'x.test', ports: [80, 8443], paths: ['/a'] }] })).toMatch(/ports include 8443/);
  });

  it('accepts methods/paths on plain-HTTP ports', () => {
    const p = policy({ allow: [{ host: 'deb.debian.org', ports: [80], methods: ['GET', 'HEAD'], paths: ['/debian/*'] }] });
    expect(p.allow[0]?.methods).toEqual(['GET', 'HEAD']);
  });

  it.each([
    [{ host: 'x.test', ports: [80], methods: ['get'] }, /upper-case/],
    [{ host: 'x.test', ports: [80], methods: ['CONNECT'] }, /CONNECT is how clients open tunnels/],
    [{ host: 'x.test', ports: [80], paths: ['v1'] }, /start with "\/"/],
    [{ host: 'x.test', ports: [80], paths: ['/a*b'] }, /only allowed at the end/],
    [{ host: 'x.test', ports: [80], paths: ['/a?x=1'] }, /without the query/],
    [{ host: 'x.test', ports: [0] }, /./],
    [{ host: 'x.test', ports: [] }, /./],
    [{ host: 'x.test', port: 443 }, /Unrecognized key/i],
    [{ host: '10.0.0.1:5432' }, /put the port in `ports`/],
    [{ host: '10.0.0.0/33' }, /not one/],
  ])('refuses rule %j', (rule, message) => {
    expect(issues({ allow: [rule] })).toMatch(message);
  });

  it('accepts IPs, CIDRs, IPv6 and wildcards', () => {
    const p = policy({ allow: [{ host: '127.0.0.1', ports: [8080] }, { host: '10.0.0.0/8' }, { host: '::1' }, { host: 'fd00::/8' }, { host: '*.github.com' }] });
    expect(p.allow).toHaveLength(5);
  });

  it('refuses unknown keys and bad approvals', () => {
    expect(issues({ allowed: [] })).toMatch(/Unrecognized key/i);
    expect(issues({ approvals: { enabled: true, timeoutMs: 5 } })).toMatch(/>=100/);
  });

  it('describes every field', () => {
    const shape = NetworkSchema.shape;
    for (const [key, field] of Object.entries(shape)) expect(field.description, key).toBeTruthy();
    for (const [key, field] of Object.entries(AllowRuleSchema.shape)) expect(field.description, key).toBeTruthy();
  });
});

describe('parseAllowHostFlag', () => {
  it.each([
    ['api.github.com', { host: 'api.github.com', ports: [443] }],
    ['example.com:8080', { host: 'example.com', ports: [8080] }],
    ['*.x.test:443', { host: '*.x.test', ports: [443] }],
    ['10.0.0.5:5432', { host: '10.0.0.5', ports: [5432] }],
    ['[::1]:8080', { host: '::1', ports: [8080] }],
    ['fd00::/8', { host: 'fd00::/8', ports: [443] }],
  ])('%s', (flag, rule) => {
    expect(parseAllowHostFlag(flag)).toMatchObject(rule);
  });
  it.each([
    ['*.com', /top-level domain/],
    ['x.test:http', /is not a port number/],
    ['x.test:70000', /--allow-host x.test:70000/],
  ])('refuses %s', (flag, message) => {
    expect(() => parseAllowHostFlag(flag)).toThrow(message);
    try {
      parseAllowHostFlag(flag);
    } catch (e) {
      expect((e as { code: string }).code).toBe('ERR_CLAWJAIL_USAGE');
    }
  });
});

describe('host names and targets', () => {
  it.each([
    ['Example.COM.', 'example.com'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['_dmarc.x.test', '_dmarc.x.test'],
  ])('normalizes %s', (raw, name) => {
    expect(normalizeHostname(raw)).toBe(name);
  });
  it.each(['', 'a..b', '-a.b', 'a b', 'a/b', '0x7f.1', '2130706433', '1.2.3.999', 'a.' + 'b'.repeat(64)])('refuses name %j', (raw) => {
    expect(normalizeHostname(raw)).toBeNull();
  });
  it('parses CONNECT authority-form strictly', () => {
    expect(parseConnectTarget('Example.com:443')).toEqual({ host: 'example.com', hostIsIp: false, port: 443 });
    expect(parseConnectTarget('[::ffff:127.0.0.1]:80')).toEqual({ host: '127.0.0.1', hostIsIp: true, port: 80 });
    expect(parseConnectTarget('[2001:DB8::1]:443')).toEqual({ host: '2001:db8::1', hostIsIp: true, port: 443 });
    for (const bad of ['example.com', 'example.com:0', 'example.com:65536', 'user@example.com:443', 'http://example.com:443', 'a b:1', '::1:443', '[::1%lo]:443', '0x7f.1:443', ':443', 'example.com:443/x']) {
      expect(parseConnectTarget(bad), bad).toBeNull();
    }
  });
  it('parses absolute-form request URLs', () => {
    expect(parseProxyRequestUrl('http://Example.com/a/../b?q=1')).toEqual({
      host: 'example.com',
      hostIsIp: false,
      port: 80,
      pathname: '/b',
      requestPath: '/b?q=1',
      hostHeader: 'example.com',
    });
    // WHATWG URL turns odd IPv4 spellings into the address, which is then matched as an IP.
    expect(parseProxyRequestUrl('http://0x7f.1:8080/')).toMatchObject({ host: '127.0.0.1', hostIsIp: true, port: 8080, hostHeader: '127.0.0.1:8080' });
    expect(parseProxyRequestUrl('http://x.test/%2e%2e/etc')).toMatchObject({ pathname: '/etc' });
    for (const bad of ['/relative', 'https://x.test/', 'ftp://x.test/', 'http://user:pw@x.test/', 'http:///x', 'http://x.test:0/', 'http://a$b.test/']) {
      expect(parseProxyRequestUrl(bad), bad).toBeNull();
    }
  });
  it('host patterns reject whitespace and bad IP text', () => {
    expect(parseHostPattern(' x.test').ok).toBe(false);
    expect(parseHostPattern('1.2.3').ok).toBe(false);
  });
});

describe('matchEgress', () => {
  const p = policy({
    allow: [
      { host: 'api.x.test' },
      { host: '*.x.test', ports: [443, 8443] },
      { host: 'plain.test', ports: [80], methods: ['GET'], paths: ['/pub/*', '/index.html'] },
      { host: '127.0.0.1', ports: [9000] },
      { host: '10.1.0.0/16', ports: [443] },
      { host: 'bad.x.test' },
      { host: 'nosni.test', allowMissingSni: true },
      { host: '2606:4700::/32' },
    ],
    deny: [{ host: 'bad.x.test' }, { host: '10.1.2.0/24' }, { host: 'evil.test', ports: [443] }],
  });
  const ask = policy({ approvals: { enabled: true }, allow: [{ host: 'x.test' }] });
  const m = (req: EgressRequest, pol = p) => {
    const d = matchEgress(pol, req);
    return `${d.action} ${d.reason}${d.rule ? ` ${d.rule}` : ''}`;
  };

  it.each<[string, EgressRequest, string]>([
    ['exact name', { host: 'api.x.test', port: 443 }, 'allow allowlisted allow[0] api.x.test'],
    ['exact name, other port', { host: 'api.x.test', port: 80 }, 'deny not-allowlisted'],
    ['wildcard, subdomain', { host: 'a.x.test', port: 8443 }, 'allow allowlisted allow[1] *.x.test'],
    ['wildcard, deep subdomain', { host: 'a.b.x.test', port: 443 }, 'allow allowlisted allow[1] *.x.test'],
    ['wildcard does not match the bare suffix', { host: 'x.test', port: 443 }, 'deny not-allowlisted'],
    ['wildcard does not match a look-alike', { host: 'evilx.test', port: 443 }, 'deny not-allowlisted'],
    ['deny beats allow (name)', { host: 'bad.x.test', port: 443 }, 'deny denied deny[0] bad.x.test'],
    ['deny with ports, other port', { host: 'evil.test', port: 80 }, 'deny not-allowlisted'],
    ['deny with ports, that port', { host: 'evil.test', port: 443 }, 'deny denied deny[2] evil.test'],
    ['unknown name', { host: 'nope.test', port: 443 }, 'deny not-allowlisted'],
    ['name resolving to a public address', { host: 'api.x.test', port: 443, ip: '93.184.216.34' }, 'allow allowlisted allow[0] api.x.test'],
    ['name resolving to loopback', { host: 'api.x.test', port: 443, ip: '127.0.0.1' }, 'deny private-address allow[0] api.x.test'],
    ['name resolving to metadata', { host: 'api.x.test', port: 443, ip: '169.254.169.254' }, 'deny private-address allow[0] api.x.test'],
    ['name resolving to mapped loopback', { host: 'api.x.test', port: 443, ip: '::ffff:127.0.0.1' }, 'deny private-address allow[0] api.x.test'],
    ['name resolving into an allowed CIDR', { host: 'api.x.test', port: 443, ip: '10.1.9.9' }, 'allow allowlisted allow[0] api.x.test + allow[4] 10.1.0.0/16'],
    ['name resolving into a denied CIDR', { host: 'api.x.test', port: 443, ip: '10.1.2.3' }, 'deny denied deny[1] 10.1.2.0/24'],
    ['IP literal named by a rule', { host: '127.0.0.1', port: 9000 }, 'allow allowlisted allow[3] 127.0.0.1'],
    ['IP literal, other port', { host: '127.0.0.1', port: 9001 }, 'deny private-address'],
    ['IP literal in CIDR', { host: '10.1.200.1', port: 443 }, 'allow allowlisted allow[4] 10.1.0.0/16'],
    ['IP literal denied inside an allowed CIDR', { host: '10.1.2.5', port: 443 }, 'deny denied deny[1] 10.1.2.0/24'],
    ['metadata literal', { host: '169.254.169.254', port: 80 }, 'deny private-address'],
    ['public IP literal not listed', { host: '8.8.8.8', port: 443 }, 'deny not-allowlisted'],
    ['public IPv6 in an allowed CIDR', { host: '2606:4700::6810:84e5', port: 443 }, 'allow allowlisted allow[7] 2606:4700::/32'],
    ['plain HTTP rule, method and path match', { host: 'plain.test', port: 80, method: 'GET', path: '/pub/a.tar' }, 'allow allowlisted allow[2] plain.test'],
    ['plain HTTP rule, exact path', { host: 'plain.test', port: 80, method: 'GET', path: '/index.html' }, 'allow allowlisted allow[2] plain.test'],
    ['plain HTTP rule, other method', { host: 'plain.test', port: 80, method: 'POST', path: '/pub/a' }, 'deny not-allowlisted'],
    ['plain HTTP rule, other path', { host: 'plain.test', port: 80, method: 'GET', path: '/private' }, 'deny not-allowlisted'],
    ['plain HTTP rule never matches a tunnel', { host: 'plain.test', port: 80 }, 'deny not-allowlisted'],
    ['a tunnel rule matches plain HTTP too', { host: 'api.x.test', port: 443, method: 'POST', path: '/x' }, 'allow allowlisted allow[0] api.x.test'],
  ])('%s', (_label, req, expected) => {
    expect(m(req)).toBe(expected);
  });

  it('carries allowMissingSni from the rule', () => {
    expect(matchEgress(p, { host: 'nosni.test', port: 443 }).allowMissingSni).toBe(true);
    expect(matchEgress(p, { host: 'api.x.test', port: 443 }).allowMissingSni).toBe(false);
  });

  it('asks instead of refusing when approvals are on', () => {
    expect(m({ host: 'other.test', port: 443 }, ask)).toBe('ask not-allowlisted');
    expect(m({ host: '8.8.8.8', port: 443 }, ask)).toBe('ask not-allowlisted');
    // Private addresses are never asked about: only a rule naming them opens them.
    expect(m({ host: '10.0.0.1', port: 443 }, ask)).toBe('deny private-address');
    expect(m({ host: 'other.test', port: 443, approved: true }, ask)).toBe('allow approved');
    expect(m({ host: 'other.test', port: 443, approved: true, ip: '127.0.0.1' }, ask)).toBe('deny private-address');
  });

  it('mode none refuses everything', () => {
    expect(m({ host: 'api.x.test', port: 443 }, policy({ mode: 'none', allow: [{ host: 'api.x.test' }] }))).toBe('deny network-off');
  });

  it('explains a miss', () => {
    expect(matchEgress(p, { host: 'api.x.test', port: 80 }).detail).toBe('api.x.test is allowed only on ports 443, 8443, not 80');
    expect(matchEgress(p, { host: 'plain.test', port: 80 }).detail).toMatch(/not for CONNECT tunnels/);
    expect(matchEgress(p, { host: 'plain.test', port: 80, method: 'PUT', path: '/pub/x' }).detail).toMatch(/PUT \/pub\/x is not listed/);
  });
});

describe('profiles/default.yaml network section', () => {
  const text = readFileSync(join(import.meta.dirname, '..', '..', 'profiles', 'default.yaml'), 'utf8');

  it('parses, with approvals off so unknown destinations are refused at once', () => {
    const network = NetworkSchema.parse((YAML.parse(text) as { network: unknown }).network);
    expect(network).toEqual({ mode: 'proxy', allow: [], deny: [], approvals: { enabled: false, timeoutMs: 30_000 }, limits: DEFAULT_LIMITS });
    expect(matchEgress(network, { host: 'example.com', port: 443 })).toMatchObject({ action: 'deny', reason: 'not-allowlisted' });
  });

  it('its commented example is a valid policy', () => {
    const lines = text.split('\n');
    const start = lines.findIndex((l) => l.startsWith('# Example:'));
    const example: string[] = [];
    for (const l of lines.slice(start + 1)) {
      if (!l.startsWith('#   ')) break;
      example.push(l.slice(3));
    }
    const network = NetworkSchema.parse(YAML.parse(example.join('\n')));
    expect(network.allow.map((r) => r.host)).toEqual(['api.github.com', '*.githubusercontent.com', 'deb.debian.org', '10.0.0.5']);
    expect(matchEgress(network, { host: 'gist.github.com', port: 443 }).reason).toBe('denied');
  });
});
