import { normalizeHostname } from '../../policy/host.js';
import { formatIp, parseIp } from '../../policy/ip.js';

/**
 * Where a proxied request wants to go, parsed strictly. Pure. The host comes out canonical: a
 * lowercase ASCII name, or an IP in canonical text (IPv4-mapped IPv6 unmapped), so that policy
 * matching and logging see one spelling per destination.
 */
export interface Target {
  host: string;
  hostIsIp: boolean;
  port: number;
}

export interface HttpTarget extends Target {
  /** Path and query as sent upstream. */
  requestPath: string;
  /** Path alone, dot segments resolved, for `paths` rules. */
  pathname: string;
  /** The Host header to send upstream (the URL's authority, default port left out). */
  hostHeader: string;
}

function canonicalHost(raw: string): { host: string; hostIsIp: boolean } | null {
  const ip = parseIp(raw);
  if (ip) return { host: formatIp(ip), hostIsIp: true };
  if (raw.startsWith('[')) return null;
  const name = normalizeHostname(raw);
  return name ? { host: name, hostIsIp: false } : null;
}

function parsePort(text: string): number | null {
  if (!/^[0-9]{1,5}$/.test(text)) return null;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : null;
}

/** CONNECT's authority-form: `host:port` or `[v6]:port`; nothing else (no userinfo, no path). */
export function parseConnectTarget(authority: string): Target | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$/.exec(authority);
  if (!m) return null;
  const port = parsePort(m[2] as string);
  const host = canonicalHost(m[1] as string);
  if (!port || !host) return null;
  return { ...host, port };
}

/** The absolute-form `http://host[:port]/path?query` of a request sent to a forward proxy. */
export function parseProxyRequestUrl(url: string): HttpTarget | null {
  // `http:///x` is repaired to `http://x/` by URL parsers; an empty authority is an error here.
  if (!/^http:\/\/[^/?#\\]/i.test(url) || url.length > 16 * 1024) return null;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' || u.username || u.password || u.hostname === '') return null;
  const host = canonicalHost(u.hostname);
  const port = u.port === '' ? 80 : parsePort(u.port);
  if (!host || !port) return null;
  const pathname = u.pathname || '/';
  return { ...host, port, pathname, requestPath: pathname + u.search, hostHeader: u.host };
}
