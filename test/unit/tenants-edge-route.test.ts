import { describe, expect, it } from 'vitest';
import { routeEdge, tokenMatches } from '../../src/tenants/edge.js';

const tenants = [{ name: 'acme' }, { name: 'globex', host: 'chat.globex.example' }, { name: 'initech' }];

describe('routeEdge', () => {
  const cases: [string, string | undefined, string, { tenant: string; path: string } | undefined][] = [
    ['first label of the Host names the tenant', 'acme.tenants.example', '/v1/chat', { tenant: 'acme', path: '/v1/chat' }],
    ['Host with a port and upper case', 'ACME.tenants.example:8443', '/', { tenant: 'acme', path: '/' }],
    ['an explicit edge host', 'chat.globex.example', '/x', { tenant: 'globex', path: '/x' }],
    ['a tenant with an explicit host is not reachable by its label', 'globex.tenants.example', '/x', undefined],
    ['a bare name is not a tenant host (needs a domain)', 'acme', '/x', undefined],
    ['path prefix /t/NAME/ is stripped', '127.0.0.1:8080', '/t/initech/readyz?x=1', { tenant: 'initech', path: '/readyz?x=1' }],
    ['path prefix without a trailing path', 'localhost', '/t/initech', { tenant: 'initech', path: '/' }],
    ['unknown tenant in the path', 'localhost', '/t/umbrella/x', undefined],
    ['a prefix that only starts like a name', 'localhost', '/t/acmeX/', undefined],
    ['no Host and no prefix', undefined, '/x', undefined],
  ];
  for (const [label, host, path, want] of cases) it(label, () => expect(routeEdge(host, path, tenants)).toEqual(want));
});

describe('tokenMatches', () => {
  const cases: [string | undefined, boolean][] = [
    ['Bearer s3cret', true],
    ['bearer s3cret', true],
    ['Bearer s3cret2', false],
    ['Bearer s3cre', false],
    ['Basic s3cret', false],
    ['s3cret', false],
    [undefined, false],
  ];
  for (const [header, want] of cases) it(`${JSON.stringify(header)} → ${want}`, () => expect(tokenMatches(header, 's3cret')).toBe(want));
});
