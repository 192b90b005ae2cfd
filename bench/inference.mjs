// Inference router benchmark: added latency, time to first token, and 200 concurrent streams,
// each measured through the router and directly against the same upstream.
// The upstream and the router each run in their own worker thread so the client's event loop
// measures them rather than competing with them. Needs the compiled router in dist/ (npx tsc -p .).
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

const LATENCY_REQUESTS = 3000;
const TTFT_REQUESTS = 300;
const CONCURRENT_STREAMS = 200;
const CHUNKS_PER_STREAM = 20;
const CHUNK_GAP_MS = 10;

// A minimal OpenAI-style upstream: a small JSON answer, or an SSE stream whose first chunk leaves
// at once and the rest every CHUNK_GAP_MS.
const UPSTREAM = `
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const small = JSON.stringify({ id: 'c', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } });
// About 1 MB of JSON text, to measure what scrubbing costs per byte.
const large = Buffer.from(JSON.stringify({ id: 'c', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'lorem ipsum dolor sit amet, consectetur adipiscing elit 0123456789 '.repeat(15000) }, finish_reason: 'stop' }] }));
const chunk = (i) => 'data: ' + JSON.stringify({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'tok' + i + ' ' } }] }) + '\\n\\n';
const server = http.createServer((req, res) => {
  const body = [];
  req.on('data', (c) => body.push(c));
  req.on('end', () => {
    const parsed = JSON.parse(Buffer.concat(body).toString() || '{}');
    const stream = parsed.stream === true;
    const chunks = parsed.max_tokens ?? workerData.chunks;
    if (parsed.large) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': large.length });
      return res.end(large);
    }
    if (!stream) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(small) });
      return res.end(small);
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let i = 0;
    const next = () => {
      if (res.destroyed) return;
      if (i === chunks) {
        res.write('data: ' + JSON.stringify({ object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 3, completion_tokens: chunks, total_tokens: 3 + chunks } }) + '\\n\\n');
        return res.end('data: [DONE]\\n\\n');
      }
      res.write(chunk(i++));
      setTimeout(next, workerData.gap);
    };
    next();
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
`;

const ROUTER = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { createInferenceRouter } = await import(workerData.dist + '/services/inference/index.js');
  const { InferenceSchema } = await import(workerData.dist + '/profile/inference.js');
  // Without a key the route has nothing to scrub: that router measures the scrubber's share.
  const credential = workerData.key ? { credential: { env: 'BENCH_KEY' } } : {};
  const config = InferenceSchema.parse({ routes: [{ name: 'bench', api: 'openai', upstream: 'http://127.0.0.1:' + workerData.upstreamPort + '/v1', ...credential }] });
  // Audit events are built and emitted as in production; the sink drops them so disk speed is not measured.
  const audit = { emit() {}, close: async () => {} };
  const router = createInferenceRouter({ sandbox: 'bench', config, credentials: new Map(workerData.key ? [['bench', workerData.key]] : []), audit });
  const addr = await router.listen({ host: '127.0.0.1', port: 0 });
  parentPort.postMessage(addr.port);
})();
`;

function startWorker(source, workerData) {
  const worker = new Worker(source, { eval: true, workerData });
  return new Promise((resolve, reject) => {
    worker.once('message', (port) => resolve({ worker, port }));
    worker.once('error', reject);
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
// A streamed request names how many chunks it wants (max_tokens); the TTFT runs ask for one so they do not wait out whole streams.
const chatBody = (stream, chunks, large) => JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...(stream ? { stream: true } : {}), ...(chunks ? { max_tokens: chunks } : {}), ...(large ? { large: true } : {}) });
// A key as long as Anthropic's (108 characters): the scrubber's pattern grows with it.
const BENCH_KEY = 'sk-ant-api03-' + 'Zq7fK2mP9xR4tW8vB1nC6yH3jL5dG0sA'.repeat(3).slice(0, 95);
const LARGE_REQUESTS = 100;

/** One request; resolves with time to first body byte and total time, in ms. */
function request(port, stream, chunks, large) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const body = chatBody(stream, chunks, large);
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let first;
      let bytes = 0;
      res.on('data', (c) => {
        first ??= performance.now() - t0;
        bytes += c.length;
      });
      res.on('end', () => (res.statusCode === 200 ? resolve({ ttfb: first ?? 0, total: performance.now() - t0, bytes }) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const round = (v, d = 3) => Math.round(v * 10 ** d) / 10 ** d;

/** Alternates direct and routed requests so drift (GC, CPU frequency) hits both alike. */
async function paired(direct, routed, n, stream, pick) {
  const a = [];
  const b = [];
  for (let i = 0; i < n; i++) {
    a.push(pick(await request(direct, stream, stream ? 1 : undefined)));
    b.push(pick(await request(routed, stream, stream ? 1 : undefined)));
  }
  return [a.sort((x, y) => x - y), b.sort((x, y) => x - y)];
}

/** Like paired(), over three hops: direct, router without a key, router scrubbing a key. */
async function tripled(ports, n, stream, large, pick) {
  const out = ports.map(() => []);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < ports.length; j++) out[j].push(pick(await request(ports[j], stream, stream ? 1 : undefined, large)));
  }
  return out.map((a) => a.sort((x, y) => x - y));
}

async function concurrent(port) {
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: CONCURRENT_STREAMS }, () => request(port, true)));
  const wall = performance.now() - t0;
  const ttfbs = results.map((r) => r.ttfb).sort((x, y) => x - y);
  return { wall, ttfbP99: pct(ttfbs, 99) };
}

export async function bench() {
  const dist = new URL('../dist', import.meta.url).pathname;
  const upstream = await startWorker(UPSTREAM, { chunks: CHUNKS_PER_STREAM, gap: CHUNK_GAP_MS });
  const router = await startWorker(ROUTER, { dist, upstreamPort: upstream.port, key: BENCH_KEY });
  const bare = await startWorker(ROUTER, { dist, upstreamPort: upstream.port });
  try {
    // Warm both paths (JIT, pooled connections).
    await paired(upstream.port, router.port, 200, false, (r) => r.total);
    const [dLat, rLat] = await paired(upstream.port, router.port, LATENCY_REQUESTS, false, (r) => r.total);
    const [dTtft, rTtft] = await paired(upstream.port, router.port, TTFT_REQUESTS, true, (r) => r.ttfb);
    // The first round opens the 200 connections on each hop; the second is measured.
    await concurrent(upstream.port);
    await concurrent(router.port);
    const directC = await concurrent(upstream.port);
    const routedC = await concurrent(router.port);
    const ideal = (CHUNKS_PER_STREAM - 1) * CHUNK_GAP_MS;
    // The key scrubber's share: the same router with and without a key to scrub, interleaved.
    const hops = [upstream.port, bare.port, router.port];
    await tripled(hops, 100, false, false, (r) => r.total);
    const [, sLatBare, sLatKey] = await tripled(hops, LATENCY_REQUESTS, false, false, (r) => r.total);
    const [, sTtftBare, sTtftKey] = await tripled(hops, TTFT_REQUESTS, true, false, (r) => r.ttfb);
    await tripled(hops, 10, false, true, (r) => r.total);
    const [lDirect, lBare, lKey] = await tripled(hops, LARGE_REQUESTS, false, true, (r) => r.total);
    return {
      title: `Inference router (small non-streamed request ×${LATENCY_REQUESTS}, streamed TTFT ×${TTFT_REQUESTS}, ${CONCURRENT_STREAMS} concurrent streams of ${CHUNKS_PER_STREAM} chunks)`,
      rows: [
        { metric: 'request latency p50, direct', value: round(pct(dLat, 50)), unit: 'ms' },
        { metric: 'request latency p50, via router', value: round(pct(rLat, 50)), unit: 'ms', ratio: round(pct(rLat, 50) / pct(dLat, 50), 2) },
        { metric: 'added latency p50 (target ≤ 1 ms)', value: round(pct(rLat, 50) - pct(dLat, 50)), unit: 'ms' },
        { metric: 'request latency p99, direct', value: round(pct(dLat, 99)), unit: 'ms' },
        { metric: 'request latency p99, via router', value: round(pct(rLat, 99)), unit: 'ms', ratio: round(pct(rLat, 99) / pct(dLat, 99), 2) },
        { metric: 'added latency p99', value: round(pct(rLat, 99) - pct(dLat, 99)), unit: 'ms' },
        { metric: 'time to first token p50, direct', value: round(pct(dTtft, 50)), unit: 'ms' },
        { metric: 'time to first token p50, via router', value: round(pct(rTtft, 50)), unit: 'ms', ratio: round(pct(rTtft, 50) / pct(dTtft, 50), 2) },
        { metric: `${CONCURRENT_STREAMS} concurrent streams, wall time, direct (ideal ${ideal} ms)`, value: round(directC.wall, 1), unit: 'ms' },
        { metric: `${CONCURRENT_STREAMS} concurrent streams, wall time, via router`, value: round(routedC.wall, 1), unit: 'ms', ratio: round(routedC.wall / directC.wall, 2) },
        { metric: `${CONCURRENT_STREAMS} concurrent streams, first token p99, direct`, value: round(directC.ttfbP99, 1), unit: 'ms' },
        { metric: `${CONCURRENT_STREAMS} concurrent streams, first token p99, via router`, value: round(routedC.ttfbP99, 1), unit: 'ms', ratio: round(routedC.ttfbP99 / directC.ttfbP99, 2) },
        { metric: 'request latency p50, router without a key (no scrubbing)', value: round(pct(sLatBare, 50)), unit: 'ms' },
        { metric: 'request latency p50, router scrubbing a 108-char key (ratio: vs without a key)', value: round(pct(sLatKey, 50)), unit: 'ms', ratio: round(pct(sLatKey, 50) / pct(sLatBare, 50), 2) },
        { metric: 'time to first token p50, router without a key', value: round(pct(sTtftBare, 50)), unit: 'ms' },
        { metric: 'time to first token p50, router scrubbing a key (ratio: vs without a key)', value: round(pct(sTtftKey, 50)), unit: 'ms', ratio: round(pct(sTtftKey, 50) / pct(sTtftBare, 50), 2) },
        { metric: `1 MB answer ×${LARGE_REQUESTS} p50, direct`, value: round(pct(lDirect, 50)), unit: 'ms' },
        { metric: '1 MB answer p50, router without a key', value: round(pct(lBare, 50)), unit: 'ms', ratio: round(pct(lBare, 50) / pct(lDirect, 50), 2) },
        { metric: '1 MB answer p50, router scrubbing a key (ratio: vs without a key)', value: round(pct(lKey, 50)), unit: 'ms', ratio: round(pct(lKey, 50) / pct(lBare, 50), 2) },
      ],
    };
  } finally {
    agent.destroy();
    await Promise.all([upstream.worker.terminate(), router.worker.terminate(), bare.worker.terminate()]);
  }
}
