import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createAuditSink, type AuditEvent } from '../../src/log.js';
import { InferenceSchema } from '../../src/profile/inference.js';
import { createInferenceRouter, resolveCredentials, type InferenceRouter } from '../../src/services/inference/index.js';
import { createFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { ECHO_FORMS, findKeyLeak } from '../helpers/key-leaks.js';
import { waitFor } from '../helpers/wait.js';

const OPENAI_KEY = 'sk-route-openai-5f1c2e';
const ANTHROPIC_KEY = 'sk-ant-route-9b7d31';
const CALLER_KEY = 'sk-caller-should-never-leave';

interface Setup {
  router: InferenceRouter;
  url: string;
  up: FakeUpstream;
  events: AuditEvent[];
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function fake(options: Parameters<typeof createFakeUpstream>[0] = {}): Promise<FakeUpstream> {
  const up = await createFakeUpstream(options);
  cleanups.push(() => up.close());
  return up;
}

async function start(routes: Record<string, unknown>[], extra: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = { OPENAI_API_KEY: OPENAI_KEY, ANTHROPIC_API_KEY: ANTHROPIC_KEY }): Promise<Omit<Setup, 'up'>> {
  const config = InferenceSchema.parse({ routes, ...extra });
  const events: AuditEvent[] = [];
  const audit = createAuditSink({ log: pino({ level: 'silent' }), listener: (e) => events.push(e) });
  const router = createInferenceRouter({ sandbox: 'test', config, credentials: resolveCredentials(config, env), audit, logger: pino({ level: 'silent' }) });
  const addr = (await router.listen({ host: '127.0.0.1', port: 0 })) as AddressInfo;
  cleanups.push(() => router.close());
  return { router, url: `http://127.0.0.1:${addr.port}`, events };
}

/** One upstream serving an openai route (default) and an anthropic route "claude". */
async function setup(upOptions: Parameters<typeof createFakeUpstream>[0] = {}, routeOver: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<Setup> {
  const up = await fake(upOptions);
  const s = await start(
    [
      { name: 'openai', api: 'openai', upstream: up.baseUrl, credential: { env: 'OPENAI_API_KEY' }, ...routeOver },
      { name: 'claude', api: 'anthropic', upstream: up.baseUrl, credential: { env: 'ANTHROPIC_API_KEY' }, ...routeOver },
    ],
    extra,
  );
  return { ...s, up };
}

interface Reply {
  status: number;
  statusMessage: string;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: unknown;
  chunks: { at: number; text: string }[];
  startedAt: number;
  endedAt: number;
}

function call(url: string, path: string, o: { method?: string; body?: unknown; headers?: Record<string, string>; socketPath?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const body = o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
    const startedAt = performance.now();
    const req = http.request(
      {
        ...(o.socketPath ? { socketPath: o.socketPath } : { hostname: target.hostname, port: target.port }),
        path,
        method: o.method ?? (body === undefined ? 'GET' : 'POST'),
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...o.headers },
        agent: false,
      },
      (res) => {
        const chunks: { at: number; text: string }[] = [];
        res.on('data', (c: Buffer) => chunks.push({ at: performance.now(), text: c.toString('utf8') }));
        res.on('end', () => {
          const text = chunks.map((c) => c.text).join('');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, statusMessage: res.statusMessage ?? '', headers: res.headers, text, json, chunks, startedAt, endedAt: performance.now() });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const chat = (model = 'gpt-4o-mini', over: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content: 'Say hello' }], ...over });
const message = (model = 'claude-sonnet-4', over: Record<string, unknown> = {}) => ({ model, max_tokens: 64, messages: [{ role: 'user', content: 'Say hello' }], ...over });

/** A port with nothing listening on it. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('credentials and headers', () => {
  it('the upstream sees the route key and never the caller\'s', async () => {
    const { url, up } = await setup();
    const r = await call(url, '/v1/chat/completions', { body: chat(), headers: { authorization: `Bearer ${CALLER_KEY}`, 'x-api-key': CALLER_KEY, cookie: `k=${CALLER_KEY}` } });
    expect(r.status).toBe(200);
    const seen = up.requests[0]!;
    expect(seen.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);
    expect(seen.headers['x-api-key']).toBeUndefined();
    expect(seen.headers.cookie).toBeUndefined();
    expect(JSON.stringify(seen.headers)).not.toContain(CALLER_KEY);
    expect(seen.path).toBe('/v1/chat/completions');

    const a = await call(url, '/claude/v1/messages', { body: message(), headers: { authorization: `Bearer ${CALLER_KEY}`, 'x-api-key': CALLER_KEY } });
    expect(a.status).toBe(200);
    const seenA = up.requests[1]!;
    expect(seenA.headers['x-api-key']).toBe(ANTHROPIC_KEY);
    expect(seenA.headers['anthropic-version']).toBe('2023-06-01');
    expect(seenA.headers.authorization).toBeUndefined();
    expect(JSON.stringify(seenA.headers)).not.toContain(CALLER_KEY);
  });

  it('forwards only allowlisted request headers and filters response headers', async () => {
    const { url, up } = await setup();
    const r = await call(url, '/v1/chat/completions', {
      body: chat(),
      headers: {
        'user-agent': 'test-agent/1',
        accept: 'application/json',
        'accept-encoding': 'gzip',
        'x-forwarded-for': '10.1.2.3',
        'proxy-authorization': 'Basic eDp5',
        'x-stainless-os': 'Linux',
        'openai-organization': 'org-caller',
        'x-custom': 'nope',
      },
    });
    expect(r.status).toBe(200);
    const names = Object.keys(up.requests[0]!.headers).sort();
    expect(names).toEqual(['accept', 'accept-encoding', 'authorization', 'connection', 'content-length', 'content-type', 'host', 'user-agent']);
    expect(up.requests[0]!.headers['accept-encoding']).toBe('identity');
    expect(up.requests[0]!.headers['user-agent']).toBe('test-agent/1');
    // The fake sends set-cookie and openai-organization; neither reaches the caller.
    expect(r.headers['set-cookie']).toBeUndefined();
    expect(r.headers['openai-organization']).toBeUndefined();
    expect(r.headers['x-request-id']).toBe('req_fake');
  });

  it('two routes with different keys reach their own upstreams', async () => {
    const upA = await fake({ text: 'from A' });
    const upB = await fake({ text: 'from B' });
    const { url } = await start(
      [
        { name: 'first', api: 'openai', upstream: upA.baseUrl, credential: { env: 'KEY_A' } },
        { name: 'second', api: 'openai', upstream: `${upB.url}/api/v1`, credential: { env: 'KEY_B' } },
      ],
      {},
      { KEY_A: 'sk-aaa', KEY_B: 'sk-bbb' },
    );
    const a = await call(url, '/first/v1/chat/completions', { body: chat() });
    const b = await call(url, '/second/v1/chat/completions', { body: chat() });
    const d = await call(url, '/v1/chat/completions', { body: chat() });
    expect((a.json as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe('from A');
    expect((b.json as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe('from B');
    expect(d.status).toBe(200);
    expect(upA.requests.map((r) => [r.path, r.headers.authorization])).toEqual([
      ['/v1/chat/completions', 'Bearer sk-aaa'],
      ['/v1/chat/completions', 'Bearer sk-aaa'],
    ]);
    expect(upB.requests.map((r) => [r.path, r.headers.authorization])).toEqual([['/api/v1/chat/completions', 'Bearer sk-bbb']]);
  });

  it('an optional route whose key is missing answers 503 naming the variable', async () => {
    const up = await fake();
    const { url } = await start([{ name: 'openai', api: 'openai', upstream: up.baseUrl, credential: { env: 'NOT_SET_ANYWHERE' }, optional: true }], {}, {});
    const r = await call(url, '/v1/chat/completions', { body: chat() });
    expect(r.status).toBe(503);
    expect(r.headers['x-clawjail-error']).toBe('credential_missing');
    expect(r.json).toEqual({
      error: { message: 'route "openai" has no API key: environment variable NOT_SET_ANYWHERE was not set when clawjail started. Set it and restart the sandbox.', type: 'server_error', param: null, code: 'credential_missing' },
    });
    expect(up.requests).toHaveLength(0);
  });

  it('a route without a credential forwards with no auth header at all', async () => {
    const up = await fake();
    const { url } = await start([{ name: 'local', api: 'openai', upstream: up.baseUrl }]);
    await call(url, '/v1/chat/completions', { body: chat(), headers: { authorization: `Bearer ${CALLER_KEY}` } });
    expect(up.requests[0]!.headers.authorization).toBeUndefined();
  });

  it('scrubs the key from an upstream error that echoes it', async () => {
    const { url, up } = await setup();
    up.set({ error: { status: 401, body: { error: { message: `Incorrect API key provided: ${OPENAI_KEY}.`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } } } });
    const r = await call(url, '/v1/chat/completions', { body: chat() });
    expect(r.status).toBe(401);
    expect(r.text).not.toContain(OPENAI_KEY);
    expect(r.json).toEqual({ error: { message: 'Incorrect API key provided: [redacted].', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    expect(r.headers['content-length']).toBe(String(Buffer.byteLength(r.text)));
  });
});

/** Everything of an answer a client can read: status line, headers and body. */
const everything = (r: Reply) => `${r.status} ${r.statusMessage}\n${JSON.stringify(r.headers)}\n${r.text}`;

describe('the route key never comes back (issue 9, item 1)', () => {
  const apis = [
    { api: 'openai', path: '/v1/chat/completions', key: OPENAI_KEY, seen: `Bearer ${OPENAI_KEY}`, field: 'authorization', body: () => chat() },
    { api: 'anthropic', path: '/claude/v1/messages', key: ANTHROPIC_KEY, seen: ANTHROPIC_KEY, field: 'x-api-key', body: () => message() },
  ] as const;

  describe.each(apis)('$api route', ({ path, key, seen, field, body }) => {
    it.each(ECHO_FORMS)('an upstream reflecting the key as %s: 200, 302 and 401 bodies, an SSE stream with an error event, every header', async (form) => {
      const { url, up, events } = await setup();
      for (const [status, stream] of [[200, false], [302, false], [401, false], [200, true]] as const) {
        up.set({ echo: { form, status, stream } });
        const r = await call(url, path, { body: body() });
        const label = `${form} ${status}${stream ? ' sse' : ''}`;
        expect(r.status, label).toBe(status);
        // the upstream did get the key: the echo is real, the router removed it on the way back
        expect(up.requests.at(-1)!.headers[field], label).toBe(seen);
        expect(findKeyLeak(everything(r), key), label).toBeUndefined();
        expect(r.text.split('[redacted]').length - 1, label).toBeGreaterThanOrEqual(stream ? 3 : 2);
        expect(r.headers['x-ratelimit-echo'], label).toContain('[redacted]');
        expect(r.headers['x-request-id'], label).toContain('[redacted]');
        expect(r.headers['x-echo-authorization'], label).toBeUndefined();
        expect(r.headers.location, label).toBeUndefined();
        // the reason phrase is the router's own, never the upstream's
        expect(r.statusMessage, label).toBe(http.STATUS_CODES[status]);
        if (form === 'plain' && !stream) {
          expect(r.json, label).toEqual({ headers: { [field]: seen.replace(key, '[redacted]') }, error: { message: `received ${seen.replace(key, '[redacted]')}` } });
          expect(r.headers['x-ratelimit-echo'], label).toBe(seen.replace(key, '[redacted]'));
        }
        if (stream) {
          const events = r.text.split('\n\n').filter(Boolean);
          expect(events[0], label).toMatch(/^data: \{"choices":\[\{"delta":\{"content":".*\[redacted\].*"\}\}\]\}$/);
          expect(events[1], label).toMatch(/^event: error\ndata: \{"error":\{"message":".*\[redacted\].*"/);
          expect(events.at(-1), label).toBe('data: [DONE]');
        }
      }
      // nor does the key reach the audit log through the answer
      expect(findKeyLeak(JSON.stringify(events), key)).toBeUndefined();
    });
  });

  it.each(['gzip', 'deflate', 'br'])('%s answers are decoded, scrubbed and passed on uncompressed, not corrupted', async (encoding) => {
    const { url, up, events } = await setup({ encoding });
    const ok = await call(url, '/v1/chat/completions', { body: chat() });
    expect(ok.status).toBe(200);
    expect(ok.headers['content-encoding']).toBeUndefined();
    expect((ok.json as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(events.at(-1)).toMatchObject({ status: 200, tokens: { input: 11, output: 7, total: 18 } });

    up.set({ error: { status: 401, body: { error: { message: `Incorrect API key provided: ${OPENAI_KEY}.`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } } } });
    const err = await call(url, '/v1/chat/completions', { body: chat() });
    expect(err.status).toBe(401);
    expect(err.headers['content-encoding']).toBeUndefined();
    expect(err.headers['content-length']).toBe(String(Buffer.byteLength(err.text)));
    expect(err.json).toEqual({ error: { message: 'Incorrect API key provided: [redacted].', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });

    up.set({ error: undefined, echo: { form: 'base64', stream: true } });
    const sse = await call(url, '/v1/chat/completions', { body: chat() });
    expect(sse.status).toBe(200);
    expect(sse.headers['content-encoding']).toBeUndefined();
    expect(sse.text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(findKeyLeak(everything(sse), OPENAI_KEY)).toBeUndefined();
  });

  it('an encoding the router cannot decode → 502 upstream_encoding in the API\'s shape, nothing passed on', async () => {
    const { url, up } = await setup({ encoding: 'zstd', echo: { form: 'plain' } });
    const r = await call(url, '/v1/chat/completions', { body: chat() });
    expect(r.status).toBe(502);
    expect(r.headers['x-clawjail-error']).toBe('upstream_encoding');
    expect(r.json).toEqual({
      error: {
        message: `route "openai": the upstream sent its answer with content-encoding "zstd", which the router cannot decode to check it (it asks for identity; gzip, deflate and br are decoded) (upstream ${up.url}).`,
        type: 'server_error',
        param: null,
        code: 'upstream_encoding',
      },
    });
    const a = await call(url, '/claude/v1/messages', { body: message() });
    expect(a.status).toBe(502);
    expect((a.json as { type: string; error: { type: string } }).error.type).toBe('api_error');
    expect(findKeyLeak(everything(r) + everything(a), OPENAI_KEY) ?? findKeyLeak(everything(a), ANTHROPIC_KEY)).toBeUndefined();
  });

  it('a body that claims gzip but is not → 502 upstream_encoding (held error body), or a cut stream with an error event', async () => {
    const { url, up } = await setup({ encoding: 'gzip', corrupt: true, echo: { form: 'plain', status: 401 } });
    const r = await call(url, '/v1/chat/completions', { body: chat() });
    expect(r.status).toBe(502);
    expect(r.headers['x-clawjail-error']).toBe('upstream_encoding');
    expect((r.json as { error: { message: string } }).error.message).toBe(`route "openai": the upstream's gzip answer could not be decoded (Z_DATA_ERROR) (upstream ${up.url}).`);
    up.set({ echo: { form: 'plain', stream: true } });
    const s = await call(url, '/v1/chat/completions', { body: chat() });
    expect(s.status).toBe(200);
    expect(JSON.parse(s.text.trim().split('\n\n').pop()!.slice(6))).toEqual({
      error: { message: `route "openai": the upstream's gzip answer could not be decoded (Z_DATA_ERROR) (upstream ${up.url}).`, type: 'server_error', param: null, code: 'upstream_encoding' },
    });
    expect(s.text).not.toContain(OPENAI_KEY);
  });
});

describe('model policy', () => {
  it('refuses a model outside the allowlist in the OpenAI shape, without contacting the upstream', async () => {
    const { url, up } = await setup({}, { models: ['gpt-4o-mini', 'claude-sonnet-4'] });
    const r = await call(url, '/v1/chat/completions', { body: chat('gpt-5-pro') });
    expect(r.status).toBe(403);
    expect(r.headers['x-clawjail-error']).toBe('model_not_allowed');
    expect(r.json).toEqual({
      error: { message: 'model "gpt-5-pro" is not allowed on route "openai"; allowed: gpt-4o-mini, claude-sonnet-4.', type: 'permission_error', param: 'model', code: 'model_not_allowed' },
    });
    expect(up.requests).toHaveLength(0);
  });

  it('refuses a model outside the allowlist in the Anthropic shape', async () => {
    const { url, up } = await setup({}, { models: ['claude-sonnet-4'] });
    const r = await call(url, '/claude/v1/messages', { body: message('claude-opus-4') });
    expect(r.status).toBe(403);
    expect(r.json).toEqual({ type: 'error', error: { type: 'permission_error', message: 'model "claude-opus-4" is not allowed on route "claude"; allowed: claude-sonnet-4.' }, request_id: null });
    const ok = await call(url, '/claude/v1/messages', { body: message('claude-sonnet-4') });
    expect(ok.status).toBe(200);
    expect(up.requests).toHaveLength(1);
  });

  it('applies rewriteModel and leaves the rest of the body alone', async () => {
    const { url, up, events } = await setup({}, { models: ['small'], rewriteModel: 'provider/small-2025-01' });
    const sent = chat('small', { temperature: 0.2, tools: [{ type: 'function', function: { name: 'exec', parameters: {} } }] });
    const r = await call(url, '/v1/chat/completions', { body: sent });
    expect(r.status).toBe(200);
    expect(up.requests[0]!.json).toEqual({ ...sent, model: 'provider/small-2025-01' });
    expect(up.requests[0]!.headers['content-length']).toBe(String(Buffer.byteLength(up.requests[0]!.body)));
    expect(events[0]).toMatchObject({ model: 'small', upstreamModel: 'provider/small-2025-01' });
  });

  it('every allowed path reaches the upstream under the route\'s base, with only allowlisted query parameters', async () => {
    const { url, up } = await setup();
    const calls: [string, string, unknown][] = [
      ['POST', '/v1/chat/completions', chat()],
      ['POST', '/v1/completions', { model: 'm', prompt: 'p' }],
      ['POST', '/v1/responses', { model: 'm', input: 'p' }],
      ['POST', '/v1/embeddings', { model: 'e', input: 'p' }],
      ['GET', '/v1/models?limit=5', undefined],
      ['POST', '/claude/v1/messages', message()],
      ['POST', '/claude/v1/messages/count_tokens', message()],
      ['GET', '/claude/v1/models?limit=5&model=x&limit=7', undefined],
    ];
    for (const [method, path, body] of calls) expect((await call(url, path, { method, body })).status, path).toBe(200);
    expect(up.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /v1/chat/completions',
      'POST /v1/completions',
      'POST /v1/responses',
      'POST /v1/embeddings',
      // OpenAI's /v1/models takes no parameters; Anthropic's takes limit (the first one given)
      'GET /v1/models',
      'POST /v1/messages',
      'POST /v1/messages/count_tokens',
      'GET /v1/models?limit=5',
    ]);
  });

  it('refuses a duplicate "model" with 400 whichever comes last, and forwards nothing (issue 9, item 2)', async () => {
    const { url, up } = await setup({}, { models: ['allowed'] });
    for (const raw of ['{"model":"forbidden","model":"allowed","messages":[]}', '{"model":"allowed","model":"forbidden","messages":[]}', '{"model":"forbidden","mod\\u0065l":"allowed","messages":[]}']) {
      const r = await call(url, '/v1/chat/completions', { body: raw });
      expect(r.status, raw).toBe(400);
      expect(r.headers['x-clawjail-error']).toBe('duplicate_key');
      expect(r.json).toEqual({
        error: { message: 'route "openai": the request body names "model" twice in one object (at $); parsers disagree on which one counts, so the router refuses it.', type: 'invalid_request_error', param: null, code: 'duplicate_key' },
      });
    }
    const c = await call(url, '/claude/v1/messages', { body: '{"model":"allowed","MODEL":"forbidden","max_tokens":5,"messages":[]}' });
    expect(c.status).toBe(400);
    expect(c.json).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: 'route "claude": the request body has the key "MODEL", which some parsers read as "model"; send the model only as "model".' }, request_id: null });
    expect(up.requests).toHaveLength(0);
  });

  it('never forwards ?model= (or any parameter not on the path\'s list); the audit event names what was dropped', async () => {
    const { url, up, events } = await setup({}, { models: ['allowed'] });
    const r = await call(url, '/v1/chat/completions?model=forbidden&api-version=1', { body: chat('allowed') });
    expect(r.status).toBe(200);
    const a = await call(url, '/claude/v1/messages?beta=true&model=forbidden', { body: message('allowed') });
    expect(a.status).toBe(200);
    expect(up.requests.map((q) => q.path)).toEqual(['/v1/chat/completions', '/v1/messages?beta=true']);
    expect(up.requests.map((q) => (q.json as { model: string }).model)).toEqual(['allowed', 'allowed']);
    expect(events.map((e) => e.droppedQuery)).toEqual([['model', 'api-version'], ['model']]);
  });

  it('refuses a body that is not JSON with 400', async () => {
    const { url, up } = await setup();
    const r = await call(url, '/v1/chat/completions', { body: '{"model": "x",' });
    expect(r.status).toBe(400);
    expect((r.json as { error: { code: string } }).error.code).toBe('invalid_json');
    expect(up.requests).toHaveLength(0);
  });
});

describe('streaming', () => {
  it('an OpenAI stream arrives chunk by chunk as the upstream sends it', async () => {
    const { url, up } = await setup({ chunks: ['one ', 'two ', 'three ', 'four ', 'five'], chunkDelayMs: 150 });
    const r = await call(url, '/v1/chat/completions', { body: chat('gpt-4o-mini', { stream: true, stream_options: { include_usage: true } }) });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const content = r.text
      .split('\n\n')
      .filter((l) => l.startsWith('data: {'))
      .map((l) => JSON.parse(l.slice(6)) as { choices: { delta: { content?: string } }[] })
      .map((c) => c.choices[0]?.delta.content ?? '')
      .join('');
    expect(content).toBe('one two three four five');
    expect(r.text.endsWith('data: [DONE]\n\n')).toBe(true);
    // When each piece arrived at the caller: one arrival per piece, spaced like the upstream's sends.
    const arrivals = ['one ', 'two ', 'three ', 'four ', 'five'].map((p) => r.chunks.find((c) => c.text.includes(`"content":"${p}"`))!.at);
    const sends = up.requests[0]!.chunkTimes;
    for (let i = 1; i < arrivals.length; i++) expect(arrivals[i]! - arrivals[i - 1]!).toBeGreaterThan(50);
    // The first piece reached the caller long before the upstream finished sending.
    expect(arrivals[0]!).toBeLessThan(sends[sends.length - 1]! - 300);
    // Each piece leaves the router within a few ms of the upstream writing it.
    const textSends = sends.slice(1, 6);
    arrivals.forEach((at, i) => expect(at - textSends[i]!).toBeLessThan(75));
  });

  it('an Anthropic stream passes through event by event, tokens audited', async () => {
    const { url, events } = await setup({ chunks: ['a', 'b', 'c'], chunkDelayMs: 80, usage: { input: 25, output: 15 } });
    const r = await call(url, '/claude/v1/messages', { body: message('claude-sonnet-4', { stream: true }) });
    expect(r.status).toBe(200);
    const names = [...r.text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
    expect(names).toEqual(['message_start', 'content_block_start', 'ping', 'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    const deltas = r.chunks.filter((c) => c.text.includes('content_block_delta'));
    expect(deltas).toHaveLength(3);
    expect(deltas[2]!.at - deltas[0]!.at).toBeGreaterThan(120);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: 'inference', route: 'claude', api: 'anthropic', status: 200, stream: true, model: 'claude-sonnet-4', tokens: { input: 25, output: 15, total: 40 } });
  });

  it('a slow reader holds the upstream back (back-pressure), and gets every byte', async () => {
    const piece = Buffer.from(`data: ${JSON.stringify({ choices: [{ delta: { content: 'x'.repeat(65_000) } }] })}\n\n`);
    const total = 1000;
    let written = 0;
    const upstream = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const pump = () => {
        while (written < total) {
          written++;
          if (!res.write(piece)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => { upstream.closeAllConnections(); upstream.close(() => r()); }));
    const { url } = await start([{ name: 'openai', api: 'openai', upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1` }]);
    let writtenWhilePaused = 0;
    const received = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${url}/v1/chat/completions`, { method: 'POST' }, (res) => {
        res.pause();
        setTimeout(() => {
          writtenWhilePaused = written * piece.length;
          let bytes = 0;
          res.on('data', (c: Buffer) => (bytes += c.length));
          res.on('end', () => resolve(bytes));
          res.resume();
        }, 500);
      });
      req.on('error', reject);
      req.end(JSON.stringify(chat('m', { stream: true })));
    });
    // 65 MB offered; while nobody reads, only what fits in socket buffers (a few MB) may leave the upstream.
    expect(writtenWhilePaused).toBeLessThan(24 << 20);
    expect(received).toBe(total * piece.length);
  });

  it('a client disconnect aborts the upstream request', async () => {
    const { url, up, events } = await setup({ chunks: Array.from({ length: 50 }, (_, i) => `w${i} `), chunkDelayMs: 100 });
    const aborted = await new Promise<{ aborted: boolean }>((resolve, reject) => {
      const req = http.request(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.once('data', () => {
          // One piece is in: hang up, as a user pressing ctrl-c would.
          req.destroy();
          void up.requests[0]!.closed.then(resolve);
        });
      });
      req.on('error', () => {});
      req.end(JSON.stringify(chat('gpt-4o-mini', { stream: true })));
      setTimeout(() => reject(new Error('upstream was not aborted within 3 s')), 3000);
    });
    expect(aborted).toEqual({ aborted: true });
    expect(up.requests[0]!.chunkTimes.length).toBeLessThan(10);
    await waitFor(() => events.length === 1);
    expect(events[0]).toMatchObject({ route: 'openai', status: 200, stream: true, error: 'client_closed' });
  });

  it('an upstream that breaks mid-stream ends the stream with an error event', async () => {
    const { url, up, events } = await setup({ error: 'reset-mid-stream', chunkDelayMs: 10 });
    const r = await call(url, '/v1/chat/completions', { body: chat('gpt-4o-mini', { stream: true }) });
    expect(r.status).toBe(200);
    const last = r.text.trim().split('\n\n').pop()!;
    expect(JSON.parse(last.slice(6))).toEqual({ error: { message: `route "openai": the upstream closed the connection mid-answer (upstream ${up.url}).`, type: 'server_error', param: null, code: 'upstream_reset' } });
    expect(events[0]).toMatchObject({ status: 200, error: 'upstream_reset' });
  });

  it('a stream stalled past timeoutMs ends with a timeout event', async () => {
    const { url } = await setup({ chunks: ['a', 'b'], chunkDelayMs: 1000 }, { timeoutMs: 300 });
    const t0 = performance.now();
    const r = await call(url, '/claude/v1/messages', { body: message('m', { stream: true }) });
    expect(performance.now() - t0).toBeLessThan(900);
    expect(r.status).toBe(200);
    expect(r.text).toMatch(/event: error\ndata: \{"type":"error","error":\{"type":"timeout_error","message":"route \\"claude\\": timed out after 300 ms waiting for more of the answer \(upstream http:\/\/127\.0\.0\.1:\d+\)\."\}\}\n\n$/);
  });
});

describe('failures are fast and explain themselves', () => {
  it('upstream down → 502 within 1 s naming the route and why', async () => {
    const port = await deadPort();
    const { url, events } = await start([{ name: 'openai', api: 'openai', upstream: `http://127.0.0.1:${port}/v1`, credential: { env: 'OPENAI_API_KEY' } }]);
    const t0 = performance.now();
    const r = await call(url, '/v1/chat/completions', { body: chat() });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(r.status).toBe(502);
    expect(r.headers['x-clawjail-error']).toBe('upstream_unreachable');
    expect(r.json).toEqual({
      error: { message: `route "openai": the upstream refused the connection (ECONNREFUSED); is it running? (upstream http://127.0.0.1:${port}).`, type: 'server_error', param: null, code: 'upstream_unreachable' },
    });
    expect(events[0]).toMatchObject({ route: 'openai', status: 502, error: 'upstream_unreachable' });
  });

  it('upstream down, anthropic route → 502 in the Anthropic shape', async () => {
    const port = await deadPort();
    const { url } = await start([{ name: 'claude', api: 'anthropic', upstream: `http://127.0.0.1:${port}/v1`, credential: { env: 'ANTHROPIC_API_KEY' } }]);
    const r = await call(url, '/claude/v1/messages', { body: message() });
    expect(r.status).toBe(502);
    expect(r.json).toEqual({ type: 'error', error: { type: 'api_error', message: `route "claude": the upstream refused the connection (ECONNREFUSED); is it running? (upstream http://127.0.0.1:${port}).` }, request_id: null });
  });

  it('no answer within timeoutMs → 504', async () => {
    const { url, up, events } = await setup({ error: 'hang' }, { timeoutMs: 300 });
    const t0 = performance.now();
    const r = await call(url, '/v1/chat/completions', { body: chat() });
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(1000);
    expect(r.status).toBe(504);
    expect(r.json).toEqual({
      error: { message: `route "openai": timed out after 300 ms waiting for an answer from the upstream (upstream ${new URL(up.url).origin}).`, type: 'server_error', param: null, code: 'upstream_timeout' },
    });
    expect((await up.requests[0]!.closed).aborted).toBe(true);
    expect(events[0]).toMatchObject({ status: 504, error: 'upstream_timeout' });
  });

  it('TLS failure → 502 naming TLS', async () => {
    const up = await fake();
    const port = new URL(up.url).port;
    const { url } = await start([{ name: 'openai', api: 'openai', upstream: `https://127.0.0.1:${port}/v1`, credential: { env: 'OPENAI_API_KEY' } }]);
    const t0 = performance.now();
    const r = await call(url, '/v1/chat/completions', { body: chat() });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(r.status).toBe(502);
    expect(r.headers['x-clawjail-error']).toBe('upstream_tls');
    expect((r.json as { error: { message: string } }).error.message).toMatch(new RegExp(`^route "openai": TLS with the upstream failed \\(EPROTO: .+\\) \\(upstream https://127\\.0\\.0\\.1:${port}\\)\\.$`));
  });

  it('connection reset before the answer → 502', async () => {
    const { url } = await setup({ error: 'reset' });
    const r = await call(url, '/v1/chat/completions', { body: chat() });
    expect(r.status).toBe(502);
    expect((r.json as { error: { code: string } }).error.code).toBe('upstream_reset');
  });

  it('upstream errors pass through with their status and body', async () => {
    const { url } = await setup({ error: { status: 429, body: { error: { message: 'slow down', type: 'rate_limit_error', param: null, code: null } } } });
    const r = await call(url, '/v1/chat/completions', { body: chat() });
    expect(r.status).toBe(429);
    expect(r.headers['x-clawjail-error']).toBeUndefined();
    expect(r.json).toEqual({ error: { message: 'slow down', type: 'rate_limit_error', param: null, code: null } });
  });

  it('unknown paths → 404 in the route\'s API shape; wrong method → 405', async () => {
    const { url, up } = await setup();
    const o = await call(url, '/v1/files', { body: {} });
    expect(o.status).toBe(404);
    expect(o.json).toEqual({
      error: { message: 'route "openai" (openai) does not serve /v1/files; it serves /v1/chat/completions, /v1/completions, /v1/responses, /v1/embeddings, /v1/models.', type: 'invalid_request_error', param: null, code: 'path_not_found' },
    });
    const a = await call(url, '/claude/v1/complete', { body: {} });
    expect(a.status).toBe(404);
    expect(a.json).toEqual({ type: 'error', error: { type: 'not_found_error', message: 'route "claude" (anthropic) does not serve /v1/complete; it serves /v1/messages, /v1/messages/count_tokens, /v1/models.' }, request_id: null });
    const n = await call(url, '/nope/v1/messages', { body: {}, headers: { 'anthropic-version': '2023-06-01' } });
    expect(n.status).toBe(404);
    expect(n.json).toEqual({ type: 'error', error: { type: 'not_found_error', message: 'no inference route matches /nope/v1/messages. Routes: /openai/v1 (openai, also at /v1), /claude/v1 (anthropic).' }, request_id: null });
    const t = await call(url, '/v1/chat/../../admin', {});
    expect(t.status).toBe(404);
    const m = await call(url, '/v1/chat/completions', { method: 'GET' });
    expect(m.status).toBe(405);
    expect(m.headers.allow).toBe('POST');
    expect(up.requests).toHaveLength(0);
  });

  it('an oversized body → 413', async () => {
    const up = await fake();
    const config = InferenceSchema.parse({ routes: [{ name: 'openai', api: 'openai', upstream: up.baseUrl }] });
    const router = createInferenceRouter({ sandbox: 't', config, credentials: new Map(), audit: createAuditSink({ log: pino({ level: 'silent' }) }), maxBodyBytes: 1024 });
    cleanups.push(() => router.close());
    const addr = (await router.listen({ host: '127.0.0.1', port: 0 })) as AddressInfo;
    const r = await call(`http://127.0.0.1:${addr.port}`, '/v1/chat/completions', { body: chat('m', { pad: 'x'.repeat(5000) }) });
    expect(r.status).toBe(413);
    expect(r.json).toEqual({ error: { message: 'route "openai": the request body is larger than 1024 bytes.', type: 'invalid_request_error', param: null, code: 'body_too_large' } });
    expect(up.requests).toHaveLength(0);
  });
});

describe('audit', () => {
  it('one event per request with tokens, sizes and timings, and never the key or the prompt', async () => {
    const { url, events } = await setup({ usage: { input: 12, output: 34 } });
    const prompt = 'PROMPT-TEXT-7731';
    await call(url, '/v1/chat/completions', { body: chat('gpt-4o-mini', { messages: [{ role: 'user', content: prompt }] }) });
    await call(url, '/v1/chat/completions', { body: chat('gpt-4o-mini', { stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: prompt }] }) });
    await call(url, '/v1/responses', { body: { model: 'gpt-4o-mini', input: prompt, stream: true } });
    await call(url, '/v1/embeddings', { body: { model: 'e', input: prompt } });
    await call(url, '/v1/models');
    await call(url, '/v1/nope');
    expect(events).toHaveLength(6);
    expect(events[0]).toEqual({
      time: expect.any(String),
      kind: 'inference',
      sandbox: 'test',
      route: 'openai',
      api: 'openai',
      method: 'POST',
      path: '/v1/chat/completions',
      model: 'gpt-4o-mini',
      status: 200,
      stream: false,
      latencyMs: expect.any(Number),
      ttfbMs: expect.any(Number),
      tokens: { input: 12, output: 34, total: 46 },
      bytesIn: expect.any(Number),
      bytesOut: expect.any(Number),
    });
    expect(events[0]!.bytesIn).toBeGreaterThan(prompt.length);
    expect(events[0]!.bytesOut).toBeGreaterThan(100);
    expect(events[1]).toMatchObject({ stream: true, tokens: { input: 12, output: 34, total: 46 } });
    expect(events[2]).toMatchObject({ path: '/v1/responses', stream: true, tokens: { input: 12, output: 34, total: 46 } });
    expect(events[3]).toMatchObject({ path: '/v1/embeddings', tokens: { input: 12, total: 12 } });
    expect(events[4]).toMatchObject({ method: 'GET', path: '/v1/models', status: 200 });
    expect(events[5]).toMatchObject({ route: 'openai', status: 404, error: 'path_not_found' });
    const all = JSON.stringify(events);
    expect(all).not.toContain(OPENAI_KEY);
    expect(all).not.toContain(prompt);
  });

  it('auditBodies records the prompt and the answer, still not the key', async () => {
    const { url, events } = await setup({ text: 'ANSWER-TEXT-4410' }, {}, { auditBodies: true });
    await call(url, '/v1/chat/completions', { body: chat('gpt-4o-mini', { messages: [{ role: 'user', content: 'PROMPT-TEXT-7731' }] }) });
    expect(events[0]!.requestBody).toContain('PROMPT-TEXT-7731');
    expect(events[0]!.responseBody).toContain('ANSWER-TEXT-4410');
    expect(JSON.stringify(events)).not.toContain(OPENAI_KEY);
  });
});

describe('listeners', () => {
  it('serves a unix socket, a listening fd, and the bare handler', async () => {
    const { router, up } = await setup();
    const dir = mkdtempSync(join(tmpdir(), 'cj-inf-'));
    const sock = join(dir, 'inference.sock');
    expect(await router.listen({ path: sock })).toBe(sock);
    const viaSocket = await call('http://localhost', '/claude/v1/messages', { body: message(), socketPath: sock });
    expect(viaSocket.status).toBe(200);

    // A bound socket handed over as a bare fd, as the sandbox init will hand one over.
    const { TCP, constants } = (process as unknown as { binding(n: string): { TCP: new (t: number) => TcpHandle; constants: { SERVER: number } } }).binding('tcp_wrap');
    const handle = new TCP(constants.SERVER);
    expect(handle.bind('127.0.0.1', 0)).toBe(0);
    const name: { port?: number } = {};
    handle.getsockname(name);
    await router.listen({ fd: handle.fd });
    const viaFd = await call(`http://127.0.0.1:${name.port}`, '/v1/models');
    expect(viaFd.status).toBe(200);

    // The unix socket arrives the same way: a bound fd, not a path the supervisor can see.
    const { Pipe, constants: pipeConstants } = (process as unknown as { binding(n: string): { Pipe: new (t: number) => PipeHandle; constants: { SERVER: number } } }).binding('pipe_wrap');
    const pipe = new Pipe(pipeConstants.SERVER);
    const pipePath = join(dir, 'from-fd.sock');
    expect(pipe.bind(pipePath)).toBe(0);
    await router.listen({ fd: pipe.fd });
    const viaPipeFd = await call('http://localhost', '/claude/v1/models', { socketPath: pipePath });
    expect(viaPipeFd.status).toBe(200);

    // The egress proxy calls the handler in-process for http://inference.local/…, request line in absolute form.
    const proxy = http.createServer(router.handler);
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => proxy.close(() => r())));
    const viaProxy = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: (proxy.address() as AddressInfo).port, path: 'http://inference.local/v1/models', method: 'GET', headers: { host: 'inference.local' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(viaProxy).toBe(200);
    expect(up.requests.map((r) => r.path)).toEqual(['/v1/messages', '/v1/models', '/v1/models', '/v1/models']);
    await router.close();
    handle.close();
    pipe.close();
  });

  it('close() ends streams in flight and frees the port', async () => {
    const { router, url, up } = await setup({ chunks: Array.from({ length: 50 }, () => 'x '), chunkDelayMs: 100 });
    const pending = call(url, '/v1/chat/completions', { body: chat('m', { stream: true }) }).catch((e: Error) => e);
    await up.nextRequest();
    await new Promise((r) => setTimeout(r, 150));
    await router.close();
    const outcome = await pending;
    expect(outcome instanceof Error || (outcome as Reply).text.length < 2000).toBe(true);
    expect((await up.requests[0]!.closed).aborted).toBe(true);
    await expect(call(url, '/v1/models')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

interface PipeHandle {
  fd: number;
  bind(path: string): number;
  close(): void;
}

interface TcpHandle {
  fd: number;
  bind(host: string, port: number): number;
  getsockname(out: object): number;
  close(): void;
}
