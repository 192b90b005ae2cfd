import { domainToASCII } from 'node:url';
import { parseCidr, parseIp, type Cidr, type Ip } from './ip.js';

/**
 * Host names and the host patterns of allow/deny rules. Pure.
 *
 * A rule's `host` is one of:
 * - an exact name (`api.github.com`), compared case-insensitively, trailing dot ignored;
 * - `*.suffix` (`*.github.com`): any name ending in `.suffix`, at any depth, never `suffix`
 *   itself; the suffix needs at least two labels (`*.com` would allow a whole TLD);
 * - an IP literal (`127.0.0.1`, `::1`) or CIDR (`10.0.0.0/8`): matched against the address the
 *   proxy connects to. These are the only way to reach loopback, private, link-local or
 *   metadata addresses.
 */
export type HostPattern =
  | { kind: 'name'; name: string }
  | { kind: 'wildcard'; suffix: string }
  | { kind: 'ip'; ip: Ip }
  | { kind: 'cidr'; cidr: Cidr };

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Lowercase ASCII form of a DNS name (IDN converted to punycode, one trailing dot dropped), or
 * null when it is not a plausible host name. Underscores are accepted: real hosts use them.
 */
export function normalizeHostname(input: string): string | null {
  if (input.length === 0 || input.length > 254) return null;
  let name = input.endsWith('.') ? input.slice(0, -1) : input;
  // eslint-disable-next-line no-control-regex
  if (/[^\x21-\x7e]/.test(name)) {
    name = domainToASCII(name);
    if (!name) return null;
  }
  name = name.toLowerCase();
  if (name.length === 0 || name.length > 253) return null;
  const labels = name.split('.');
  if (!labels.every((l) => LABEL.test(l))) return null;
  // A numeric last label makes it IPv4 in some notation (0x7f.1, 2130706433) to URL parsers and
  // getaddrinfo alike: never a name. No top-level domain is numeric.
  if (/^(0x[0-9a-f]*|[0-9]+)$/.test(labels[labels.length - 1] as string)) return null;
  return name;
}

export function parseHostPattern(input: string): Parsed<HostPattern> {
  const text = input.trim();
  if (text !== input || text.length === 0) return { ok: false, message: `host ${JSON.stringify(input)} must be a non-empty name, *.suffix, IP or CIDR without spaces` };
  if (text.includes('/')) {
    const cidr = parseCidr(text);
    if (!cidr) return { ok: false, message: `host ${JSON.stringify(input)} looks like a CIDR but is not one; write e.g. 10.0.0.0/8 or fd00::/8` };
    return { ok: true, value: { kind: 'cidr', cidr } };
  }
  if (text.startsWith('[') || text.includes(':') || /^[0-9.]+$/.test(text)) {
    const ip = parseIp(text);
    if (!ip) {
      const hint = /:[0-9]+$/.test(text) && !text.includes('::') ? '; put the port in `ports`, not in `host`' : '';
      return { ok: false, message: `host ${JSON.stringify(input)} is not a valid IP address${hint}` };
    }
    return { ok: true, value: { kind: 'ip', ip } };
  }
  if (text.startsWith('*.')) {
    const suffix = normalizeHostname(text.slice(2));
    if (!suffix) return { ok: false, message: `host ${JSON.stringify(input)}: the part after "*." is not a valid host name` };
    if (!suffix.includes('.')) {
      return {
        ok: false,
        message: `host ${JSON.stringify(input)} would allow every name under the top-level domain ".${suffix}"; wildcards need at least two labels after "*." (e.g. "*.example.${suffix}")`,
      };
    }
    return { ok: true, value: { kind: 'wildcard', suffix } };
  }
  if (text.includes('*')) {
    return { ok: false, message: `host ${JSON.stringify(input)}: "*" is only allowed as a leading "*." (e.g. "*.example.com", which matches a.example.com but not example.com)` };
  }
  const name = normalizeHostname(text);
  if (!name) return { ok: false, message: `host ${JSON.stringify(input)} is not a valid host name` };
  return { ok: true, value: { kind: 'name', name } };
}

/** Name patterns match names only; IP/CIDR patterns never match a name (and vice versa). */
export function nameMatches(pattern: HostPattern, name: string): boolean {
  if (pattern.kind === 'name') return pattern.name === name;
  if (pattern.kind === 'wildcard') return name.length > pattern.suffix.length + 1 && name.endsWith('.' + pattern.suffix);
  return false;
}
