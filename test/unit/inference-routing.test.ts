import { describe, expect, it } from 'vitest';
import { InferenceSchema } from '../../src/profile/inference.js';
import { filterQuery, resolveRoute, splitTarget } from '../../src/services/inference/routing.js';

const config = InferenceSchema.parse({
  routes: [
    { name: 'openai', api: 'openai', upstream: 'https://api.openai.com/v1' },
    { name: 'claude', api: 'anthropic', upstream: 'https://api.anthropic.com/v1' },
  ],
});

function summary(method: string, target: string, c = config): string {
  const d = resolveRoute(c, method, target);
  return d.kind === 'forward' ? `forward ${d.route.name} ${d.apiPath}${d.query}` : `${d.status} ${d.code}`;
}

describe('resolveRoute', () => {
  it.each([
    ['POST', '/v1/chat/completions', 'forward openai /v1/chat/completions'],
    ['POST', '/v1/completions', 'forward openai /v1/completions'],
    ['POST', '/v1/responses', 'forward openai /v1/responses'],
    ['POST', '/v1/embeddings', 'forward openai /v1/embeddings'],
    ['GET', '/v1/models', 'forward openai /v1/models'],
    ['GET', '/v1/models?limit=2', 'forward openai /v1/models?limit=2'],
    ['POST', '/openai/v1/chat/completions', 'forward openai /v1/chat/completions'],
    ['POST', '/claude/v1/messages', 'forward claude /v1/messages'],
    ['POST', '/claude/v1/messages/count_tokens', 'forward claude /v1/messages/count_tokens'],
    ['GET', '/claude/v1/models', 'forward claude /v1/models'],
    ['POST', 'http://inference.local/claude/v1/messages', 'forward claude /v1/messages'],
    ['POST', 'http://inference.local:80/v1/chat/completions?x=1', 'forward openai /v1/chat/completions?x=1'],
  ])('%s %s → %s', (method, target, expected) => {
    expect(summary(method, target)).toBe(expected);
  });

  it.each([
    ['POST', '/v1/messages', '404 path_not_found'],
    ['POST', '/claude/v1/chat/completions', '404 path_not_found'],
    ['POST', '/v1/chat/completions/', '404 path_not_found'],
    ['POST', '/v1/chat/../chat/completions', '404 path_not_found'],
    ['POST', '/v1//chat/completions', '404 path_not_found'],
    ['POST', '/v1/chat%2fcompletions', '404 path_not_found'],
    ['GET', '/v1/models/gpt-4o', '404 path_not_found'],
    ['POST', '/v1/files', '404 path_not_found'],
    ['GET', '/', '404 route_not_found'],
    ['GET', '/v2/models', '404 route_not_found'],
    ['POST', '/gemini/v1/chat/completions', '404 route_not_found'],
    ['POST', '/claude', '404 path_not_found'],
    ['POST', '/claude/', '404 path_not_found'],
    ['GET', '/v1/chat/completions', '405 method_not_allowed'],
    ['POST', '/v1/models', '405 method_not_allowed'],
    ['DELETE', '/claude/v1/messages', '405 method_not_allowed'],
  ])('%s %s → %s', (method, target, expected) => {
    expect(summary(method, target)).toBe(expected);
  });

  it('uses the named default route at /v1', () => {
    const c = { ...config, default: 'claude' };
    expect(summary('POST', '/v1/messages', c)).toBe('forward claude /v1/messages');
    expect(summary('POST', '/v1/chat/completions', c)).toBe('404 path_not_found');
    expect(summary('POST', '/openai/v1/chat/completions', c)).toBe('forward openai /v1/chat/completions');
  });

  it('explains the refusals', () => {
    expect(resolveRoute(config, 'POST', '/gemini/v1/chat/completions')).toMatchObject({
      message: 'no inference route matches /gemini/v1/chat/completions. Routes: /openai/v1 (openai, also at /v1), /claude/v1 (anthropic).',
    });
    expect(resolveRoute(config, 'POST', '/claude/v1/chat/completions')).toMatchObject({
      message: 'route "claude" (anthropic) does not serve /v1/chat/completions; it serves /v1/messages, /v1/messages/count_tokens, /v1/models.',
    });
    expect(resolveRoute(config, 'GET', '/v1/chat/completions')).toMatchObject({ allow: 'POST', message: 'route "openai": /v1/chat/completions takes POST, not GET.' });
    expect(resolveRoute(InferenceSchema.parse({}), 'GET', '/v1/models')).toMatchObject({
      status: 404,
      message: "no inference route is configured, so /v1/models has nowhere to go. Add a route to the profile's inference.routes or pass --route NAME=URL.",
    });
  });

  it('clips a huge path in its message', () => {
    const d = resolveRoute(config, 'GET', '/' + 'a'.repeat(10_000));
    expect(d.kind === 'refuse' && d.message.length).toBeLessThan(400);
  });
});

describe('splitTarget', () => {
  it.each([
    ['/v1/models', '/v1/models', ''],
    ['/v1/models?a=1&b=2', '/v1/models', '?a=1&b=2'],
    ['http://inference.local/v1/models?a=1', '/v1/models', '?a=1'],
    ['https://inference.local', '/', ''],
    ['/v1/models#frag', '/v1/models', ''],
  ])('%s', (target, path, query) => {
    expect(splitTarget(target)).toEqual({ path, query });
  });
});

describe('filterQuery', () => {
  it.each([
    ['openai', '/v1/chat/completions', '', { query: '', dropped: [] }],
    ['openai', '/v1/chat/completions', '?', { query: '', dropped: [] }],
    // a model in the query would bypass the body's allowlist at an upstream that reads it
    ['openai', '/v1/chat/completions', '?model=forbidden', { query: '', dropped: ['model'] }],
    ['openai', '/v1/models', '?limit=5', { query: '', dropped: ['limit'] }],
    ['anthropic', '/v1/messages', '?beta=true', { query: '?beta=true', dropped: [] }],
    ['anthropic', '/v1/messages', '?beta=true&model=x&%6dodel=y', { query: '?beta=true', dropped: ['model', 'model'] }],
    ['anthropic', '/v1/messages', '?beta=yes', { query: '', dropped: ['beta'] }],
    ['anthropic', '/v1/messages/count_tokens', '?beta=false', { query: '?beta=false', dropped: [] }],
    ['anthropic', '/v1/models', '?limit=5&limit=7&after_id=claude-x_1&before_id=a%26model%3Dx', { query: '?limit=5&after_id=claude-x_1', dropped: ['limit', 'before_id'] }],
    ['anthropic', '/v1/models', '?__proto__=1&constructor=2', { query: '', dropped: ['__proto__', 'constructor'] }],
  ] as const)('%s %s %s', (api, path, query, expected) => {
    expect(filterQuery(api, path, query)).toEqual(expected);
  });
});
