import type { AllowRule, DenyRule, NetworkConfig } from '../../profile/network.js';
import { nameMatches, parseHostPattern, type HostPattern } from '../../policy/host.js';
import { cidrContains, classifyIp, ipEquals, parseIp, type Ip, type IpClass } from '../../policy/ip.js';

/**
 * The egress decision, as a pure function of the policy and one destination.
 *
 * Order: mode → deny rules (names against the name, IPs/CIDRs against the address) → allow
 * rules. A name is matched only by name rules and an IP literal only by IP/CIDR rules. Once the
 * name is allowed (or approved), each address it resolved to must be public, or be named by an
 * IP/CIDR allow rule that also covers the port; otherwise `private-address`.
 *
 * Called twice per connection by the proxy: first without `ip`, before any DNS query (an
 * unknown name is never resolved, so DNS cannot be used to leak data or to probe), then once per
 * resolved address with `ip` set.
 */

export type EgressAction = 'allow' | 'deny' | 'ask';

export type EgressReason = 'allowlisted' | 'approved' | 'not-allowlisted' | 'denied' | 'private-address' | 'network-off';

export interface EgressRequest {
  /** Canonical host (lowercase name, or canonical IP text). */
  host: string;
  port: number;
  /** The address the proxy is about to connect to, once resolved. */
  ip?: string;
  /** Present only for plain-HTTP requests the proxy forwards; absent for CONNECT tunnels. */
  method?: string;
  /** Path without the query, for plain-HTTP requests. */
  path?: string;
  /** An operator approved this host:port for this request. */
  approved?: boolean;
}

export interface EgressDecision {
  action: EgressAction;
  reason: EgressReason;
  /** The rule that decided, e.g. `allow[2] *.example.com` or `deny[0] 10.0.0.0/8`. */
  rule?: string;
  /** For people: why, in one line. */
  detail: string;
  /** From the allow rule that matched a tunnel. */
  allowMissingSni?: boolean;
  ipClass?: IpClass;
}

interface CompiledAllow {
  label: string;
  pattern: HostPattern;
  ports: ReadonlySet<number>;
  methods?: ReadonlySet<string>;
  paths?: readonly string[];
  allowMissingSni: boolean;
}

interface CompiledDeny {
  label: string;
  pattern: HostPattern;
  ports?: ReadonlySet<number>;
}

interface CompiledPolicy {
  mode: NetworkConfig['mode'];
  approvals: boolean;
  allow: CompiledAllow[];
  deny: CompiledDeny[];
}

const cache = new WeakMap<NetworkConfig, CompiledPolicy>();

function patternOf(host: string, label: string): HostPattern {
  const parsed = parseHostPattern(host);
  // The schema refuses bad hosts at load; a policy built in code gets the same message here.
  if (!parsed.ok) throw new TypeError(`${label}: ${parsed.message}`);
  return parsed.value;
}

function compile(policy: NetworkConfig): CompiledPolicy {
  let c = cache.get(policy);
  if (c) return c;
  c = {
    mode: policy.mode,
    approvals: policy.approvals?.enabled === true,
    allow: (policy.allow ?? []).map((r: AllowRule, i) => {
      const label = `allow[${i}] ${r.host}`;
      const rule: CompiledAllow = { label, pattern: patternOf(r.host, label), ports: new Set(r.ports ?? [443]), allowMissingSni: r.allowMissingSni === true };
      if (r.methods) rule.methods = new Set(r.methods);
      if (r.paths) rule.paths = r.paths;
      return rule;
    }),
    deny: (policy.deny ?? []).map((r: DenyRule, i) => {
      const label = `deny[${i}] ${r.host}`;
      const rule: CompiledDeny = { label, pattern: patternOf(r.host, label) };
      if (r.ports) rule.ports = new Set(r.ports);
      return rule;
    }),
  };
  cache.set(policy, c);
  return c;
}

function addressMatches(pattern: HostPattern, ip: Ip): boolean {
  if (pattern.kind === 'ip') return ipEquals(pattern.ip, ip);
  if (pattern.kind === 'cidr') return cidrContains(pattern.cidr, ip);
  return false;
}

export function pathMatches(patterns: readonly string[], path: string): boolean {
  return patterns.some((p) => (p.endsWith('*') ? path.startsWith(p.slice(0, -1)) : path === p));
}

/** Whether an allow rule's method/path constraints admit the request (ignores host and port). */
function requestMatches(rule: CompiledAllow, req: EgressRequest): boolean {
  if (!rule.methods && !rule.paths) return true;
  // A plain-HTTP rule never matches a tunnel: its content is invisible to the proxy.
  if (req.method === undefined) return false;
  if (rule.methods && !rule.methods.has(req.method)) return false;
  if (rule.paths && !pathMatches(rule.paths, req.path ?? '/')) return false;
  return true;
}

const where = (req: EgressRequest): string => `${req.host.includes(':') ? `[${req.host}]` : req.host}:${req.port}`;

export function matchEgress(policy: NetworkConfig, req: EgressRequest): EgressDecision {
  const p = compile(policy);
  const dest = where(req);
  if (p.mode === 'none') return { action: 'deny', reason: 'network-off', detail: 'network mode is none: no egress' };

  const literal = parseIp(req.host);
  const address = literal ?? (req.ip !== undefined ? parseIp(req.ip) : null);
  if (req.ip !== undefined && !address) return { action: 'deny', reason: 'private-address', detail: `unparseable address ${req.ip}` };

  for (const d of p.deny) {
    if (d.ports && !d.ports.has(req.port)) continue;
    const hit = literal ? addressMatches(d.pattern, literal) : nameMatches(d.pattern, req.host) || (address !== null && addressMatches(d.pattern, address));
    if (hit) return { action: 'deny', reason: 'denied', rule: d.label, detail: `${dest} is refused by ${d.label}` };
  }

  const ipAllow = (ip: Ip): CompiledAllow | undefined => p.allow.find((r) => r.ports.has(req.port) && addressMatches(r.pattern, ip) && requestMatches(r, req));
  const notAllowed = (detail: string): EgressDecision => ({ action: p.approvals ? 'ask' : 'deny', reason: 'not-allowlisted', detail });

  if (literal) {
    const cls = classifyIp(literal);
    const rule = ipAllow(literal);
    if (rule) return { action: 'allow', reason: 'allowlisted', rule: rule.label, detail: `${dest} allowed by ${rule.label}`, allowMissingSni: rule.allowMissingSni, ipClass: cls };
    if (cls !== 'public') {
      return { action: 'deny', reason: 'private-address', ipClass: cls, detail: `${dest} is a ${cls} address; only an allow rule naming this IP or its CIDR (with this port) reaches it` };
    }
    if (req.approved) return { action: 'allow', reason: 'approved', detail: `${dest} approved by the operator`, ipClass: cls };
    return notAllowed(describeMiss(p, req, literal));
  }

  let nameRule: CompiledAllow | undefined;
  if (!req.approved) {
    nameRule = p.allow.find((r) => r.ports.has(req.port) && nameMatches(r.pattern, req.host) && requestMatches(r, req));
    if (!nameRule) return notAllowed(describeMiss(p, req, null));
  }
  const base: EgressDecision = nameRule
    ? { action: 'allow', reason: 'allowlisted', rule: nameRule.label, detail: `${dest} allowed by ${nameRule.label}`, allowMissingSni: nameRule.allowMissingSni }
    : { action: 'allow', reason: 'approved', detail: `${dest} approved by the operator`, allowMissingSni: false };
  if (!address) return base;

  const cls = classifyIp(address);
  if (cls === 'public') return { ...base, ipClass: cls };
  const viaIp = ipAllow(address);
  if (viaIp) return { ...base, ipClass: cls, rule: `${base.rule ?? 'approval'} + ${viaIp.label}` };
  return {
    action: 'deny',
    reason: 'private-address',
    ipClass: cls,
    ...(base.rule !== undefined ? { rule: base.rule } : {}),
    detail: `${req.host} resolved to ${req.ip}, a ${cls} address; add an allow rule naming that IP or CIDR (with port ${req.port}) to reach it`,
  };
}

/** A helpful line for a miss: the host is allowed elsewhere, or only for some methods/paths. */
function describeMiss(p: CompiledPolicy, req: EgressRequest, literal: Ip | null): string {
  const dest = where(req);
  const sameHost = p.allow.filter((r) => (literal ? addressMatches(r.pattern, literal) : nameMatches(r.pattern, req.host)));
  if (sameHost.length === 0) return `no allow rule matches ${req.host}`;
  const onPort = sameHost.filter((r) => r.ports.has(req.port));
  if (onPort.length === 0) {
    const ports = [...new Set(sameHost.flatMap((r) => [...r.ports]))].sort((a, b) => a - b);
    return `${req.host} is allowed only on port${ports.length > 1 ? 's' : ''} ${ports.join(', ')}, not ${req.port}`;
  }
  if (req.method === undefined) return `${dest} is allowed only for plain-HTTP requests with given methods/paths, not for CONNECT tunnels`;
  return `${dest} is allowed only for other methods/paths (${req.method} ${req.path ?? '/'} is not listed)`;
}
