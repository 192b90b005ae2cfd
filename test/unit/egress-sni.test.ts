import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { checkTunnelStart, scanClientHello, type ClientHelloScan } from '../../src/services/egress/sni.js';

/** The first bytes a real TLS client (Node's OpenSSL) sends, captured on a loopback socket. */
async function captureClientHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const got = new Promise<Buffer>((resolve) => {
    server.once('connection', (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        const all = Buffer.concat(chunks);
        if (scanClientHello(all).kind !== 'need-more') {
          resolve(all);
          s.destroy();
        }
      });
    });
  });
  const client = tls.connect({ host: '127.0.0.1', port, ...options });
  client.on('error', () => undefined);
  const bytes = await got;
  client.destroy();
  server.close();
  return bytes;
}

function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

/** A minimal, well-formed ClientHello with the given extensions. */
function clientHello(extensions: number[][]): Buffer {
  const ext = extensions.flat();
  const body = [0x03, 0x03, ...new Array<number>(32).fill(7), 0, ...u16(2), 0x13, 0x01, 1, 0, ...u16(ext.length), ...ext];
  const hs = [0x01, 0, ...u16(body.length), ...body];
  return Buffer.from([0x16, 0x03, 0x01, ...u16(hs.length), ...hs]);
}

function sniExt(...names: string[]): number[] {
  const entries = names.flatMap((n) => [0, ...u16(n.length), ...Buffer.from(n, 'latin1')]);
  const list = [...u16(entries.length), ...entries];
  return [...u16(0), ...u16(list.length), ...list];
}

const alpn = [...u16(16), ...u16(5), ...u16(3), 2, 0x68, 0x32]; // "h2"

describe('scanClientHello on real clients', () => {
  it('reads the SNI Node sends', async () => {
    const bytes = await captureClientHello({ servername: 'Upstream.Example.test' });
    expect(scanClientHello(bytes)).toEqual({ kind: 'client-hello', sni: 'upstream.example.test' });
  });

  it('sees no SNI when the client sends none', async () => {
    const bytes = await captureClientHello({ servername: '' });
    expect(scanClientHello(bytes)).toEqual({ kind: 'client-hello', sni: null });
  });

  it('asks for more on every prefix of a real ClientHello, then answers', async () => {
    const bytes = await captureClientHello({ servername: 'a.test' });
    for (let n = 0; n < bytes.length; n++) expect(scanClientHello(bytes.subarray(0, n)).kind, `prefix ${n}`).toBe('need-more');
    expect(scanClientHello(bytes)).toEqual({ kind: 'client-hello', sni: 'a.test' });
  });

  it('reassembles a ClientHello split across TLS records', async () => {
    const bytes = await captureClientHello({ servername: 'split.test' });
    const hs = bytes.subarray(5);
    const cut = 40;
    const rec = (part: Buffer): Buffer => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, ...u16(part.length)]), part]);
    const twoRecords = Buffer.concat([rec(hs.subarray(0, cut)), rec(hs.subarray(cut))]);
    expect(scanClientHello(twoRecords)).toEqual({ kind: 'client-hello', sni: 'split.test' });
  });
});

describe('scanClientHello on crafted input', () => {
  it.each<[string, Buffer, ClientHelloScan['kind']]>([
    ['empty', Buffer.alloc(0), 'need-more'],
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\n'), 'not-tls'],
    ['SSH banner', Buffer.from('SSH-2.0-OpenSSH_9\r\n'), 'not-tls'],
    ['0x16 then not TLS', Buffer.from([0x16, 0x01, 0x00]), 'not-tls'],
    ['zero-length record', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00]), 'malformed'],
    ['oversized record', Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]), 'malformed'],
    ['not a ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00]), 'malformed'],
    ['huge declared handshake', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff]), 'malformed'],
    ['alert record after start', Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x01, 0x00]), Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 2, 40])]), 'malformed'],
  ])('%s → %s', (_label, bytes, kind) => {
    expect(scanClientHello(bytes).kind).toBe(kind);
  });

  it('finds the SNI among other extensions', () => {
    expect(scanClientHello(clientHello([alpn, sniExt('x.test'), alpn.slice(0)]))).toEqual({ kind: 'client-hello', sni: 'x.test' });
  });

  it('refuses two server_name extensions (parsers could disagree on which counts)', () => {
    expect(scanClientHello(clientHello([sniExt('good.test'), sniExt('evil.test')])).kind).toBe('malformed');
  });

  it('refuses two host names in one server_name extension', () => {
    expect(scanClientHello(clientHello([sniExt('good.test', 'evil.test')])).kind).toBe('malformed');
  });

  it('refuses a server name that is not a host name', () => {
    expect(scanClientHello(clientHello([sniExt('good.test\0evil.test')])).kind).toBe('malformed');
    expect(scanClientHello(clientHello([sniExt('a b.test')])).kind).toBe('malformed');
  });

  it('refuses an extension that overruns the message', () => {
    const bytes = clientHello([sniExt('x.test')]);
    bytes[bytes.length - 8] = 0xff; // inflate the host_name length
    expect(scanClientHello(bytes).kind).toBe('malformed');
  });

  it('survives random bytes after a handshake header', () => {
    for (let i = 0; i < 2000; i++) {
      const len = 1 + Math.floor(Math.random() * 300);
      const junk = Buffer.from(Array.from({ length: len }, () => Math.floor(Math.random() * 256)));
      const hs = Buffer.concat([Buffer.from([0x01, 0x00, ...u16(len)]), junk]);
      const rec = Buffer.concat([Buffer.from([0x16, 0x03, 0x03, ...u16(hs.length)]), hs]);
      const r = scanClientHello(rec);
      expect(['malformed', 'client-hello']).toContain(r.kind);
    }
  });
});

describe('checkTunnelStart', () => {
  const name = { host: 'api.x.test', hostIsIp: false, port: 443, allowMissingSni: false };
  it.each<[string, Exclude<ClientHelloScan, { kind: 'need-more' }>, typeof name, boolean]>([
    ['matching SNI', { kind: 'client-hello', sni: 'api.x.test' }, name, true],
    ['other SNI (fronting)', { kind: 'client-hello', sni: 'evil.test' }, name, false],
    ['no SNI to a name', { kind: 'client-hello', sni: null }, name, false],
    ['no SNI, rule allows it', { kind: 'client-hello', sni: null }, { ...name, allowMissingSni: true }, true],
    ['other SNI even when missing SNI is allowed', { kind: 'client-hello', sni: 'evil.test' }, { ...name, allowMissingSni: true }, false],
    ['not TLS on 443', { kind: 'not-tls' }, name, false],
    ['not TLS on 443, rule allows missing SNI', { kind: 'not-tls' }, { ...name, allowMissingSni: true }, true],
    ['not TLS on 5432', { kind: 'not-tls' }, { ...name, port: 5432 }, true],
    ['TLS on 5432 with other SNI', { kind: 'client-hello', sni: 'evil.test' }, { ...name, port: 5432 }, false],
    ['IP literal, no SNI', { kind: 'client-hello', sni: null }, { host: '10.0.0.1', hostIsIp: true, port: 443, allowMissingSni: false }, true],
    ['IP literal with an SNI', { kind: 'client-hello', sni: 'evil.test' }, { host: '10.0.0.1', hostIsIp: true, port: 443, allowMissingSni: false }, false],
    ['malformed', { kind: 'malformed', why: 'x' }, { ...name, allowMissingSni: true }, false],
  ])('%s', (_label, scan, dest, ok) => {
    const r = checkTunnelStart(scan, dest);
    expect(r.ok).toBe(ok);
    if (!r.ok) expect(r.reason).toBe('sni-mismatch');
  });
});
