// OpenClaw benchmark: gateway time-to-ready and one `agent exec` turn, bare on the host vs inside
// clawjail (profiles/openclaw.yaml, model through the inference router), in the same run, with
// the peak RSS of OpenClaw's process tree and of the supervisor (this process: router + proxy).
// Needs dist/ (npx tsc -p .), the native helper, and the pinned OpenClaw in the cache
// ($CLAWJAIL_CACHE_DIR, default <tmpdir>/clawjail-test-cache/openclaw-cache, installed if absent;
// world-readable so a root supervisor's sandbox uid can read it). Both sides keep a persistent
// NODE_COMPILE_CACHE warmed by one discarded run, so the comparison is of warm starts.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const RUNS = Number(process.env.BENCH_OPENCLAW_RUNS ?? 3);
const dist = new URL('../dist', import.meta.url).pathname;
const TOKEN = 'b'.repeat(64);
const MODEL = { id: 'model-1', name: 'Model 1', reasoning: false, input: ['text'], cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 }, contextWindow: 128000, maxTokens: 4096 };

/** A model that answers every chat completion with a short SSE stream. */
function startUpstream() {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const chunk = (o) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'model-1', ...o })}\n\n`;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(chunk({ choices: [{ index: 0, delta: { role: 'assistant', content: 'bench ok' }, finish_reason: null }] }));
      res.write(chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }));
      res.write(chunk({ choices: [], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } }));
      res.end('data: [DONE]\n\n');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Sum of VmRSS over a process and all its descendants, in kB. */
function treeRssKb(root) {
  const children = new Map();
  const rss = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      (children.get(ppid) ?? children.set(ppid, []).get(ppid)).push(Number(d));
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d}/status`, 'utf8'));
      rss.set(Number(d), m ? Number(m[1]) : 0);
    } catch {
      // gone
    }
  }
  let total = 0;
  const stack = [root];
  while (stack.length) {
    const p = stack.pop();
    total += rss.get(p) ?? 0;
    stack.push(...(children.get(p) ?? []));
  }
  return total;
}

function sampler(pid) {
  let peak = 0;
  let superPeak = 0;
  const t = setInterval(() => {
    peak = Math.max(peak, treeRssKb(pid));
    superPeak = Math.max(superPeak, process.memoryUsage().rss / 1024);
  }, 200);
  return { stop: () => (clearInterval(t), { peakMb: peak / 1024, supervisorMb: superPeak / 1024 }) };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function waitReady(port, deadlineMs) {
  const end = performance.now() + deadlineMs;
  while (performance.now() < end) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) });
      if (r.ok && (await r.json()).ready === true) return true;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

function exited(child) {
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

export async function bench() {
  const { installOpenClaw } = await import(`${dist}/openclaw/install.js`);
  const { initOpenClawSandbox } = await import(`${dist}/openclaw/init.js`);
  const { verifyBootstrap } = await import(`${dist}/openclaw/bootstrap.js`);
  const { buildOpenClawLaunch } = await import(`${dist}/openclaw/command.js`);
  const { launch } = await import(`${dist}/launch.js`);

  const cacheDir = process.env.CLAWJAIL_CACHE_DIR ?? path.join(tmpdir(), 'clawjail-test-cache', 'openclaw-cache');
  const install = await installOpenClaw({ cacheDir });
  const upstream = await startUpstream();
  const upstreamUrl = `http://127.0.0.1:${upstream.address().port}/v1`;
  const base = mkdtempSync(path.join(tmpdir(), 'cj-bench-oc-'));
  chmodSync(base, 0o755);
  try {
    const provider = (baseUrl, apiKey) => ({ router: { baseUrl, apiKey, api: 'openai-completions', models: [MODEL] } });
    const common = { agents: { defaults: { model: { primary: 'router/model-1' } } } };

    // Bare: the same hardening, the provider called directly.
    const bare = path.join(base, 'bare');
    mkdirSync(path.join(bare, '.openclaw'), { recursive: true });
    mkdirSync(path.join(bare, 'workspace'));
    writeFileSync(
      path.join(bare, '.openclaw', 'openclaw.json'),
      JSON.stringify({
        ...common,
        gateway: { mode: 'local', bind: 'loopback', port: 18789, auth: { mode: 'token', token: TOKEN } },
        update: { checkOnStart: false },
        telemetry: { enabled: false },
        logging: { file: path.join(bare, '.openclaw', 'logs', 'openclaw.log') },
        agents: { defaults: { ...common.agents.defaults, workspace: path.join(bare, 'workspace') } },
        models: { mode: 'merge', catalogRefresh: { enabled: false }, providers: provider(upstreamUrl, 'bench-key') },
      }),
    );
    const bareEnv = {
      PATH: `${path.dirname(install.nodeBin)}:/usr/local/bin:/usr/bin:/bin`,
      HOME: bare,
      TMPDIR: '/tmp',
      OPENCLAW_STATE_DIR: path.join(bare, '.openclaw'),
      OPENCLAW_CONFIG_PATH: path.join(bare, '.openclaw', 'openclaw.json'),
      OPENCLAW_NO_AUTO_UPDATE: '1',
      DO_NOT_TRACK: '1',
      OPENCLAW_DISABLE_BONJOUR: '1',
      NODE_COMPILE_CACHE: path.join(bare, '.openclaw', 'cache', 'node-compile-cache'),
    };
    const bareRun = (args) => spawn(install.nodeBin, [install.openclawEntry, ...args], { cwd: path.join(bare, 'workspace'), env: bareEnv, stdio: ['ignore', 'ignore', 'ignore'] });

    // Sandboxed: `clawjail openclaw init` from a user config, then the launcher.
    const from = path.join(base, 'from');
    mkdirSync(from);
    writeFileSync(path.join(from, 'openclaw.json'), JSON.stringify({ ...common, models: { providers: provider(upstreamUrl, 'bench-key') } }));
    const env = { HOME: path.join(base, 'home'), XDG_STATE_HOME: path.join(base, 'state'), XDG_CONFIG_HOME: path.join(base, 'config') };
    mkdirSync(env.XDG_STATE_HOME, { mode: 0o755 });
    const sbx = await initOpenClawSandbox({ name: 'bench', from, env, openclawEntry: install.openclawEntry, ...(process.getuid() === 0 ? { owner: { uid: 61000, gid: 61000 } } : {}) });
    let n = 0;
    const sandboxed = async (args) => {
      const { overrides, command } = buildOpenClawLaunch({ name: `oc-bench-${process.pid}-${n++}`, install, paths: sbx.paths, routes: sbx.routes, bootstrap: await verifyBootstrap(sbx.paths.workspace, sbx.paths.manifest), args });
      return launch({ profile: 'openclaw', overrides: [overrides], command, stdio: ['ignore', 'ignore', 'ignore'], env: {} });
    };

    const execArgs = ['agent', 'exec', 'hi', '--json'];
    const turn = async (mode) => {
      const t0 = performance.now();
      const child = mode === 'bare' ? bareRun(execArgs) : await sandboxed(execArgs);
      const s = sampler(child.pid);
      const code = mode === 'bare' ? await exited(child) : (await child.exited).code;
      const ms = performance.now() - t0;
      const mem = s.stop();
      if (code !== 0) throw new Error(`${mode} agent exec exited ${code}`);
      return { ms, ...mem };
    };
    const gateway = async (mode) => {
      const t0 = performance.now();
      const child = mode === 'bare' ? bareRun(['gateway', 'run']) : await sandboxed(['gateway', 'run']);
      const s = sampler(child.pid);
      const port = mode === 'bare' ? 18789 : child.published.find((p) => p.port === 18789).hostPort;
      const ready = await waitReady(port, 120_000);
      const ms = performance.now() - t0;
      await new Promise((r) => setTimeout(r, 1000));
      const mem = s.stop();
      child.kill('SIGTERM');
      if (mode === 'bare') await exited(child);
      else await child.exited;
      if (!ready) throw new Error(`${mode} gateway not ready within 120 s`);
      return { ms, ...mem };
    };

    // Warm both compile caches, then alternate so drift hits both sides alike.
    await turn('bare');
    await turn('sandbox');
    const results = { bare: { exec: [], gw: [] }, sandbox: { exec: [], gw: [] } };
    for (let i = 0; i < RUNS; i++) {
      for (const mode of ['bare', 'sandbox']) results[mode].exec.push(await turn(mode));
    }
    for (let i = 0; i < Math.max(1, RUNS - 1); i++) {
      for (const mode of ['bare', 'sandbox']) results[mode].gw.push(await gateway(mode));
    }
    const med = (xs, k) => median(xs.map((x) => x[k]));
    const rows = [];
    const pair = (names, key, unit, target) => {
      for (const what of ['exec', 'gw']) {
        const b = med(results.bare[what], key);
        const s = med(results.sandbox[what], key);
        const name = names[what];
        rows.push({ metric: `${name}, bare`, value: b, unit });
        rows.push({ metric: `${name}, clawjail`, value: s, unit, ratio: s / b, ...(target ? { target } : {}) });
      }
    };
    pair({ exec: 'agent exec turn (median)', gw: 'gateway time-to-ready (median)' }, 'ms', 'ms', '≤ 1.05x');
    pair({ exec: 'agent exec peak RSS of OpenClaw', gw: 'gateway peak RSS of OpenClaw (to ready + 1 s)' }, 'peakMb', 'MB');
    rows.push({ metric: 'supervisor RSS during sandboxed runs (peak)', value: Math.max(...results.sandbox.exec.map((r) => r.supervisorMb), ...results.sandbox.gw.map((r) => r.supervisorMb)), unit: 'MB', note: 'bench process: launcher + router + proxy' });
    return { title: `OpenClaw ${install.version} on Node ${install.nodeVersion}: bare vs inside clawjail (${RUNS} runs)`, rows };
  } finally {
    upstream.close();
    rmSync(base, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await bench();
  console.log(`## ${r.title}`);
  for (const row of r.rows) console.log(`${row.metric.padEnd(58)} ${row.value.toFixed(1).padStart(10)} ${row.unit}${row.ratio ? `  ratio ${row.ratio.toFixed(2)}x` : ''}${row.target ? `  (target ${row.target})` : ''}${row.note ? `  — ${row.note}` : ''}`);
}
