/**
 * A fake model server speaking enough of the OpenAI and Anthropic HTTP APIs for tests, recording
 * every request it receives.
 *
 *   const up = await createFakeUpstream({ chunkDelayMs: 50 });
 *   // route upstream: up.baseUrl  (= `${up.url}/v1`)
 *   ...
 *   up.requests[0].headers.authorization   // what the upstream saw
 *   await up.close();
 *
 * Serves (under any prefix, matched on the path's end):
 *   POST …/chat/completions    chat.completion JSON, or SSE chat.completion.chunk lines when
 *                              `stream: true`: role chunk, one chunk per text piece, a finish
 *                              chunk, a usage chunk (choices: []) when stream_options.include_usage,
 *                              then `data: [DONE]`
 *   POST …/completions         text_completion JSON / SSE
 *   POST …/responses           response JSON / SSE (response.created, response.output_text.delta…,
 *                              response.completed carrying usage); text only, no tool calls
 *   POST …/embeddings          a 3-dimensional embedding per input
 *   GET  …/models              a model list, Anthropic's shape when the request has anthropic-version
 *   POST …/messages            Anthropic message JSON, or SSE message_start, content_block_start,
 *                              ping, content_block_delta…, content_block_stop, message_delta
 *                              (usage.output_tokens), message_stop
 *   POST …/messages/count_tokens   {input_tokens}
 *   anything else              404 in OpenAI's error shape
 *
 * Options (all optional; change them between requests with `up.set({...})`):
 *   text           reply text; streamed as one chunk per word (default 'Hello from the fake model.')
 *   chunks         explicit stream pieces, overriding the split of `text`
 *   chunkDelayMs   pause before each streamed text chunk (default 0)
 *   headerDelayMs  pause before the status line (default 0)
 *   usage          token counts reported ({input: 11, output: 7})
 *   tool           {name, arguments}: while the conversation holds no tool result, the answer is a
 *                  call of this tool (OpenAI tool_calls / Anthropic tool_use); once it holds one
 *                  (anywhere), the answer is text quoting the latest: `Tool said: <result>`
 *   error          {status, body?}: answer every request with that status and body (default body in
 *                  the API's error shape); 'reset': destroy the connection on arrival; 'hang': never
 *                  answer; 'reset-mid-stream': send the opening chunk and the first text chunk, then destroy the connection
 *   echo           {form?, status?, stream?}: reflect the credential header the request carried
 *                  (authorization and/or x-api-key), encoded as `form` (see key-leaks.ts; default
 *                  'plain'), as a header-reflecting server or debugging proxy would: in the body
 *                  (`{"headers":{…},"error":{"message":…}}`, or with `stream` an SSE event whose value
 *                  is split across two writes, then an SSE `error` event), in the headers
 *                  x-ratelimit-echo, x-request-id, x-echo-authorization and location, and in the
 *                  status line's reason phrase; with `status` (default 200)
 *   encoding       'gzip' | 'deflate' | 'br': compress JSON answers and echo answers (streams
 *                  flushed per write) and say so in content-encoding; any other string is sent as
 *                  content-encoding with the body uncompressed; with `corrupt: true` the
 *                  header is sent and the body left uncompressed
 *
 * Each RecordedRequest has method, path (with query), headers, body (text), json (parsed or
 * undefined), receivedAt and chunkTimes (performance.now() of each chunk written), and `closed`,
 * a promise of {aborted} that settles when the answer is complete (false) or the connection went
 * away before it was (true). `nextRequest()` resolves with the next request to arrive.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import zlib from 'node:zlib';
import { encodeAs, type EchoForm } from './key-leaks.js';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export interface FakeUpstreamOptions {
  text?: string;
  chunks?: string[];
  chunkDelayMs?: number;
  headerDelayMs?: number;
  usage?: { input: number; output: number };
  tool?: { name: string; arguments: Record<string, unknown> };
  error?: { status: number; body?: unknown } | 'reset' | 'hang' | 'reset-mid-stream';
  echo?: { form?: EchoForm; status?: number; stream?: boolean };
  encoding?: string;
  corrupt?: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: unknown;
  receivedAt: number;
  chunkTimes: number[];
  closed: Promise<{ aborted: boolean }>;
}

export interface FakeUpstream {
  url: string;
  baseUrl: string;
  requests: RecordedRequest[];
  set(options: FakeUpstreamOptions): void;
  nextRequest(): Promise<RecordedRequest>;
  close(): Promise<void>;
}

type Json = Record<string, unknown>;

export async function createFakeUpstream(initial: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  let options: FakeUpstreamOptions = { ...initial };
  const requests: RecordedRequest[] = [];
  const waiters: ((r: RecordedRequest) => void)[] = [];
  const sockets = new Set<Socket>();
  let seq = 0;

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = body ? JSON.parse(body) : undefined;
      } catch {
        json = undefined;
      }
      let settle!: (v: { aborted: boolean }) => void;
      const closed = new Promise<{ aborted: boolean }>((r) => (settle = r));
      res.on('close', () => settle({ aborted: !res.writableFinished }));
      const rec: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, json, receivedAt: performance.now(), chunkTimes: [], closed };
      requests.push(rec);
      waiters.shift()?.(rec);
      void answer(req, res, rec, { ...options }, ++seq).catch(() => res.destroy());
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    baseUrl: `${url}/v1`,
    requests,
    set(o) {
      options = { ...options, ...o };
    },
    nextRequest() {
      return new Promise((r) => waiters.push(r));
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

async function answer(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, o: FakeUpstreamOptions, seq: number): Promise<void> {
  const path = rec.path.split('?')[0] ?? '';
  const isAnthropic = req.headers['anthropic-version'] !== undefined || path.endsWith('/messages') || path.endsWith('/messages/count_tokens');
  if (o.error === 'reset') return void req.socket.destroy();
  if (o.error === 'hang') return;
  if (o.headerDelayMs) await sleep(o.headerDelayMs);
  if (res.destroyed) return;
  if (o.echo) return echo(req, res, o);
  if (typeof o.error === 'object') {
    const body = o.error.body ?? (isAnthropic ? { type: 'error', error: { type: 'api_error', message: 'fake upstream error' } } : { error: { message: 'fake upstream error', type: 'server_error', param: null, code: null } });
    return sendJson(res, o.error.status, body, o);
  }
  const body = (rec.json ?? {}) as Json;
  const model = typeof body.model === 'string' ? body.model : 'fake-model';
  const usage = o.usage ?? { input: 11, output: 7 };
  const toolResult = findToolResult(body);
  const reply = toolResult !== undefined ? `Tool said: ${toolResult}` : (o.text ?? 'Hello from the fake model.');
  const pieces = toolResult === undefined && o.chunks ? o.chunks : splitWords(reply);
  const tool = toolResult === undefined ? o.tool : undefined;
  const stream = body.stream === true;
  const ctx: StreamCtx = { res, rec, delay: o.chunkDelayMs ?? 0, cutAfterFirst: o.error === 'reset-mid-stream' };

  if (req.method === 'GET' && path.endsWith('/models')) {
    if (isAnthropic) return sendJson(res, 200, { data: [{ type: 'model', id: 'fake-model', display_name: 'Fake model', created_at: '2025-01-01T00:00:00Z' }], has_more: false, first_id: 'fake-model', last_id: 'fake-model' });
    return sendJson(res, 200, { object: 'list', data: [{ id: 'fake-model', object: 'model', created: 1735689600, owned_by: 'fake' }] });
  }
  if (req.method !== 'POST') return sendJson(res, 404, notFound(rec.path));
  if (path.endsWith('/messages/count_tokens')) return sendJson(res, 200, { input_tokens: usage.input });
  if (path.endsWith('/messages')) return anthropicMessages(ctx, seq, model, pieces, tool, usage, stream);
  if (path.endsWith('/chat/completions')) return chatCompletions(ctx, seq, model, pieces, tool, usage, stream, includeUsage(body));
  if (path.endsWith('/completions')) return completions(ctx, seq, model, pieces, usage, stream, includeUsage(body));
  if (path.endsWith('/responses')) return responses(ctx, seq, model, pieces, usage, stream);
  if (path.endsWith('/embeddings')) {
    const inputs = Array.isArray(body.input) ? body.input : [body.input];
    return sendJson(res, 200, { object: 'list', data: inputs.map((_, index) => ({ object: 'embedding', index, embedding: [0.1, 0.2, 0.3] })), model, usage: { prompt_tokens: usage.input, total_tokens: usage.input } });
  }
  return sendJson(res, 404, notFound(rec.path));
}

interface StreamCtx {
  res: ServerResponse;
  rec: RecordedRequest;
  delay: number;
  cutAfterFirst: boolean;
}

function sendJson(res: ServerResponse, status: number, body: unknown, o: FakeUpstreamOptions = {}): void {
  const data = compress(Buffer.from(JSON.stringify(body)), o);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length, 'x-request-id': 'req_fake', 'set-cookie': 'upstream_session=1', 'openai-organization': 'org-fake', ...encodingHeader(o) });
  res.end(data);
}

function encodingHeader(o: FakeUpstreamOptions): Record<string, string> {
  return o.encoding ? { 'content-encoding': o.encoding } : {};
}

function compress(data: Buffer, o: FakeUpstreamOptions): Buffer {
  if (o.corrupt) return data;
  if (o.encoding === 'gzip') return zlib.gzipSync(data);
  if (o.encoding === 'deflate') return zlib.deflateSync(data);
  if (o.encoding === 'br') return zlib.brotliCompressSync(data);
  return data;
}

/** Reflects the request's credential header, encoded, everywhere a response can carry text. */
async function echo(req: IncomingMessage, res: ServerResponse, o: FakeUpstreamOptions): Promise<void> {
  const e = o.echo!;
  const form = e.form ?? 'plain';
  const enc = (v: string) => encodeAs(form, v);
  // json-* forms are escape sequences already: they go into the JSON text as they are
  const lit = (v: string) => (form.startsWith('json') ? `"${enc(v)}"` : JSON.stringify(enc(v)));
  const seen = [req.headers.authorization, req.headers['x-api-key']].filter((v): v is string => typeof v === 'string');
  const first = seen[0] ?? 'none';
  const status = e.status ?? 200;
  const headers: Record<string, string> = {
    'content-type': e.stream ? 'text/event-stream' : 'application/json',
    'x-ratelimit-echo': enc(first),
    'x-request-id': enc(first),
    'x-echo-authorization': enc(first),
    location: `http://upstream.invalid/?auth=${encodeURIComponent(first)}`,
    ...encodingHeader(o),
  };
  const fields = [req.headers.authorization !== undefined ? `"authorization":${lit(req.headers.authorization)}` : '', req.headers['x-api-key'] !== undefined ? `"x-api-key":${lit(req.headers['x-api-key'] as string)}` : ''].filter(Boolean);
  if (!e.stream) {
    const text = `{"headers":{${fields.join(',')}},"error":{"message":${lit(`received ${first}`)}}}`;
    res.writeHead(status, `echo ${enc(first)}`, headers);
    return void res.end(compress(Buffer.from(text), o));
  }
  res.writeHead(status, `echo ${enc(first)}`, headers);
  const z = o.encoding === 'gzip' ? zlib.createGzip() : o.encoding === 'deflate' ? zlib.createDeflate() : o.encoding === 'br' ? zlib.createBrotliCompress() : undefined;
  if (z && !o.corrupt) z.pipe(res);
  const write = async (t: string) => {
    if (res.destroyed) return;
    if (z && !o.corrupt) {
      z.write(t);
      await new Promise<void>((r) => z.flush(() => r()));
    } else res.write(t);
    // a moment for the bytes to leave, so the router sees the value split across two reads
    await sleep(5);
  };
  const value = lit(first);
  const half = value.length >> 1;
  await write(`data: {"choices":[{"delta":{"content":${value.slice(0, half)}`);
  await write(`${value.slice(half)}}}]}\n\n`);
  await write(`event: error\ndata: {"error":{"message":${lit(`received ${first}`)},"headers":{${fields.join(',')}}}}\n\n`);
  await write('data: [DONE]\n\n');
  if (z && !o.corrupt) z.end();
  else res.end();
}

function startStream(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-request-id': 'req_fake', 'set-cookie': 'upstream_session=1' });
  res.flushHeaders();
}

/** Writes one SSE event; with `paced`, after the configured delay. Returns false once the caller has gone. */
async function emit(ctx: StreamCtx, text: string, paced: boolean): Promise<boolean> {
  if (paced && ctx.delay > 0) await sleep(ctx.delay);
  if (ctx.res.destroyed) return false;
  ctx.res.write(text);
  ctx.rec.chunkTimes.push(performance.now());
  if (ctx.cutAfterFirst && paced) {
    // Let the bytes leave before the connection is cut, as a crashing upstream would.
    await sleep(20);
    ctx.res.socket?.destroy();
    return false;
  }
  return true;
}

const data = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
const event = (name: string, o: unknown) => `event: ${name}\ndata: ${JSON.stringify(o)}\n\n`;

async function chatCompletions(ctx: StreamCtx, seq: number, model: string, pieces: string[], tool: FakeUpstreamOptions['tool'], usage: { input: number; output: number }, stream: boolean, withUsage: boolean): Promise<void> {
  const id = `chatcmpl-fake-${seq}`;
  const created = Math.floor(Date.now() / 1000);
  const u = { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output };
  const args = tool ? JSON.stringify(tool.arguments) : '';
  if (!stream) {
    const message = tool
      ? { role: 'assistant', content: null, tool_calls: [{ id: `call_fake_${seq}`, type: 'function', function: { name: tool.name, arguments: args } }] }
      : { role: 'assistant', content: pieces.join('') };
    return sendJson(ctx.res, 200, { id, object: 'chat.completion', created, model, choices: [{ index: 0, message, logprobs: null, finish_reason: tool ? 'tool_calls' : 'stop' }], usage: u });
  }
  const chunk = (delta: Json, finish: string | null) => data({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  startStream(ctx.res);
  if (!(await emit(ctx, chunk({ role: 'assistant', content: tool ? null : '' }, null), false))) return;
  if (tool) {
    const half = Math.ceil(args.length / 2);
    const parts = [
      { index: 0, id: `call_fake_${seq}`, type: 'function', function: { name: tool.name, arguments: '' } },
      { index: 0, function: { arguments: args.slice(0, half) } },
      { index: 0, function: { arguments: args.slice(half) } },
    ];
    for (const p of parts) if (!(await emit(ctx, chunk({ tool_calls: [p] }, null), true))) return;
  } else {
    for (const p of pieces) if (!(await emit(ctx, chunk({ content: p }, null), true))) return;
  }
  if (!(await emit(ctx, chunk({}, tool ? 'tool_calls' : 'stop'), false))) return;
  if (withUsage && !(await emit(ctx, data({ id, object: 'chat.completion.chunk', created, model, choices: [], usage: u }), false))) return;
  if (await emit(ctx, 'data: [DONE]\n\n', false)) ctx.res.end();
}

async function completions(ctx: StreamCtx, seq: number, model: string, pieces: string[], usage: { input: number; output: number }, stream: boolean, withUsage: boolean): Promise<void> {
  const id = `cmpl-fake-${seq}`;
  const created = Math.floor(Date.now() / 1000);
  const u = { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output };
  if (!stream) return sendJson(ctx.res, 200, { id, object: 'text_completion', created, model, choices: [{ text: pieces.join(''), index: 0, logprobs: null, finish_reason: 'stop' }], usage: u });
  startStream(ctx.res);
  for (const p of pieces) if (!(await emit(ctx, data({ id, object: 'text_completion', created, model, choices: [{ text: p, index: 0, logprobs: null, finish_reason: null }] }), true))) return;
  if (withUsage && !(await emit(ctx, data({ id, object: 'text_completion', created, model, choices: [], usage: u }), false))) return;
  if (await emit(ctx, 'data: [DONE]\n\n', false)) ctx.res.end();
}

async function responses(ctx: StreamCtx, seq: number, model: string, pieces: string[], usage: { input: number; output: number }, stream: boolean): Promise<void> {
  const text = pieces.join('');
  const base = { id: `resp_fake_${seq}`, object: 'response', created_at: Math.floor(Date.now() / 1000), model };
  const item = { type: 'message', id: `msg_fake_${seq}`, status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] };
  const u = { input_tokens: usage.input, output_tokens: usage.output, total_tokens: usage.input + usage.output };
  if (!stream) return sendJson(ctx.res, 200, { ...base, status: 'completed', output: [item], usage: u });
  startStream(ctx.res);
  if (!(await emit(ctx, event('response.created', { type: 'response.created', response: { ...base, status: 'in_progress', output: [] } }), false))) return;
  for (const p of pieces) if (!(await emit(ctx, event('response.output_text.delta', { type: 'response.output_text.delta', item_id: item.id, output_index: 0, content_index: 0, delta: p }), true))) return;
  if (await emit(ctx, event('response.completed', { type: 'response.completed', response: { ...base, status: 'completed', output: [item], usage: u } }), false)) ctx.res.end();
}

async function anthropicMessages(ctx: StreamCtx, seq: number, model: string, pieces: string[], tool: FakeUpstreamOptions['tool'], usage: { input: number; output: number }, stream: boolean): Promise<void> {
  const id = `msg_fake_${seq}`;
  const toolId = `toolu_fake_${seq}`;
  if (!stream) {
    const content = tool ? [{ type: 'tool_use', id: toolId, name: tool.name, input: tool.arguments }] : [{ type: 'text', text: pieces.join('') }];
    return sendJson(ctx.res, 200, { id, type: 'message', role: 'assistant', model, content, stop_reason: tool ? 'tool_use' : 'end_turn', stop_sequence: null, usage: { input_tokens: usage.input, output_tokens: usage.output } });
  }
  startStream(ctx.res);
  const start = { type: 'message_start', message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: usage.input, output_tokens: 1 } } };
  if (!(await emit(ctx, event('message_start', start), false))) return;
  const block = tool ? { type: 'tool_use', id: toolId, name: tool.name, input: {} } : { type: 'text', text: '' };
  if (!(await emit(ctx, event('content_block_start', { type: 'content_block_start', index: 0, content_block: block }), false))) return;
  if (!(await emit(ctx, event('ping', { type: 'ping' }), false))) return;
  if (tool) {
    const args = JSON.stringify(tool.arguments);
    const half = Math.ceil(args.length / 2);
    for (const partial of [args.slice(0, half), args.slice(half)]) {
      if (!(await emit(ctx, event('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: partial } }), true))) return;
    }
  } else {
    for (const p of pieces) if (!(await emit(ctx, event('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: p } }), true))) return;
  }
  if (!(await emit(ctx, event('content_block_stop', { type: 'content_block_stop', index: 0 }), false))) return;
  if (!(await emit(ctx, event('message_delta', { type: 'message_delta', delta: { stop_reason: tool ? 'tool_use' : 'end_turn', stop_sequence: null }, usage: { output_tokens: usage.output } }), false))) return;
  if (await emit(ctx, event('message_stop', { type: 'message_stop' }), false)) ctx.res.end();
}

/**
 * The text of the latest tool result in the conversation, if it holds one. Clients may append a
 * message after the result (OpenClaw adds a user context message), so any position counts.
 */
function findToolResult(body: Json): string | undefined {
  const textOf = (c: unknown): string =>
    typeof c === 'string' ? c : Array.isArray(c) ? c.map((p) => (typeof p === 'string' ? p : typeof (p as Json)?.text === 'string' ? ((p as Json).text as string) : '')).join('') : '';
  const messages = Array.isArray(body.messages) ? (body.messages as Json[]) : [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role === 'tool') return textOf(m.content);
    if (m.role === 'user' && Array.isArray(m.content)) {
      const result = (m.content as Json[]).find((p) => p?.type === 'tool_result');
      if (result) return textOf(result.content);
    }
  }
  return undefined;
}

function includeUsage(body: Json): boolean {
  return (body.stream_options as Json | undefined)?.include_usage === true;
}

function splitWords(text: string): string[] {
  return text.match(/\S+\s*/g) ?? [text];
}

function notFound(path: string): Json {
  return { error: { message: `Invalid URL (${path})`, type: 'invalid_request_error', param: null, code: null } };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
