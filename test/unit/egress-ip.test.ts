import { describe, expect, it } from 'vitest';
import { cidrContains, classifyIp, formatIp, parseCidr, parseIp, type Ip } from '../../src/policy/ip.js';

const ip = (s: string): Ip => {
  const parsed = parseIp(s);
  if (!parsed) throw new Error(`test address ${s} does not parse`);
  return parsed;
};

describe('parseIp', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::1', '::1'],
    ['[::1]', '::1'],
    ['::', '::'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['::ffff:7f00:1', '127.0.0.1'],
    ['64:ff9b::10.0.0.1', '64:ff9b::a00:1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ])('%s → %s', (text, canonical) => {
    expect(formatIp(ip(text))).toBe(canonical);
  });

  it.each([
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4', // leading zero: octal to inet_aton
    '0x7f.0.0.1',
    '2130706433',
    '1.2.3.4 ',
    'fe80::1%eth0', // zone ids are refused
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '12345::',
    '::1.2.3',
    '1.2.3.4::',
    ':::',
  ])('refuses %j', (text) => {
    expect(parseIp(text)).toBeNull();
  });
});

describe('parseCidr / cidrContains', () => {
  it('masks host bits and matches by prefix', () => {
    const c = parseCidr('10.1.2.3/8');
    expect(c && formatIp(c)).toBe('10.0.0.0');
    expect(cidrContains(c!, ip('10.255.0.1'))).toBe(true);
    expect(cidrContains(c!, ip('11.0.0.1'))).toBe(false);
  });
  it('matches odd prefixes', () => {
    const c = parseCidr('100.64.0.0/10')!;
    expect(cidrContains(c, ip('100.127.255.255'))).toBe(true);
    expect(cidrContains(c, ip('100.128.0.0'))).toBe(false);
  });
  it('an IPv4 CIDR contains the IPv4-mapped IPv6 form of its addresses', () => {
    expect(cidrContains(parseCidr('127.0.0.0/8')!, ip('::ffff:127.9.9.9'))).toBe(true);
  });
  it('families do not mix otherwise', () => {
    expect(cidrContains(parseCidr('::/0')!, ip('1.2.3.4'))).toBe(false);
    expect(cidrContains(parseCidr('0.0.0.0/0')!, ip('2001:db8::1'))).toBe(false);
  });
  it.each(['10.0.0.0/33', '::/129', '10.0.0.0/', '/8', '10.0.0/8', '10.0.0.0/-1', '10.0.0.0/08x'])('refuses %j', (t) => {
    expect(parseCidr(t)).toBeNull();
  });
});

describe('classifyIp', () => {
  it.each([
    ['8.8.8.8', 'public'],
    ['1.1.1.1', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.168.1.1', 'private'],
    ['::ffff:192.168.1.1', 'private'],
    ['fc00::1', 'ula'],
    ['fd12:3456::1', 'ula'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['100.64.0.1', 'cgnat'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['169.254.169.254', 'metadata'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['169.254.170.2', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['fd00:ec2::254', 'metadata'],
    ['255.255.255.255', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['2001:db8::1', 'reserved'],
    ['64:ff9b::7f00:1', 'loopback'], // NAT64 of 127.0.0.1
    ['64:ff9b::808:808', 'public'], // NAT64 of 8.8.8.8
    ['2002:a9fe:a9fe::1', 'metadata'], // 6to4 of 169.254.169.254
    ['::7f00:1', 'reserved'], // IPv4-compatible, deprecated
    ['4000::1', 'reserved'], // outside global unicast
  ])('%s is %s', (text, cls) => {
    expect(classifyIp(ip(text))).toBe(cls);
  });
});
