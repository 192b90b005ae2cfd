import { describe, expect, it } from 'vitest';
import { InferenceSchema } from '../../src/profile/inference.js';
import { errorBody, streamErrorEvent } from '../../src/services/inference/api-errors.js';
import { buildUpstreamHeaders, filterResponseHeaders } from '../../src/services/inference/headers.js';
import { createDecoders, parseContentEncoding } from '../../src/services/inference/encoding.js';
import { findDuplicateKey, modelLookalikes } from '../../src/services/inference/json-keys.js';
import { applyModelPolicy } from '../../src/services/inference/model-policy.js';
import { compileKeyPattern, scrubText } from '../../src/services/inference/scrub.js';
import { classifyUpstreamError } from '../../src/services/inference/upstream.js';
import { createSseUsageScanner, usageFromJson } from '../../src/services/inference/usage.js';

const parseRoute = (r: Record<string, unknown>) => InferenceSchema.parse({ routes: [{ name: 'r', api: 'openai', upstream: 'http://h/v1', ...r }] }).routes[0]!;
const body = (o: unknown) => Buffer.from(JSON.stringify(o));

describe('applyModelPolicy', () => {
  it('passes the original bytes through when nothing is rewritten', () => {
    const raw = Buffer.from('{ "model" : "m1",  "messages": [] }');
    const d = applyModelPolicy(parseRoute({ models: ['m1'] }), raw);
    expect(d).toMatchObject({ ok: true, model: 'm1', upstreamModel: 'm1' });
    expect(d.ok && d.body).toBe(raw);
  });

  it('refuses a model outside the allowlist with 403 naming it', () => {
    expect(applyModelPolicy(parseRoute({ models: ['m1', 'm2'] }), body({ model: 'gpt-5' }))).toEqual({
      ok: false,
      status: 403,
      code: 'model_not_allowed',
      model: 'gpt-5',
      message: 'model "gpt-5" is not allowed on route "r"; allowed: m1, m2.',
    });
  });

  it('requires a model when there is an allowlist', () => {
    expect(applyModelPolicy(parseRoute({ models: ['m1'] }), body({ messages: [] }))).toMatchObject({ ok: false, status: 400, code: 'model_required' });
    expect(applyModelPolicy(parseRoute({ models: ['m1'] }), body({ model: 7 }))).toMatchObject({ ok: false, status: 400, code: 'model_required' });
    expect(applyModelPolicy(parseRoute({ models: ['m1'] }), Buffer.alloc(0))).toMatchObject({ ok: false, status: 400, code: 'model_required' });
  });

  it('refuses bodies that are not JSON objects', () => {
    expect(applyModelPolicy(parseRoute({}), Buffer.from('{"model": '))).toMatchObject({ ok: false, status: 400, code: 'invalid_json' });
    expect(applyModelPolicy(parseRoute({}), Buffer.from('[1]'))).toEqual({ ok: false, status: 400, code: 'invalid_json', message: 'route "r": the request body must be a JSON object.' });
  });

  it('rewrites the model after the allowlist check and keeps the rest', () => {
    const d = applyModelPolicy(parseRoute({ models: ['small'], rewriteModel: 'small-2025' }), body({ model: 'small', stream: true, messages: [{ role: 'user', content: 'hi' }] }));
    expect(d).toMatchObject({ ok: true, model: 'small', upstreamModel: 'small-2025' });
    expect(d.ok && JSON.parse(d.body.toString())).toEqual({ model: 'small-2025', stream: true, messages: [{ role: 'user', content: 'hi' }] });
  });

  it('allows any model without an allowlist', () => {
    expect(applyModelPolicy(parseRoute({}), body({ model: 'anything' }))).toMatchObject({ ok: true, model: 'anything' });
  });

  // JSON.parse keeps the last "model"; an upstream parser that keeps the first would run the forbidden one.
  it.each([
    ['{"model":"forbidden","model":"allowed"}', '"model" twice in one object (at $)'],
    ['{"model":"allowed","model":"forbidden"}', '"model" twice in one object (at $)'],
    ['{"model":"forbidden","mod\\u0065l":"allowed"}', '"model" twice in one object (at $)'],
    ['{"model":"allowed","messages":[{"role":"user","content":"a","content":"b"}]}', '"content" twice in one object (at $.messages[])'],
  ])('refuses duplicate keys at any depth: %s', (raw, what) => {
    expect(applyModelPolicy(parseRoute({ models: ['allowed'] }), Buffer.from(raw))).toEqual({
      ok: false,
      status: 400,
      code: 'duplicate_key',
      message: `route "r": the request body names ${what}; parsers disagree on which one counts, so the router refuses it.`,
    });
  });

  it('refuses a top-level key that a case-insensitive parser reads as "model"', () => {
    for (const k of ['MODEL', 'Model', 'mOdEl']) {
      expect(applyModelPolicy(parseRoute({ models: ['allowed'] }), Buffer.from(`{"model":"allowed","${k}":"forbidden"}`))).toEqual({
        ok: false,
        status: 400,
        code: 'duplicate_key',
        message: `route "r": the request body has the key "${k}", which some parsers read as "model"; send the model only as "model".`,
      });
    }
    // below the top level such keys are ordinary data (a tool schema may have both)
    expect(applyModelPolicy(parseRoute({ models: ['allowed'] }), body({ model: 'allowed', tools: [{ parameters: { model: 1, MODEL: 2 } }] }))).toMatchObject({ ok: true });
  });

  it('refuses a body that is not valid UTF-8', () => {
    const raw = Buffer.concat([Buffer.from('{"model":"allowed'), Buffer.from([0xff]), Buffer.from('"}')]);
    expect(applyModelPolicy(parseRoute({ models: ['allowed'] }), raw)).toEqual({ ok: false, status: 400, code: 'invalid_json', message: 'route "r": the request body is not valid UTF-8.' });
  });
});

describe('findDuplicateKey', () => {
  it.each([
    ['{}', undefined],
    ['{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}', undefined],
    ['{"a":"\\"a\\":1,\\"a\\":2","b":1}', undefined],
    ['{"a\\"b":1,"a\\"b":2}', { at: '$', key: 'a"b' }],
    ['{"x":{"y":[1,{"z":1,"z":2}]}}', { at: '$.x.y[]', key: 'z' }],
    ['[{"k":1},{"k":2,"k":3}]', { at: '$[]', key: 'k' }],
    ['{"a\\\\":1,"a\\u005c":2}', { at: '$', key: 'a\\' }],
  ])('%s', (text, expected) => {
    JSON.parse(text); // the inputs are valid JSON, as the router only asks after JSON.parse
    expect(findDuplicateKey(text)).toEqual(expected);
  });

  it('is linear on deep and wide input', () => {
    const deep = '['.repeat(50_000) + ']'.repeat(50_000);
    expect(findDuplicateKey(deep)).toBeUndefined();
    const wide = `{${Array.from({ length: 100_000 }, (_, i) => `"k${i}":${i}`).join(',')},"k5":0}`;
    expect(findDuplicateKey(wide)).toEqual({ at: '$', key: 'k5' });
  });
});

describe('modelLookalikes', () => {
  it('names top-level keys that fold to "model"', () => {
    expect(modelLookalikes({ model: 'a', MODEL: 'b', Model: 'c', modal: 'd', models: 'e' })).toEqual(['MODEL', 'Model']);
  });
});

describe('parseContentEncoding', () => {
  it.each([
    [undefined, { ok: true, codings: [] }],
    ['', { ok: true, codings: [] }],
    ['identity', { ok: true, codings: [] }],
    ['GZIP', { ok: true, codings: ['gzip'] }],
    ['x-gzip', { ok: true, codings: ['gzip'] }],
    ['deflate, br', { ok: true, codings: ['deflate', 'br'] }],
    ['zstd', { ok: false, coding: 'zstd' }],
    ['gzip, compress', { ok: false, coding: 'compress' }],
    ['constructor', { ok: false, coding: 'constructor' }],
    ['__proto__', { ok: false, coding: '__proto__' }],
  ])('%s', (header, expected) => {
    expect(parseContentEncoding(header)).toEqual(expected);
  });

  it('decoders undo the codings in reverse order', async () => {
    const { gzipSync, brotliCompressSync, deflateSync } = await import('node:zlib');
    const text = 'data: {"x":1}\n\n';
    const encoded = brotliCompressSync(gzipSync(deflateSync(Buffer.from(text))));
    const decoders = createDecoders(['deflate', 'gzip', 'br']);
    const last = decoders.reduce<NodeJS.ReadableStream>((from, d) => from.pipe(d), (await import('node:stream')).Readable.from([encoded]));
    const out: Buffer[] = [];
    for await (const c of last) out.push(c as Buffer);
    expect(Buffer.concat(out).toString()).toBe(text);
  });
});

describe('buildUpstreamHeaders', () => {
  const incoming = {
    authorization: 'Bearer caller-key',
    'x-api-key': 'caller-key',
    cookie: 'session=1',
    'proxy-authorization': 'Basic x',
    'x-forwarded-for': '10.0.0.1',
    'x-stainless-os': 'Linux',
    'openai-organization': 'org-caller',
    host: 'inference.local',
    'content-type': 'application/json',
    accept: 'text/event-stream',
    'accept-encoding': 'gzip, br',
    'user-agent': 'OpenAI/JS 5.0',
    'openai-beta': 'assistants=v2',
    'anthropic-beta': 'tools-2024',
    'content-length': '999',
    'transfer-encoding': 'chunked',
  };

  it('openai: keeps the allowlist, drops the caller\'s auth, sets Bearer', () => {
    expect(buildUpstreamHeaders('openai', incoming, 'sk-route', 12)).toEqual({
      accept: 'text/event-stream',
      'content-type': 'application/json',
      'user-agent': 'OpenAI/JS 5.0',
      'openai-beta': 'assistants=v2',
      'accept-encoding': 'identity',
      'content-length': 12,
      authorization: 'Bearer sk-route',
    });
  });

  it('anthropic: x-api-key and a default anthropic-version', () => {
    expect(buildUpstreamHeaders('anthropic', incoming, 'sk-ant-route', undefined)).toEqual({
      accept: 'text/event-stream',
      'content-type': 'application/json',
      'user-agent': 'OpenAI/JS 5.0',
      'anthropic-beta': 'tools-2024',
      'accept-encoding': 'identity',
      'anthropic-version': '2023-06-01',
      'x-api-key': 'sk-ant-route',
    });
    expect(buildUpstreamHeaders('anthropic', { 'anthropic-version': '2099-01-01' }, 'k', undefined)['anthropic-version']).toBe('2099-01-01');
  });

  it('sends no auth at all for a route without a credential', () => {
    const h = buildUpstreamHeaders('openai', incoming, undefined, 0);
    expect(h.authorization).toBeUndefined();
    expect(h['x-api-key']).toBeUndefined();
  });
});

describe('filterResponseHeaders', () => {
  it('keeps what clients need and drops cookies and account headers', () => {
    expect(
      filterResponseHeaders(
        { 'content-type': 'text/event-stream', 'content-length': '5', 'set-cookie': ['a=1'], 'openai-organization': 'org-x', 'x-request-id': 'r1', 'x-ratelimit-remaining-tokens': '9', 'anthropic-ratelimit-requests-limit': '5', connection: 'keep-alive', 'transfer-encoding': 'chunked', 'cf-ray': 'x' },
        false,
      ),
    ).toEqual({ 'content-type': 'text/event-stream', 'x-request-id': 'r1', 'x-ratelimit-remaining-tokens': '9', 'anthropic-ratelimit-requests-limit': '5' });
  });

  it('never passes content-encoding (bodies are decoded) nor location', () => {
    expect(filterResponseHeaders({ 'content-type': 'application/json', 'content-encoding': 'gzip', location: 'http://x/?k=1', 'content-length': '3' }, true)).toEqual({ 'content-type': 'application/json', 'content-length': '3' });
  });

  it('scrubs the key from passed values and drops a header whose name holds it', () => {
    const key = 'sk-header-test-0123456789';
    const pattern = compileKeyPattern([key]);
    const scrub = (t: string) => scrubText(pattern, t);
    expect(
      filterResponseHeaders(
        { 'x-ratelimit-echo': `Bearer ${key}`, 'retry-after': ['1', key], [`x-ratelimit-${key}`]: '1', 'x-request-id': Buffer.from(key).toString('base64'), 'x-echo': key },
        false,
        scrub,
      ),
    ).toEqual({ 'x-ratelimit-echo': 'Bearer [redacted]', 'retry-after': ['1', '[redacted]'], 'x-request-id': expect.stringContaining('[redacted]') });
  });
});

describe('error shapes', () => {
  it('openai', () => {
    expect(errorBody('openai', 403, 'model_not_allowed', 'no')).toEqual({ error: { message: 'no', type: 'permission_error', param: 'model', code: 'model_not_allowed' } });
    expect(errorBody('openai', 404, 'path_not_found', 'no')).toEqual({ error: { message: 'no', type: 'invalid_request_error', param: null, code: 'path_not_found' } });
    expect(errorBody('openai', 502, 'upstream_unreachable', 'no')).toEqual({ error: { message: 'no', type: 'server_error', param: null, code: 'upstream_unreachable' } });
  });

  it('anthropic', () => {
    expect(errorBody('anthropic', 403, 'model_not_allowed', 'no')).toEqual({ type: 'error', error: { type: 'permission_error', message: 'no' }, request_id: null });
    expect(errorBody('anthropic', 404, 'path_not_found', 'no')).toEqual({ type: 'error', error: { type: 'not_found_error', message: 'no' }, request_id: null });
    expect(errorBody('anthropic', 413, 'body_too_large', 'no')).toEqual({ type: 'error', error: { type: 'request_too_large', message: 'no' }, request_id: null });
    expect(errorBody('anthropic', 502, 'upstream_tls', 'no')).toEqual({ type: 'error', error: { type: 'api_error', message: 'no' }, request_id: null });
    expect(errorBody('anthropic', 504, 'upstream_timeout', 'no')).toEqual({ type: 'error', error: { type: 'timeout_error', message: 'no' }, request_id: null });
  });

  it('mid-stream events', () => {
    expect(streamErrorEvent('anthropic', 'upstream_reset', 'cut')).toBe('event: error\ndata: {"type":"error","error":{"type":"api_error","message":"cut"}}\n\n');
    expect(streamErrorEvent('openai', 'upstream_timeout', 'slow')).toBe('data: {"error":{"message":"slow","type":"server_error","param":null,"code":"upstream_timeout"}}\n\n');
  });
});

describe('classifyUpstreamError', () => {
  const e = (code: string, message = code) => Object.assign(new Error(message), { code });
  it.each([
    ['ECONNREFUSED', 502, 'upstream_unreachable'],
    ['ENOTFOUND', 502, 'upstream_unreachable'],
    ['EHOSTUNREACH', 502, 'upstream_unreachable'],
    ['ECONNRESET', 502, 'upstream_reset'],
    ['EPROTO', 502, 'upstream_tls'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 502, 'upstream_tls'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 502, 'upstream_tls'],
    ['CERT_HAS_EXPIRED', 502, 'upstream_tls'],
    ['CLAWJAIL_TIMEOUT', 504, 'upstream_timeout'],
  ])('%s → %d %s', (code, status, kind) => {
    expect(classifyUpstreamError(e(code))).toMatchObject({ status, code: kind });
  });
});

describe('token counts', () => {
  it('from a JSON body of each API', () => {
    expect(usageFromJson('{"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}')).toEqual({ input: 3, output: 4, total: 7 });
    expect(usageFromJson('{"usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":2}}')).toEqual({ input: 3, output: 4, total: 7, cacheRead: 2 });
    expect(usageFromJson('{"choices":[]}')).toBeUndefined();
    expect(usageFromJson('not json')).toBeUndefined();
  });

  it('from an OpenAI stream split at awkward places', () => {
    const stream = 'data: {"choices":[{"delta":{"content":"hé"}}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}}\r\n\r\ndata: [DONE]\n\n';
    const bytes = Buffer.from(stream);
    for (const size of [1, 2, 3, 7, bytes.length]) {
      const s = createSseUsageScanner();
      for (let i = 0; i < bytes.length; i += size) s.push(bytes.subarray(i, i + size));
      expect(s.result(), `chunk size ${size}`).toEqual({ input: 5, output: 6, total: 11 });
    }
  });

  it('from an Anthropic stream: input from message_start, output from the last message_delta', () => {
    const s = createSseUsageScanner();
    s.push(Buffer.from('event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}\n\n'));
    s.push(Buffer.from('event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"the word usage"}}\n\n'));
    s.push(Buffer.from('event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":15}}\n\n'));
    expect(s.result()).toEqual({ input: 25, output: 15, total: 40 });
  });

  it('from a Responses stream', () => {
    const s = createSseUsageScanner();
    s.push(Buffer.from('event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":2,"output_tokens":3,"total_tokens":5}}}\n\n'));
    expect(s.result()).toEqual({ input: 2, output: 3, total: 5 });
  });

  it('reports nothing for a stream without usage', () => {
    const s = createSseUsageScanner();
    s.push(Buffer.from('data: {"choices":[]}\n\ndata: [DONE]\n\n'));
    expect(s.result()).toBeUndefined();
  });
});
