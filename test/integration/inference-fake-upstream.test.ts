import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createAuditSink } from '../../src/log.js';
import { InferenceSchema } from '../../src/profile/inference.js';
import { createInferenceRouter } from '../../src/services/inference/index.js';
import { createFakeUpstream } from '../helpers/fake-upstream.js';

// The two-turn tool conversation OpenClaw's end-to-end test will drive, run through the router.

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function routerFor(upstream: string): Promise<string> {
  const config = InferenceSchema.parse({
    routes: [
      { name: 'openai', api: 'openai', upstream },
      { name: 'claude', api: 'anthropic', upstream },
    ],
  });
  const router = createInferenceRouter({ sandbox: 't', config, credentials: new Map(), audit: createAuditSink({ log: pino({ level: 'silent' }) }) });
  const addr = (await router.listen({ host: '127.0.0.1', port: 0 })) as AddressInfo;
  cleanups.push(() => router.close());
  return `http://127.0.0.1:${addr.port}`;
}

async function post(url: string, body: unknown): Promise<string> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(r.status).toBe(200);
  return r.text();
}

const events = (sse: string) =>
  sse
    .split('\n\n')
    .map((b) => b.split('\n').find((l) => l.startsWith('data: ')))
    .filter((l): l is string => l !== undefined && l !== 'data: [DONE]')
    .map((l) => JSON.parse(l.slice(6)) as Record<string, any>);

describe('fake upstream tool scenario', () => {
  it('OpenAI: first a streamed exec tool call, then text quoting the tool result', async () => {
    const up = await createFakeUpstream({ tool: { name: 'exec', arguments: { command: 'echo TOKEN-123' } } });
    cleanups.push(() => up.close());
    const url = await routerFor(up.baseUrl);
    const first = events(await post(`${url}/v1/chat/completions`, { model: 'm', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'run it' }] }));
    const calls = first.flatMap((e) => e.choices?.[0]?.delta?.tool_calls ?? []);
    expect(calls[0]).toMatchObject({ index: 0, id: 'call_fake_1', type: 'function', function: { name: 'exec' } });
    expect(JSON.parse(calls.map((c) => c.function.arguments).join(''))).toEqual({ command: 'echo TOKEN-123' });
    expect(first.find((e) => e.choices?.[0]?.finish_reason)?.choices[0].finish_reason).toBe('tool_calls');
    expect(first.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } });

    const second = events(
      await post(`${url}/v1/chat/completions`, {
        model: 'm',
        stream: true,
        messages: [
          { role: 'user', content: 'run it' },
          { role: 'assistant', content: null, tool_calls: [{ id: 'x1', type: 'function', function: { name: 'exec', arguments: '{"command":"echo TOKEN-123"}' } }] },
          { role: 'tool', tool_call_id: 'x1', content: 'TOKEN-123\n' },
        ],
      }),
    );
    expect(second.map((e) => e.choices?.[0]?.delta?.content ?? '').join('')).toBe('Tool said: TOKEN-123\n');
  });

  it('Anthropic: first a tool_use block, then text quoting the tool_result', async () => {
    const up = await createFakeUpstream({ tool: { name: 'exec', arguments: { command: 'ls' } } });
    cleanups.push(() => up.close());
    const url = await routerFor(up.baseUrl);
    const first = JSON.parse(await post(`${url}/claude/v1/messages`, { model: 'c', max_tokens: 10, messages: [{ role: 'user', content: 'go' }] }));
    expect(first).toMatchObject({ type: 'message', stop_reason: 'tool_use', content: [{ type: 'tool_use', id: 'toolu_fake_1', name: 'exec', input: { command: 'ls' } }] });
    const streamed = events(
      await post(`${url}/claude/v1/messages`, {
        model: 'c',
        max_tokens: 10,
        stream: true,
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', content: first.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_fake_1', content: [{ type: 'text', text: 'a.txt b.txt' }] }] },
        ],
      }),
    );
    // One content_block_delta per word of "Tool said: a.txt b.txt".
    expect(streamed.map((e) => e.type)).toEqual(['message_start', 'content_block_start', 'ping', ...Array(4).fill('content_block_delta'), 'content_block_stop', 'message_delta', 'message_stop']);
    expect(streamed.map((e) => e.delta?.text ?? '').join('')).toBe('Tool said: a.txt b.txt');
    expect(up.requests.map((r) => r.headers['anthropic-version'])).toEqual(['2023-06-01', '2023-06-01']);
  });
});

describe('the fake upstream reflects the credential it received (the control for the scrubbing tests)', () => {
  it.each(['plain', 'json-escaped', 'json-mixed', 'percent', 'percent-mixed', 'base64', 'base64url'] as const)('%s, in a gzip body, an SSE stream and the headers', async (form) => {
    const { findKeyLeak } = await import('../helpers/key-leaks.js');
    const { gunzipSync } = await import('node:zlib');
    const key = 'sk-fake-echo-control-0123456789';
    const up = await createFakeUpstream({ echo: { form }, encoding: 'gzip' });
    cleanups.push(() => up.close());
    const get = (stream: boolean) =>
      new Promise<{ head: string; body: string }>((resolve, reject) => {
        const req = http.request(`${up.baseUrl}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}` } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ head: `${res.statusMessage} ${JSON.stringify(res.headers)}`, body: gunzipSync(Buffer.concat(chunks)).toString('latin1') }));
        });
        req.on('error', reject);
        req.end(JSON.stringify({ model: 'm', stream }));
      });
    const plain = await get(false);
    up.set({ echo: { form, stream: true } });
    const sse = await get(true);
    expect(findKeyLeak(plain.body, key)).toBeDefined();
    expect(findKeyLeak(sse.body, key)).toBeDefined();
    expect(findKeyLeak(plain.head, key)).toBeDefined();
    if (form === 'plain') expect(JSON.parse(plain.body)).toEqual({ headers: { authorization: `Bearer ${key}` }, error: { message: `received Bearer ${key}` } });
  });
});
