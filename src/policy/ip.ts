/**
 * IP addresses as bytes: parsing, CIDR containment and the address classes the proxy refuses
 * unless a rule names the address. Everything here is pure.
 *
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address for every purpose here:
 * the kernel connects to the IPv4 host, so classifying it as IPv6 would let `::ffff:127.0.0.1`
 * slip past a loopback check.
 */

export interface Ip {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

export interface Cidr extends Ip {
  prefix: number;
}

export type IpClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'ula'
  | 'link-local'
  | 'cgnat'
  | 'multicast'
  | 'unspecified'
  | 'metadata'
  | 'reserved';

const V4_PART = /^(0|[1-9][0-9]{0,2})$/;

/** Strict dotted quad: four decimal parts, no leading zeros (`010` is octal to some parsers). */
export function parseIpv4(s: string): Ip | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] as string;
    if (!V4_PART.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    bytes[i] = n;
  }
  return { family: 4, bytes };
}

const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** RFC 4291 text form, with `::` and a trailing dotted quad. Zone ids (`%eth0`) are refused. */
export function parseIpv6(s: string): Ip | null {
  if (s.length < 2 || s.length > 45 || s.includes('%')) return null;
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groupsOf = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i] as string;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIpv4(piece);
        if (!v4) return null;
        const b = v4.bytes;
        out.push(((b[0] as number) << 8) | (b[1] as number), ((b[2] as number) << 8) | (b[3] as number));
      } else {
        if (!V6_GROUP.test(piece)) return null;
        out.push(parseInt(piece, 16));
      }
    }
    return out;
  };
  const head = groupsOf(halves[0] as string);
  const tail = halves.length === 2 ? groupsOf(halves[1] as string) : [];
  if (!head || !tail) return null;
  // An embedded dotted quad is only valid at the very end.
  if (halves.length === 2 && (halves[0] as string).includes('.')) return null;
  const total = head.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return null;
  const groups = [...head, ...new Array<number>(8 - total).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  return { family: 6, bytes };
}

/** Either family; `[v6]` brackets are accepted and stripped. */
export function parseIp(s: string): Ip | null {
  const bare = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
  return bare.includes(':') ? parseIpv6(bare) : parseIpv4(bare);
}

/** `a.b.c.d/n` or `v6/n`. Host bits past the prefix are cleared. */
export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIp(s.slice(0, slash));
  const prefixText = s.slice(slash + 1);
  if (!ip || !/^[0-9]{1,3}$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  if (prefix > ip.bytes.length * 8) return null;
  const bytes = Uint8Array.from(ip.bytes);
  for (let bit = prefix; bit < bytes.length * 8; bit++) bytes[bit >> 3] = (bytes[bit >> 3] as number) & ~(0x80 >> (bit & 7));
  return { family: ip.family, bytes, prefix };
}

/** The IPv4 address an IPv4-mapped IPv6 address stands for; any other address unchanged. */
export function unmapIp(ip: Ip): Ip {
  if (ip.family === 6 && isMapped(ip.bytes)) return { family: 4, bytes: ip.bytes.slice(12) };
  return ip;
}

function isMapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

export function cidrContains(cidr: Cidr, address: Ip): boolean {
  const ip = unmapIp(address);
  const net = unmapCidr(cidr);
  if (ip.family !== net.family) return false;
  const full = net.prefix >> 3;
  for (let i = 0; i < full; i++) if (ip.bytes[i] !== net.bytes[i]) return false;
  const rest = net.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((ip.bytes[full] as number) & mask) === ((net.bytes[full] as number) & mask);
}

function unmapCidr(c: Cidr): Cidr {
  if (c.family === 6 && c.prefix >= 96 && isMapped(c.bytes)) return { family: 4, bytes: c.bytes.slice(12), prefix: c.prefix - 96 };
  return c;
}

export function ipEquals(a: Ip, b: Ip): boolean {
  const x = unmapIp(a);
  const y = unmapIp(b);
  return x.family === y.family && x.bytes.every((v, i) => v === y.bytes[i]);
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run compressed). */
export function formatIp(address: Ip): string {
  const ip = unmapIp(address);
  if (ip.family === 4) return Array.from(ip.bytes).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(((ip.bytes[i * 2] as number) << 8) | (ip.bytes[i * 2 + 1] as number));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function table(rows: [string, IpClass][]): [Cidr, IpClass][] {
  return rows.map(([text, cls]) => {
    const c = parseCidr(text);
    if (!c) throw new Error(`bad built-in CIDR ${text}`);
    return [c, cls];
  });
}

// Cloud instance-metadata and platform endpoints: credentials live behind these.
const METADATA = ['169.254.169.254', '169.254.170.2', '169.254.169.253', '169.254.169.123', '100.100.100.200', 'fd00:ec2::254', 'fd00:ec2::23'].map(
  (t) => parseIp(t) as Ip,
);

// Checked in order; the first containing range wins, so narrower ranges come first.
const V4_CLASSES = table([
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'cgnat'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'],
  ['192.0.2.0/24', 'reserved'],
  ['192.88.99.0/24', 'reserved'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'],
  ['198.51.100.0/24', 'reserved'],
  ['203.0.113.0/24', 'reserved'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
]);

const V6_CLASSES = table([
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['64:ff9b:1::/48', 'private'],
  ['::/96', 'reserved'],
  ['100::/64', 'reserved'],
  ['2001:db8::/32', 'reserved'],
  ['2001::/32', 'reserved'],
  ['fc00::/7', 'ula'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'private'],
  ['ff00::/8', 'multicast'],
]);

const NAT64 = parseCidr('64:ff9b::/96') as Cidr;
const SIX_TO_FOUR = parseCidr('2002::/16') as Cidr;
const GLOBAL_UNICAST = parseCidr('2000::/3') as Cidr;

/**
 * The class of an address. Only `public` is reachable without a rule naming the address.
 * NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are classified by the IPv4 address they
 * carry, since a gateway delivers them there.
 */
export function classifyIp(address: Ip): IpClass {
  const ip = unmapIp(address);
  if (METADATA.some((m) => ipEquals(m, ip))) return 'metadata';
  if (ip.family === 4) {
    for (const [net, cls] of V4_CLASSES) if (cidrContains(net, ip)) return cls;
    return 'public';
  }
  if (cidrContains(NAT64, ip)) return classifyIp({ family: 4, bytes: ip.bytes.slice(12) });
  if (cidrContains(SIX_TO_FOUR, ip)) return classifyIp({ family: 4, bytes: ip.bytes.slice(2, 6) });
  for (const [net, cls] of V6_CLASSES) if (cidrContains(net, ip)) return cls;
  return cidrContains(GLOBAL_UNICAST, ip) ? 'public' : 'reserved';
}
