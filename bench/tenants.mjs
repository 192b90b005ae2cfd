// Tenants benchmark: N = 1, 10, 50 tenants (`sleep`) started at once from one orchestrator, each N
// in a fresh process. Reports time to all-ready and to the first ready tenant against one warm
// launch in the same process, and the supervisor's own cost per extra idle tenant: RSS (after a
// GC), file descriptors, and the RSS of each sandbox's monitor process (outside the workload).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SIZES = (process.env.BENCH_TENANTS_N ?? '1,10,50').split(',').map(Number);

/** Child mode: one orchestrator, N tenants; prints one JSON line. */
async function child(n) {
  const { readFileSync, readdirSync } = await import('node:fs');
  const { createOrchestrator, launch } = await import(join(ROOT, 'dist', 'index.js'));
  const rss = () => {
    globalThis.gc?.();
    globalThis.gc?.();
    return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
  };
  const fds = () => readdirSync('/proc/self/fd').length;
  const vmrss = (pid) => {
    try {
      return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
    } catch {
      return 0;
    }
  };
  // Warm: code loaded, caches filled; then one launch alone is the reference.
  for (let i = 0; i < 3; i++) (await launch({ command: ['true'], stdio: 'ignore' })).exited;
  let single = Infinity;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const sb = await launch({ command: ['sleep', '60'], stdio: 'ignore', name: `ref-${i}` });
    single = Math.min(single, performance.now() - t);
    await sb.close(0);
  }
  const dir = mkdtempSync(join(tmpdir(), 'cj-bench-tenants-'));
  const orch = createOrchestrator({ config: { stateRoot: join(dir, 'state'), uids: { first: 74000, count: 1000 } } });
  // A long-lived orchestrator has parsed a tenant before: warm its code paths with one.
  await orch.add({ name: 'warm', command: ['sleep', '60'] });
  await orch.remove('warm', 0);
  const rss0 = rss();
  const fds0 = fds();
  const names = Array.from({ length: n }, (_, i) => `b${i}`);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let first = Infinity;
  await Promise.all(
    names.map(async (name) => {
      await orch.add({ name, command: ['sleep', '3600'] });
      await orch.ready(name);
      first = Math.min(first, performance.now() - t0);
    }),
  );
  const all = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  // Let the event loop settle (services loaded lazily on first use stay unloaded).
  await new Promise((r) => setTimeout(r, 200));
  const out = {
    n,
    single,
    first,
    all,
    cpuMs: (cpu.user + cpu.system) / 1000,
    rssDelta: rss() - rss0,
    fdDelta: fds() - fds0,
    monitorRss: orch.list().reduce((s, t) => s + vmrss(t.pid), 0) / n,
  };
  await orch.close(1000);
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(out) + "\n");
}

function runChild(n) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), 'child', String(n)], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CLAWJAIL_LOG_LEVEL: 'error' } });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`tenants bench child (N=${n}) exited ${code}`))));
  });
}

export async function bench() {
  const results = [];
  for (const n of SIZES) results.push(await runChild(n));
  const rows = [];
  const mib = (b) => b / 1048576;
  for (const r of results) {
    rows.push({ metric: `N=${r.n}: all ready`, value: r.all, unit: 'ms' });
    rows.push({ metric: `N=${r.n}: first tenant ready (vs one launch alone)`, value: r.first, unit: 'ms', ratio: r.first / r.single, target: '<= 2x' });
  }
  const lo = results[0];
  const hi = results[results.length - 1];
  if (hi.n > lo.n) {
    const per = (k) => (hi[k] - lo[k]) / (hi.n - lo.n);
    rows.push({ metric: `start time per extra tenant (N=${lo.n}→${hi.n}, all ready)`, value: per('all'), unit: 'ms', target: '<= 5 ms' });
    rows.push({ metric: 'supervisor CPU per extra tenant (rest: sandbox setup)', value: per('cpuMs'), unit: 'ms' });
    rows.push({ metric: `supervisor RSS per extra idle tenant (N=${lo.n}→${hi.n})`, value: mib(per('rssDelta')), unit: 'MiB', target: '<= 2 MiB' });
    rows.push({ metric: `supervisor fds per extra idle tenant`, value: per('fdDelta'), unit: 'fds' });
  }
  rows.push({ metric: 'monitor process RSS per tenant (outside the workload)', value: mib(hi.monitorRss), unit: 'MiB' });
  rows.push({ metric: 'one warm launch() alone (reference)', value: hi.single, unit: 'ms' });
  return { title: 'tenants (one orchestrator, N idle tenants started at once)', rows };
}

if (process.argv[2] === 'child') await child(Number(process.argv[3]));
else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await bench();
  for (const row of r.rows) console.log(row.metric.padEnd(60), row.value.toFixed(2), row.unit, row.ratio ? `ratio ${row.ratio.toFixed(2)}x` : '', row.target ? `(target ${row.target})` : '');
}
