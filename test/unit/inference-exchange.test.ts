import { describe, expect, it } from 'vitest';
import { InferenceSchema } from '../../src/profile/inference.js';
import { capText, exchangeEvent, openExchange } from '../../src/services/inference/exchange.js';
import { answerPlan, breakOffStatus, upstreamPath } from '../../src/services/inference/forward.js';
import { guessApi } from '../../src/services/inference/request.js';
import { classifyUpstreamError, timeoutMessage } from '../../src/services/inference/upstream.js';

const config = InferenceSchema.parse({
  routes: [
    { name: 'oa', api: 'openai', upstream: 'http://h/v1' },
    { name: 'claude', api: 'anthropic', upstream: 'https://a/v1' },
  ],
  default: 'claude',
});
const route = config.routes[0]!;

describe('exchangeEvent', () => {
  it('a fresh exchange: the fixed fields only, latency rounded to 0.01 ms', () => {
    const x = openExchange(100, route, 'openai', 'POST', '/oa/v1/chat/completions');
    expect(exchangeEvent('sb', x, 112.34567)).toEqual({
      kind: 'inference',
      sandbox: 'sb',
      route: 'oa',
      api: 'openai',
      method: 'POST',
      path: '/oa/v1/chat/completions',
      status: 0,
      stream: false,
      latencyMs: 12.35,
      bytesIn: 0,
      bytesOut: 0,
    });
  });

  it('a request that matched no route has route null', () => {
    expect(exchangeEvent('sb', openExchange(0, undefined, 'anthropic', 'GET', '/nope'), 1)).toMatchObject({ route: null, api: 'anthropic' });
  });

  it('optional fields appear when set; upstreamModel only when it differs from model', () => {
    const x = openExchange(0, route, 'openai', 'POST', '/v1/chat/completions');
    Object.assign(x, { model: 'm', upstreamModel: 'm', ttfbMs: 3.14159, tokens: { input: 1, output: 2, total: 3 }, error: 'client_closed', droppedQuery: ['model'], requestBody: '{}', responseBody: '' });
    const e = exchangeEvent('sb', x, 10);
    expect(e).toMatchObject({ model: 'm', ttfbMs: 3.14, tokens: { input: 1, output: 2, total: 3 }, error: 'client_closed', droppedQuery: ['model'], requestBody: '{}', responseBody: '' });
    expect(e).not.toHaveProperty('upstreamModel');
    x.upstreamModel = 'rewritten';
    expect(exchangeEvent('sb', x, 10)).toMatchObject({ model: 'm', upstreamModel: 'rewritten' });
  });

  it('never carries the upstream request or the done flag', () => {
    const x = openExchange(0, route, 'openai', 'GET', '/v1/models');
    x.done = true;
    expect(Object.keys(exchangeEvent('sb', x, 1))).not.toContain('done');
  });
});

describe('capText', () => {
  it('cuts at max bytes', () => {
    expect(capText(Buffer.from('abcdef'), 3)).toBe('abc');
    expect(capText(Buffer.from('abc'), 3)).toBe('abc');
  });
});

describe('answer relay decisions', () => {
  it.each([
    [200, false, { holdBody: false, captureJson: true }],
    [200, true, { holdBody: false, captureJson: false }],
    [429, false, { holdBody: true, captureJson: false }],
    [500, true, { holdBody: false, captureJson: false }],
  ])('status %i, event stream %s', (status, sse, plan) => {
    expect(answerPlan(status, sse)).toEqual(plan);
  });

  it('a timeout that cut the answer is 504, anything else 502', () => {
    expect(breakOffStatus('upstream_timeout')).toBe(504);
    expect(breakOffStatus('upstream_reset')).toBe(502);
    expect(breakOffStatus('upstream_encoding')).toBe(502);
  });

  it('upstreamPath joins the base path, the API path after /v1, and the query', () => {
    expect(upstreamPath('/v1', '/v1/chat/completions', '')).toBe('/v1/chat/completions');
    expect(upstreamPath('', '/v1/messages', '?beta=true')).toBe('/messages?beta=true');
    expect(upstreamPath('/openai/v1', '/v1/models', '')).toBe('/openai/v1/models');
  });

  it('timeoutMessage names the phase', () => {
    expect(timeoutMessage('connect', 100, 5000)).toBe('timed out after 100 ms connecting to the upstream');
    expect(timeoutMessage('headers', 100, 5000)).toBe('timed out after 5000 ms waiting for an answer from the upstream');
    expect(timeoutMessage('body', 100, 5000)).toBe('timed out after 5000 ms waiting for more of the answer from the upstream');
  });
});

describe('guessApi', () => {
  it('an anthropic-version header means Anthropic, else the default route says', () => {
    expect(guessApi({ 'anthropic-version': '2023-06-01' }, config)).toBe('anthropic');
    expect(guessApi({}, config)).toBe('anthropic');
    expect(guessApi({}, InferenceSchema.parse({ routes: [{ name: 'oa', api: 'openai', upstream: 'http://h/v1' }] }))).toBe('openai');
    expect(guessApi({}, InferenceSchema.parse({}))).toBe('openai');
  });
});

describe('classifyUpstreamError branches on codes only', () => {
  it("Node's socket hang up (ECONNRESET) is upstream_reset; the message text alone decides nothing", () => {
    expect(classifyUpstreamError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toMatchObject({ status: 502, code: 'upstream_reset', why: 'the upstream closed the connection before answering (ECONNRESET)' });
    expect(classifyUpstreamError(new Error('socket hang up'))).toMatchObject({ status: 502, code: 'upstream_unreachable' });
  });
});
