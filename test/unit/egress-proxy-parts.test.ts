import { describe, expect, it } from 'vitest';
import { clientErrorAnswer } from '../../src/services/egress/connections.js';
import { forwardHeaders, stripHopByHop } from '../../src/services/egress/forward-headers.js';
import { badTargetDetail } from '../../src/services/egress/forward.js';
import { hostPort, rawRefusal, refusalBody } from '../../src/services/egress/responses.js';
import { localConnectAction } from '../../src/services/egress/tunnel.js';

describe('stripHopByHop / forwardHeaders', () => {
  it('drops hop-by-hop headers, those Connection names, and Host; keeps order and case', () => {
    const raw = ['Host', 'x', 'Connection', 'keep-alive, X-Secret', 'X-Secret', '1', 'Accept', '*/*', 'Proxy-Authorization', 'Basic a', 'Transfer-Encoding', 'chunked', 'TE', 'trailers', 'X-Keep', 'y'];
    expect(stripHopByHop(raw)).toEqual(['Accept', '*/*', 'X-Keep', 'y']);
  });

  it('Host comes from the request URL, first', () => {
    expect(forwardHeaders(['host', 'evil.test', 'Accept', 'a'], 'good.test:8080')).toEqual(['Host', 'good.test:8080', 'Accept', 'a']);
  });
});

describe('refusals', () => {
  it('hostPort brackets IPv6', () => {
    expect(hostPort({ host: '2001:db8::1', hostIsIp: true, port: 443 })).toBe('[2001:db8::1]:443');
    expect(hostPort({ host: 'a.test', hostIsIp: false, port: 80 })).toBe('a.test:80');
  });

  it('a 403 is "refused", anything else "failed"', () => {
    const t = { host: 'a.test', hostIsIp: false, port: 443 };
    expect(refusalBody(t, { status: 403, reason: 'not-allowlisted', detail: 'no rule' })).toBe('clawjail: a.test:443 refused (not-allowlisted): no rule\n');
    expect(refusalBody(t, { status: 502, reason: 'resolve-failed', detail: 'ENOTFOUND' })).toBe('clawjail: a.test:443 failed (resolve-failed): ENOTFOUND\n');
  });

  it('a raw refusal is a complete HTTP/1.1 response that closes', () => {
    expect(rawRefusal(503, 'too-many-connections', 'é\n')).toBe(
      'HTTP/1.1 503 Service Unavailable\r\nX-Clawjail-Reason: too-many-connections\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\nConnection: close\r\n\r\né\n',
    );
    expect(rawRefusal(418, 'x', '')).toMatch(/^HTTP\/1\.1 418 Error\r\n/);
  });
});

describe('clientErrorAnswer', () => {
  it.each([
    ['ECONNRESET', 'close'],
    ['EPIPE', 'close'],
    ['HPE_HEADER_OVERFLOW', { status: 431, reason: 'headers-too-large', text: 'request headers larger than 16384 bytes' }],
    ['HPE_INVALID_METHOD', { status: 400, reason: 'malformed', text: 'malformed request (HPE_INVALID_METHOD)' }],
    [undefined, { status: 400, reason: 'malformed', text: 'malformed request (parse error)' }],
  ] as const)('%s', (code, expected) => {
    expect(clientErrorAnswer(code, 16384)).toEqual(expected);
  });
});

describe('localConnectAction', () => {
  it.each([
    [{ host: 'inference.local', hostIsIp: false, port: 80 }, true, 'local'],
    [{ host: 'inference.local', hostIsIp: false, port: 443 }, true, 'local-tls'],
    [{ host: 'inference.local', hostIsIp: false, port: 80 }, false, 'out'],
    [{ host: '127.0.0.1', hostIsIp: true, port: 80 }, true, 'out'],
  ] as const)('%o served=%s → %s', (target, served, action) => {
    expect(localConnectAction(target, served)).toBe(action);
  });
});

describe('badTargetDetail', () => {
  it('an origin-form request was sent to the proxy as if it were a server', () => {
    expect(badTargetDetail('/index.html')).toMatch(/^this is the clawjail egress proxy: send requests as absolute URIs/);
  });
  it('anything else is quoted, clipped to 100 characters', () => {
    expect(badTargetDetail('https://a.test/')).toBe('bad request target "https://a.test/"; a proxy request needs an absolute http:// URL (https:// goes through CONNECT)');
    expect(badTargetDetail('x'.repeat(300))).toContain(`"${'x'.repeat(100)}"`);
  });
});
