// Launch benchmark: `clawjail run -- true` against `node -e 0`, and a warm library launch() of
// /bin/true against bubblewrap doing comparable isolation, all measured in the same run from the
// same Node process. Medians of many runs; the first runs of each are warm-up and discarded.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const N = Number(process.env.BENCH_LAUNCH_N ?? 40);
const WARMUP = 5;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - t) : reject(new Error(`${cmd} exited ${code}`))));
  });
}

async function timeMany(f) {
  const xs = [];
  for (let i = 0; i < WARMUP + N; i++) {
    const t = await f();
    if (i >= WARMUP) xs.push(t);
  }
  return median(xs);
}

function ensureBwrap() {
  if (spawnSync('bwrap', ['--version']).status === 0) return true;
  // The peer is installed on demand so the comparison is made in the same run.
  const r = spawnSync('apt-get', ['install', '-y', '-qq', 'bubblewrap'], { stdio: 'ignore' });
  return r.status === 0 && spawnSync('bwrap', ['--version']).status === 0;
}

const BWRAP_ARGS = [
  '--unshare-all', '--die-with-parent', '--new-session',
  '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp',
  '--ro-bind', '/usr', '/usr', '--ro-bind', '/etc', '/etc',
  ...['bin', 'lib', 'lib64', 'sbin'].flatMap((d) => (existsSync(`/usr/${d}`) ? ['--symlink', `usr/${d}`, `/${d}`] : [])),
  'true',
];

export async function bench() {
  const rows = [];
  const cli = join(ROOT, 'bin', 'clawjail.js');
  const nodeE0 = await timeMany(() => run(process.execPath, ['-e', '0']));
  const cliTrue = await timeMany(() => run(process.execPath, [cli, 'run', '--', 'true']));
  rows.push({ metric: 'node -e 0', value: nodeE0, unit: 'ms' });
  rows.push({ metric: 'clawjail run -- true (CLI)', value: cliTrue, unit: 'ms', ratio: cliTrue / nodeE0, target: '<= 1.5x node -e 0' });
  // In-place mode (what a container that forbids namespaces gets), forced here on a host that allows them.
  const cliInPlace = await timeMany(() => run(process.execPath, [cli, 'run', '--mode', 'in-place', '--', 'true']));
  rows.push({ metric: 'clawjail run --mode in-place -- true (CLI)', value: cliInPlace, unit: 'ms', ratio: cliInPlace / nodeE0, target: '<= 1.5x node -e 0' });
  rows.push({ metric: '  in-place vs namespaces mode (CLI)', value: cliInPlace, unit: 'ms', ratio: cliInPlace / cliTrue });

  const { launch } = await import(join(ROOT, 'dist', 'index.js'));
  const warm = await timeMany(async () => {
    const t = performance.now();
    const sb = await launch({ command: ['true'] });
    await sb.exited;
    return performance.now() - t;
  });
  const warmNoNet = await timeMany(async () => {
    const t = performance.now();
    const sb = await launch({ command: ['true'], overrides: [{ network: { mode: 'none' } }] });
    await sb.exited;
    return performance.now() - t;
  });
  const warmInPlace = await timeMany(async () => {
    const t = performance.now();
    const sb = await launch({ command: ['true'], overrides: [{ mode: 'in-place' }] });
    await sb.exited;
    return performance.now() - t;
  });
  rows.push({ metric: 'launch() of true, warm, in-place (with egress proxy)', value: warmInPlace, unit: 'ms', ratio: warmInPlace / warm, note: 'ratio vs namespaces launch()' });
  if (ensureBwrap()) {
    const bw = await timeMany(() => run('bwrap', BWRAP_ARGS));
    rows.push({ metric: 'bwrap --unshare-all ... true (spawned from Node)', value: bw, unit: 'ms' });
    rows.push({ metric: 'launch() of true, warm (with egress proxy)', value: warm, unit: 'ms', ratio: warm / bw, target: '<= 1x bwrap' });
    rows.push({ metric: 'launch() of true, warm (--no-network)', value: warmNoNet, unit: 'ms', ratio: warmNoNet / bw, target: '<= 1x bwrap' });
  } else {
    rows.push({ metric: 'launch() of true, warm', value: warm, unit: 'ms', note: 'bubblewrap could not be installed; no ratio' });
  }
  const rawSpawn = await timeMany(() => run('/bin/true', []));
  rows.push({ metric: 'plain spawn of /bin/true from Node (floor)', value: rawSpawn, unit: 'ms' });
  return { title: 'launch', rows };
}
