import { normalizeHostname } from '../../policy/host.js';
import { TLS_PORTS } from '../../policy/addresses.js';

/**
 * TLS ClientHello inspection for CONNECT tunnels. Pure.
 *
 * The proxy never decrypts a tunnel; it only reads the server_name the client puts in clear text
 * in its first TLS message, so a tunnel opened to an allowed name cannot carry a handshake for a
 * different virtual host on the same address (domain fronting).
 */

/** A ClientHello larger than this is refused rather than buffered (real ones are a few KiB). */
export const MAX_CLIENT_HELLO_BYTES = 32 * 1024;

export type ClientHelloScan =
  | { kind: 'need-more' }
  | { kind: 'not-tls' }
  | { kind: 'malformed'; why: string }
  | { kind: 'client-hello'; sni: string | null };

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;
const MAX_RECORD = (1 << 14) + 2048;

/**
 * Reads the first client bytes of a tunnel. A ClientHello may be split across TLS records and
 * TCP segments; `need-more` asks the caller to append the next chunk and call again.
 */
export function scanClientHello(buf: Uint8Array): ClientHelloScan {
  if (buf.length === 0) return { kind: 'need-more' };
  if (buf[0] !== RECORD_HANDSHAKE) return { kind: 'not-tls' };
  if (buf.length >= 2 && buf[1] !== 0x03) return { kind: 'not-tls' };
  // Reassemble the handshake stream from consecutive handshake records.
  const parts: Uint8Array[] = [];
  let have = 0;
  let need = -1;
  let off = 0;
  for (;;) {
    if (buf.length < off + 5) return tooBig(buf) ?? { kind: 'need-more' };
    if (buf[off] !== RECORD_HANDSHAKE) return { kind: 'malformed', why: 'ClientHello interrupted by a non-handshake record' };
    if (buf[off + 1] !== 0x03) return { kind: 'malformed', why: 'bad record version' };
    const len = u16(buf, off + 3);
    if (len === 0 || len > MAX_RECORD) return { kind: 'malformed', why: 'bad record length' };
    if (buf.length < off + 5 + len) return tooBig(buf) ?? { kind: 'need-more' };
    parts.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (need < 0 && have >= 4) {
      const hs = concat(parts, 4);
      if (hs[0] !== HANDSHAKE_CLIENT_HELLO) return { kind: 'malformed', why: 'first handshake message is not a ClientHello' };
      need = 4 + ((hs[1] as number) << 16) + ((hs[2] as number) << 8) + (hs[3] as number);
      if (need > MAX_CLIENT_HELLO_BYTES) return { kind: 'malformed', why: 'ClientHello too large' };
    }
    if (need >= 0 && have >= need) return parseClientHelloBody(concat(parts, need).subarray(4));
  }
}

function tooBig(buf: Uint8Array): ClientHelloScan | null {
  return buf.length > MAX_CLIENT_HELLO_BYTES + 64 ? { kind: 'malformed', why: 'ClientHello too large' } : null;
}

function u16(b: Uint8Array, o: number): number {
  return ((b[o] as number) << 8) | (b[o + 1] as number);
}

function concat(parts: Uint8Array[], limit: number): Uint8Array {
  const out = new Uint8Array(Math.min(limit, parts.reduce((n, p) => n + p.length, 0)));
  let o = 0;
  for (const p of parts) {
    if (o >= out.length) break;
    const take = Math.min(p.length, out.length - o);
    out.set(p.subarray(0, take), o);
    o += take;
  }
  return out;
}

function parseClientHelloBody(b: Uint8Array): ClientHelloScan {
  const bad = (why: string): ClientHelloScan => ({ kind: 'malformed', why });
  let o = 2 + 32; // legacy_version, random
  if (b.length < o + 1) return bad('truncated ClientHello');
  const sid = b[o] as number;
  if (sid > 32) return bad('bad session id length');
  o += 1 + sid;
  if (b.length < o + 2) return bad('truncated ClientHello');
  const suites = u16(b, o);
  if (suites === 0 || suites % 2 !== 0) return bad('bad cipher suites length');
  o += 2 + suites;
  if (b.length < o + 1) return bad('truncated ClientHello');
  o += 1 + (b[o] as number);
  if (o > b.length) return bad('truncated ClientHello');
  if (o === b.length) return { kind: 'client-hello', sni: null };
  if (b.length < o + 2) return bad('truncated extensions');
  const extEnd = o + 2 + u16(b, o);
  if (extEnd !== b.length) return bad('extensions length does not match the message');
  o += 2;
  let sni: string | null = null;
  let seenSni = false;
  while (o < extEnd) {
    if (extEnd < o + 4) return bad('truncated extension');
    const type = u16(b, o);
    const len = u16(b, o + 2);
    o += 4;
    if (extEnd < o + len) return bad('truncated extension');
    if (type === EXT_SERVER_NAME) {
      // Two server_name extensions could be read differently by us and by the server.
      if (seenSni) return bad('duplicate server_name extension');
      seenSni = true;
      const parsed = parseServerName(b.subarray(o, o + len));
      if (parsed === undefined) return bad('bad server_name extension');
      sni = parsed;
    }
    o += len;
  }
  return { kind: 'client-hello', sni };
}

/** The host_name entry, null for an empty list, undefined when malformed. */
function parseServerName(e: Uint8Array): string | null | undefined {
  if (e.length === 0) return null;
  if (e.length < 2 || u16(e, 0) !== e.length - 2) return undefined;
  let o = 2;
  let name: string | null = null;
  while (o < e.length) {
    if (e.length < o + 3) return undefined;
    const type = e[o] as number;
    const len = u16(e, o + 1);
    o += 3;
    if (e.length < o + len || len === 0) return undefined;
    if (type === 0) {
      if (name !== null) return undefined;
      const raw = Buffer.from(e.subarray(o, o + len)).toString('latin1');
      const normalized = normalizeHostname(raw);
      if (!normalized || normalized !== raw.toLowerCase().replace(/\.$/, '')) return undefined;
      name = normalized;
    }
    o += len;
  }
  return name;
}

export type TunnelCheck = { ok: true } | { ok: false; reason: 'sni-mismatch'; detail: string };

/**
 * Whether a tunnel may carry what the client sent first.
 * - A ClientHello (on any port) must name the CONNECT host; to an IP literal it must name none.
 * - No SNI to a name is refused unless the rule says `allowMissingSni`; on a TLS port, bytes
 *   that are not TLS count as no SNI.
 * - Anything else on a non-TLS port passes: the host check already happened on the address.
 */
export function checkTunnelStart(
  scan: Exclude<ClientHelloScan, { kind: 'need-more' }>,
  dest: { host: string; hostIsIp: boolean; port: number; allowMissingSni: boolean },
): TunnelCheck {
  const missing = (what: string): TunnelCheck =>
    dest.hostIsIp || dest.allowMissingSni ? { ok: true } : { ok: false, reason: 'sni-mismatch', detail: `${what}; the rule for ${dest.host} does not set allowMissingSni` };
  switch (scan.kind) {
    case 'malformed':
      return { ok: false, reason: 'sni-mismatch', detail: `malformed TLS ClientHello (${scan.why})` };
    case 'not-tls':
      return TLS_PORTS.has(dest.port) ? missing(`port ${dest.port} expects TLS but the client did not start a TLS handshake`) : { ok: true };
    case 'client-hello':
      if (scan.sni === null) return missing('TLS ClientHello without SNI');
      if (dest.hostIsIp) return { ok: false, reason: 'sni-mismatch', detail: `TLS SNI ${scan.sni} on a tunnel to the IP address ${dest.host}` };
      if (scan.sni !== dest.host) return { ok: false, reason: 'sni-mismatch', detail: `TLS SNI ${scan.sni} does not match the CONNECT host ${dest.host}` };
      return { ok: true };
  }
}
