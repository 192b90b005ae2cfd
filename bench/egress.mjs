// Egress proxy benchmark: 512 MiB download direct vs through the proxy (CONNECT tunnel and plain
// HTTP forwarding), added connect latency p50/p99, and 1,000 concurrent tunnels held open with
// the proxy's RSS and fd count before, during and after. Tunnels are measured with the proxy as
// configured by default (native relay) and, for comparison in the same interleaved runs, with
// JS piping (nativeRelay: false) and the relay's splice engine, each proxy in its own process.
// A plain `socat` TCP forwarder (default options, apt-installed if missing) carries the same
// download in the same runs: the reference for what any user-space forwarder costs on this host.
// The proxy, the upstream servers and socat each run in their own process, the client on the main
// thread, so that the CPU each spends per GiB is its own: on a host with few cores, client,
// upstream and forwarder compete for them, and the throughput ratio follows the CPU the forwarder
// adds. Needs the compiled proxy in dist/ (npm run build). BENCH_EGRESS_MIB=N downloads N MiB per
// run instead of 512.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const DOWNLOAD_BYTES = Number(process.env.BENCH_EGRESS_MIB || 512) * 1024 * 1024;
const DOWNLOAD_RUNS = 3;
const LATENCY_ROUNDS = 2000;
const HELD = 1000;

// tcp: "GET <n>\n" → n bytes then close; "PING\n" → "PONG\n" (connection kept). http: GET /bytes/<n>.
const UPSTREAM = `
const http = require('node:http');
const net = require('node:net');

const block = Buffer.alloc(1 << 20, 0x61);
function send(out, n, done) {
  const pump = () => {
    while (n > 0) {
      const k = Math.min(n, block.length);
      n -= k;
      if (!out.write(k === block.length ? block : block.subarray(0, k))) return void out.once('drain', pump);
    }
    done();
  };
  pump();
}
const tcp = net.createServer({ noDelay: true }, (s) => {
  s.on('error', () => {});
  let line = '';
  s.on('data', (c) => {
    line += c.toString('latin1');
    let nl;
    while ((nl = line.indexOf('\\n')) >= 0) {
      const cmd = line.slice(0, nl);
      line = line.slice(nl + 1);
      if (cmd === 'PING') s.write('PONG\\n');
      else if (cmd.startsWith('GET ')) send(s, Number(cmd.slice(4)), () => s.end());
    }
  });
});
const web = http.createServer((req, res) => {
  const n = Number((req.url || '').split('/')[2] || 0);
  res.writeHead(200, { 'content-length': n, 'content-type': 'application/octet-stream' });
  send(res, n, () => res.end());
});
web.keepAliveTimeout = 60000;
tcp.listen(0, '127.0.0.1', () => web.listen(0, '127.0.0.1', () => process.send({ tcp: tcp.address().port, http: web.address().port })));
process.on('message', (m) => { if (m === 'close') process.exit(0); });
`;

const PROXY = `
const dist = process.env.CLAWJAIL_DIST;
const { createEgressProxy } = await import(dist + '/services/egress/index.js');
const { NetworkSchema } = await import(dist + '/profile/network.js');
const { createAuditSink } = await import(dist + '/log.js');
const { default: pino } = await import('pino');
// Audit events are built and emitted as in production, to a logger below its level.
const audit = createAuditSink({ log: pino({ level: 'warn' }) });
const relay = process.env.RELAY === 'js' ? false : process.env.RELAY || undefined;
// Room for the held tunnels below (the profile's default cap is 256 per sandbox).
const limits = { maxConnections: 4096 };
const proxy = createEgressProxy({ sandbox: 'bench', policy: NetworkSchema.parse(JSON.parse(process.env.POLICY)), audit, limits, ...(relay !== undefined ? { nativeRelay: relay } : {}) });
await proxy.listen({ host: '127.0.0.1', port: 0 });
process.send({ port: proxy.address().port });
process.on('message', (m) => {
  if (m === 'stats') process.send({ stats: proxy.stats() });
  if (m === 'close') proxy.close().then(() => process.exit(0));
});
`;

function startUpstream() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', UPSTREAM], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (ports) => resolve({ child, ...ports }));
    child.once('error', reject);
  });
}

function ensureSocat() {
  if (spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0) return true;
  // The peer is installed on demand so the comparison is made in the same run.
  const r = spawnSync('apt-get', ['install', '-y', '-qq', 'socat'], { stdio: 'ignore' });
  return r.status === 0 && spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;
}

/** `socat TCP-LISTEN:port,fork TCP:upstream` with its default options; resolves once it accepts. */
async function startSocat(upstreamPort) {
  const probe = net.createServer();
  await new Promise((r) => probe.listen(0, '127.0.0.1', r));
  const port = probe.address().port;
  await new Promise((r) => probe.close(r));
  const child = spawn('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${upstreamPort}`], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (up) return { child, port };
    await sleep(20);
  }
  child.kill();
  throw new Error('socat did not start listening');
}

function startProxy(cwd, dist, policy, relay = '') {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', PROXY], {
      cwd,
      env: { ...process.env, CLAWJAIL_DIST: dist, POLICY: JSON.stringify(policy), RELAY: relay },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.once('message', (m) => resolve({ child, port: m.port }));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`proxy exited with ${code}`)));
  });
}

/**
 * CPU seconds (user + system) the process has used, with its children that have been waited for
 * (socat forks one per connection); clock ticks are 1/100 s on Linux.
 */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100;
}

/** This process's CPU seconds (the client). */
function ownCpuSeconds() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function proxyFootprint(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+([0-9]+) kB/.exec(status)?.[1] ?? 0);
  return { rssMiB: rssKiB / 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** A socket to the upstream, directly or through a CONNECT tunnel. */
function openTcp(upstreamPort, proxyPort) {
  return new Promise((resolve, reject) => {
    if (!proxyPort) {
      const s = net.connect({ port: upstreamPort, host: '127.0.0.1', noDelay: true }, () => resolve(s));
      s.once('error', reject);
      return;
    }
    const s = net.connect({ port: proxyPort, host: '127.0.0.1', noDelay: true }, () => s.write(`CONNECT 127.0.0.1:${upstreamPort} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
    s.once('error', reject);
    let head = Buffer.alloc(0);
    const onData = (c) => {
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.removeListener('data', onData);
      if (!head.subarray(0, 12).toString().startsWith('HTTP/1.1 200')) return reject(new Error(`CONNECT refused: ${head.toString().split('\r\n')[0]}`));
      if (end + 4 < head.length) s.unshift(head.subarray(end + 4));
      resolve(s);
    };
    s.on('data', onData);
  });
}

async function downloadTcp(upstreamPort, proxyPort) {
  const started = performance.now();
  const s = await openTcp(upstreamPort, proxyPort);
  let n = 0;
  await new Promise((resolve, reject) => {
    s.on('data', (c) => (n += c.length));
    s.on('end', resolve);
    s.on('error', reject);
    s.write(`GET ${DOWNLOAD_BYTES}\n`);
  });
  s.destroy();
  if (n !== DOWNLOAD_BYTES) throw new Error(`short download: ${n}`);
  return (DOWNLOAD_BYTES / (1 << 20)) / ((performance.now() - started) / 1000);
}

function downloadHttp(httpPort, proxyPort) {
  const started = performance.now();
  const url = `http://127.0.0.1:${httpPort}/bytes/${DOWNLOAD_BYTES}`;
  const opts = proxyPort ? { host: '127.0.0.1', port: proxyPort, path: url } : { host: '127.0.0.1', port: httpPort, path: `/bytes/${DOWNLOAD_BYTES}` };
  return new Promise((resolve, reject) => {
    http
      .get({ ...opts, agent: false }, (res) => {
        let n = 0;
        res.on('data', (c) => (n += c.length));
        res.on('end', () => (n === DOWNLOAD_BYTES ? resolve((DOWNLOAD_BYTES / (1 << 20)) / ((performance.now() - started) / 1000)) : reject(new Error(`short: ${n}`))));
      })
      .on('error', reject);
  });
}

async function pingOnce(upstreamPort, proxyPort) {
  const started = performance.now();
  const s = await openTcp(upstreamPort, proxyPort);
  await new Promise((resolve, reject) => {
    s.once('data', resolve);
    s.once('error', reject);
    s.write('PING\n');
  });
  const ms = performance.now() - started;
  s.destroy();
  return ms;
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function bench() {
  const repo = new URL('..', import.meta.url).pathname;
  const dist = new URL('../dist', import.meta.url).pathname;
  const upstream = await startUpstream();
  const policy = { allow: [{ host: '127.0.0.1', ports: [upstream.tcp, upstream.http] }] };
  const proxy = await startProxy(repo, dist, policy);
  const pid = proxy.child.pid;
  const others = {};
  let socat;
  try {
    others.js = await startProxy(repo, dist, policy, 'js');
    others.splice = await startProxy(repo, dist, policy, 'splice');
    if (ensureSocat()) socat = await startSocat(upstream.tcp);
    // The same download through each path, interleaved run by run so drift hits them all. For
    // each, the CPU spent by the client (this process), the upstream and the forwarder: where
    // the time goes.
    const paths = [
      { name: 'direct', run: () => downloadTcp(upstream.tcp) },
      { name: 'clawjail', pid, run: () => downloadTcp(upstream.tcp, proxy.port) },
      { name: 'js', pid: others.js.child.pid, run: () => downloadTcp(upstream.tcp, others.js.port) },
      { name: 'splice', pid: others.splice.child.pid, run: () => downloadTcp(upstream.tcp, others.splice.port) },
      ...(socat ? [{ name: 'socat', pid: socat.child.pid, run: () => downloadTcp(socat.port) }] : []),
    ];
    const tcp = Object.fromEntries(paths.map((x) => [x.name, { runs: [], client: 0, server: 0, forwarder: 0 }]));
    const httpDirect = [];
    const httpProxied = [];
    let forwardCpu = 0;
    for (let i = 0; i < DOWNLOAD_RUNS; i++) {
      for (const path of paths) {
        const at = { client: ownCpuSeconds(), server: cpuSeconds(upstream.child.pid), forwarder: path.pid ? cpuSeconds(path.pid) : 0 };
        const rate = await path.run();
        // socat's per-connection child is counted once its parent has waited for it.
        if (path.name === 'socat') await sleep(100);
        const t = tcp[path.name];
        t.runs.push(rate);
        t.client += ownCpuSeconds() - at.client;
        t.server += cpuSeconds(upstream.child.pid) - at.server;
        if (path.pid) t.forwarder += cpuSeconds(path.pid) - at.forwarder;
      }
      httpDirect.push(await downloadHttp(upstream.http));
      const cpu = cpuSeconds(pid);
      httpProxied.push(await downloadHttp(upstream.http, proxy.port));
      forwardCpu += cpuSeconds(pid) - cpu;
    }
    const gib = (DOWNLOAD_RUNS * DOWNLOAD_BYTES) / (1 << 30);

    // Connect latency: connect (+ CONNECT and its 200 when proxied) + one round trip to the upstream.
    const direct = [];
    const proxied = [];
    for (let i = 0; i < 200; i++) await pingOnce(upstream.tcp, proxy.port); // warm-up
    for (let i = 0; i < LATENCY_ROUNDS; i++) {
      direct.push(await pingOnce(upstream.tcp));
      proxied.push(await pingOnce(upstream.tcp, proxy.port));
    }
    direct.sort((a, b) => a - b);
    proxied.sort((a, b) => a - b);

    // 1,000 tunnels held open at once, each proven live by a round trip.
    await sleep(200);
    const before = proxyFootprint(pid);
    const held = [];
    for (let i = 0; i < HELD; i += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, HELD - i) }, () => openTcp(upstream.tcp, proxy.port)));
      held.push(...batch);
    }
    await Promise.all(held.map((s) => new Promise((resolve) => (s.once('data', resolve), s.write('PING\n')))));
    const during = proxyFootprint(pid);
    for (const s of held) s.destroy();
    await sleep(500);
    const after = proxyFootprint(pid);

    const tcpD = median(tcp.direct.runs);
    const httpD = median(httpDirect);
    const httpP = median(httpProxied);
    const MiB = DOWNLOAD_BYTES >> 20;
    const label = { clawjail: 'CONNECT tunnel (native relay, copy)', js: '  same, JS piping (nativeRelay: false)', splice: '  same, relay splice engine', socat: 'plain socat TCP forwarder (peer)' };
    const throughputRows = paths
      .filter((x) => x.name !== 'direct')
      .map((x) => ({ metric: `${MiB} MiB download, ${label[x.name]}`, value: round(median(tcp[x.name].runs), 0), unit: 'MiB/s', ratio: round(median(tcp[x.name].runs) / tcpD, 2) }));
    if (socat) throughputRows.push({ metric: '  CONNECT tunnel vs socat, same run', value: round(median(tcp.clawjail.runs) / median(tcp.socat.runs), 2), unit: 'x' });
    const cpuRows = paths.map((x) => {
      const t = tcp[x.name];
      const parts = `client ${round(t.client / gib, 2)} + upstream ${round(t.server / gib, 2)}${x.pid ? ` + forwarder ${round(t.forwarder / gib, 2)}` : ''}`;
      return { metric: `CPU s per GiB, ${x.name}`, value: round((t.client + t.server + t.forwarder) / gib, 2), unit: 's', note: parts };
    });
    return {
      title: `Egress proxy (${MiB} MiB download ×${DOWNLOAD_RUNS} median, connect latency ×${LATENCY_ROUNDS}, ${HELD} held tunnels); targets: ≥ 0.8× throughput, ≤ 1 ms added p50`,
      rows: [
        { metric: `${MiB} MiB download, direct TCP`, value: round(tcpD, 0), unit: 'MiB/s' },
        ...throughputRows,
        ...cpuRows,
        { metric: `${MiB} MiB download, direct HTTP`, value: round(httpD, 0), unit: 'MiB/s' },
        { metric: `${MiB} MiB download, plain-HTTP forwarding`, value: round(httpP, 0), unit: 'MiB/s', ratio: round(httpP / httpD, 2) },
        { metric: 'proxy CPU per GiB, plain-HTTP forwarding', value: round(forwardCpu / gib, 2), unit: 's' },
        { metric: 'connect + first round trip p50, direct', value: round(pct(direct, 50)), unit: 'ms' },
        { metric: 'connect + first round trip p50, via CONNECT', value: round(pct(proxied, 50)), unit: 'ms', ratio: round(pct(proxied, 50) / pct(direct, 50), 2) },
        { metric: 'added connect latency p50', value: round(pct(proxied, 50) - pct(direct, 50)), unit: 'ms' },
        { metric: 'added connect latency p99', value: round(pct(proxied, 99) - pct(direct, 99)), unit: 'ms' },
        { metric: `proxy RSS, idle`, value: round(before.rssMiB, 1), unit: 'MiB' },
        { metric: `proxy RSS, ${HELD} tunnels held`, value: round(during.rssMiB, 1), unit: 'MiB', ratio: round(during.rssMiB / before.rssMiB, 2) },
        { metric: `proxy RSS per held tunnel`, value: round(((during.rssMiB - before.rssMiB) * 1024) / HELD, 1), unit: 'KiB' },
        { metric: `proxy RSS after closing them`, value: round(after.rssMiB, 1), unit: 'MiB' },
        { metric: `proxy fds, idle`, value: before.fds, unit: 'fds' },
        { metric: `proxy fds, ${HELD} tunnels held`, value: during.fds, unit: 'fds' },
        { metric: `proxy fds after closing them`, value: after.fds, unit: 'fds' },
      ],
    };
  } finally {
    for (const p of [proxy, ...Object.values(others)]) {
      p.child.removeAllListeners('exit');
      p.child.send('close');
      await new Promise((r) => p.child.once('exit', r));
    }
    socat?.child.kill();
    upstream.child.send('close');
    await new Promise((r) => upstream.child.once('exit', r));
  }
}
