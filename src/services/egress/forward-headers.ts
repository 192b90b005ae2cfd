/**
 * The headers a forwarded plain-HTTP request and its response carry on: the other side's minus
 * hop-by-hop ones (RFC 9110 §7.6.1), those the Connection header names included. Pure.
 */

const HOP_BY_HOP = new Set(['connection', 'proxy-connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);

function connectionTokens(raw: string[]): Set<string> {
  const tokens = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase() === 'connection') for (const t of (raw[i + 1] as string).split(',')) tokens.add(t.trim().toLowerCase());
  }
  return tokens;
}

/** Raw headers (name, value, name, value…) without the hop-by-hop ones. */
export function stripHopByHop(raw: string[]): string[] {
  const named = connectionTokens(raw);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = (raw[i] as string).toLowerCase();
    if (HOP_BY_HOP.has(key) || named.has(key)) continue;
    out.push(raw[i] as string, raw[i + 1] as string);
  }
  return out;
}

/** The client's headers minus hop-by-hop ones, with Host taken from the request URL (RFC 9112 §3.2.2). */
export function forwardHeaders(raw: string[], hostHeader: string): string[] {
  return ['Host', hostHeader, ...stripHopByHop(raw)];
}
