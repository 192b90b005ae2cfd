/**
 * Pieces for egress tests run from inside real sandboxes (test/integration/egress-sandbox.test.ts):
 *
 * - loopback upstreams (plain HTTP and TLS) that record each request and each TCP connection
 *   with its byte counts, so a test can tell "refused by the proxy" from "never reached";
 * - `REQ`, a shell function for scripts run inside: one parseable line per curl request;
 * - `runLibrary(as, spec)`: `launch()` with an injected resolver (and optional `onApproval`
 *   verdicts), run in a child Node process as root or as the unprivileged test user, because the
 *   supervisor's uid is what the unprivileged case is about;
 * - `waitForPending`: polls `clawjail approvals --json` until a request is held.
 */
import { execa } from 'execa';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type tls from 'node:tls';
import { clawjail, IS_ROOT, packageRootFor, UNPRIV } from './cli.js';
import type { TestCert } from './tls-cert.js';

export type As = 'root' | 'unprivileged';

export interface SeenRequest {
  method: string;
  url: string;
  host: string;
  servername?: string;
}

export interface SeenConnection {
  bytesRead: number;
  bytesWritten: number;
}

export interface LoopbackUpstream {
  port: number;
  requests: SeenRequest[];
  /** Every TCP connection accepted, complete once it has closed. */
  connections: SeenConnection[];
  /** Connections accepted so far (open or closed). */
  accepted(): number;
  reset(): void;
  close(): Promise<void>;
}

/**
 * Answers every request with 200 and JSON {path, host, sni}; records it. Listens on 127.0.0.1,
 * which a sandbox reaches only through the proxy and only when a rule names that IP.
 */
export async function startUpstream(cert?: TestCert): Promise<LoopbackUpstream> {
  const requests: SeenRequest[] = [];
  const connections: SeenConnection[] = [];
  let accepted = 0;
  const handler: http.RequestListener = (req, res) => {
    const servername = (req.socket as tls.TLSSocket).servername || undefined;
    requests.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host ?? '', ...(servername ? { servername } : {}) });
    const body = JSON.stringify({ path: req.url, host: req.headers.host, sni: servername ?? null });
    req.resume();
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  };
  const server = cert ? https.createServer({ cert: cert.cert, key: cert.key }, handler) : http.createServer(handler);
  // The raw TCP socket, before TLS: its counters are what the proxy's upstream socket sees.
  server.on('connection', (s: net.Socket) => {
    accepted++;
    s.once('close', () => connections.push({ bytesRead: s.bytesRead, bytesWritten: s.bytesWritten }));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    requests,
    connections,
    accepted: () => accepted,
    reset() {
      requests.length = 0;
      connections.length = 0;
      accepted = 0;
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/**
 * `req LABEL URL [CURL-ARGS…]` prints `LABEL<TAB>http_code<TAB>connect_code<TAB>curl_exit<TAB>reason<TAB>body`.
 * `connect_code` is the proxy's answer to CONNECT (000 for plain HTTP); `reason` is the
 * X-Clawjail-Reason header of whichever response carried one (the CONNECT answer included: -D
 * writes proxy response headers too), `-` when none did.
 *
 * `--noproxy ''` clears NO_PROXY for this request only: the sandbox's NO_PROXY names localhost and
 * 127.0.0.1 (the sandbox's own loopback), and the test's upstreams live on the *host's* loopback,
 * which nothing but the proxy can reach. The proxy address still comes from the environment.
 */
export const REQ = [
  'req() {',
  '  label=$1; shift',
  "  codes=$(curl -sS --noproxy '' --max-time 15 -o /tmp/req.body -D /tmp/req.head -w '%{http_code}\\t%{http_connect}' \"$@\" 2>/tmp/req.err)",
  '  rc=$?',
  "  reason=$(tr -d '\\r' < /tmp/req.head | sed -n 's/^[Xx]-[Cc]lawjail-[Rr]eason: //p' | tail -n 1)",
  "  printf '%s\\t%s\\t%s\\t%s\\t%s\\n' \"$label\" \"$codes\" \"$rc\" \"${reason:--}\" \"$(head -c 300 /tmp/req.body 2>/dev/null | tr -d '\\n')\"",
  '  rm -f /tmp/req.body /tmp/req.head',
  '}',
].join('\n');

export interface ReqResult {
  status: number;
  connect: number;
  exit: number;
  reason: string;
  body: string;
}

/** The `req` lines of a script's output, by label. Other lines are ignored. */
export function parseReqs(stdout: string): Record<string, ReqResult> {
  const out: Record<string, ReqResult> = {};
  for (const line of stdout.split('\n')) {
    const f = line.split('\t');
    if (f.length < 6 || !/^[0-9]{3}$/.test(f[1]!)) continue;
    out[f[0]!] = { status: Number(f[1]), connect: Number(f[2]), exit: Number(f[3]), reason: f[4]!, body: f.slice(5).join('\t') };
  }
  return out;
}

/** What the test asserts of a request: status, CONNECT answer, curl exit and reason. */
export const outcome = (r: ReqResult | undefined) => (r ? { status: r.status, connect: r.connect, exit: r.exit, reason: r.reason } : undefined);

/** A directory every uid can traverse and read (profiles, CA certificates, scripts). */
export function worldReadableDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/** A directory owned by the uid the supervisor runs as (audit logs, profiles it rewrites, runtime dirs). */
export async function supervisorOwnedDir(as: As, prefix: string): Promise<string> {
  const dir = worldReadableDir(prefix);
  if (as === 'unprivileged' && IS_ROOT) await execa('chown', [`${UNPRIV.uid}:${UNPRIV.gid}`, dir]);
  return dir;
}

export function writeWorldReadable(file: string, text: string): string {
  writeFileSync(file, text);
  chmodSync(file, 0o644);
  return file;
}

export interface LibrarySpec {
  /** launch() options that survive JSON: profile, overrides, command, name, auditLog. */
  options: { command: string[]; profile?: string; overrides?: unknown[]; name?: string; auditLog?: string };
  /** The injected resolver's table; any other name fails with ENOTFOUND. */
  hosts: Record<string, string[]>;
  /** onApproval answers by host; a host not listed is left to the control socket (so it times out). */
  verdicts?: Record<string, 'allow' | 'deny' | 'always'>;
  env?: Record<string, string>;
  timeout?: number;
}

export interface LibraryResult {
  status?: number;
  stdout: string;
  stderr: string;
  /** What onApproval was called with. */
  approvals: { id: string; host: string; port: number; via: string }[];
  error?: { code?: string; message: string };
  /** The runner's own stderr (supervisor logs), for failure messages. */
  runnerStderr: string;
}

// Written to a file (not `node -e`) so that a failure's stack names a line.
const RUNNER = `
import { finished } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
const spec = JSON.parse(process.argv[2]);
const { launch } = await import(pathToFileURL(spec.lib).href);
const approvals = [];
const resolve = async (host) => {
  const found = spec.hosts[host];
  if (!found) throw Object.assign(new Error('getaddrinfo ENOTFOUND ' + host), { code: 'ENOTFOUND' });
  return found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
};
const onApproval = spec.verdicts ? (p) => { approvals.push(p); return spec.verdicts[p.host]; } : undefined;
let stdout = '';
let stderr = '';
try {
  const sb = await launch({ ...spec.options, resolve, ...(onApproval ? { onApproval } : {}), stdio: 'pipe' });
  sb.stdin?.end();
  sb.stdout.on('data', (d) => (stdout += d));
  sb.stderr.on('data', (d) => (stderr += d));
  const [st] = await Promise.all([sb.exited, finished(sb.stdout), finished(sb.stderr)]);
  process.stdout.write(JSON.stringify({ status: st.status, stdout, stderr, approvals }));
} catch (e) {
  process.stdout.write(JSON.stringify({ stdout, stderr, approvals, error: { code: e?.code, message: String(e?.message ?? e) } }));
}
`;

let runnerFile: string | undefined;

/** Runs launch() from the built library in a Node process of the given user. */
export async function runLibrary(as: As, spec: LibrarySpec): Promise<LibraryResult> {
  if (!runnerFile || !existsSync(runnerFile)) {
    const dir = worldReadableDir('cj-egress-runner-');
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    runnerFile = writeWorldReadable(join(dir, 'run-launch.mjs'), RUNNER);
  }
  const lib = join(packageRootFor(as), 'dist', 'index.js');
  const payload = JSON.stringify({ lib, options: spec.options, hosts: spec.hosts, ...(spec.verdicts ? { verdicts: spec.verdicts } : {}) });
  const argv = [runnerFile, payload];
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', CLAWJAIL_LOG_FORMAT: 'text', ...spec.env };
  const common = { reject: false, env, extendEnv: false, timeout: spec.timeout ?? 30_000, stdin: 'ignore' as const, cwd: tmpdir() };
  const r =
    as === 'unprivileged' && IS_ROOT
      ? await execa('setpriv', ['--reuid', String(UNPRIV.uid), '--regid', String(UNPRIV.gid), '--clear-groups', process.execPath, ...argv], common)
      : await execa(process.execPath, argv, common);
  try {
    return { ...(JSON.parse(String(r.stdout)) as Omit<LibraryResult, 'runnerStderr'>), runnerStderr: String(r.stderr) };
  } catch {
    return { stdout: '', stderr: '', approvals: [], error: { message: `runner exited ${r.exitCode}: ${String(r.stdout)}\n${String(r.stderr)}` }, runnerStderr: String(r.stderr) };
  }
}

export interface PendingView {
  id: string;
  host: string;
  port: number;
  via: 'connect' | 'http';
  requests: number;
}

/** Polls `clawjail approvals --json --name NAME` (as the supervisor's user) until `pick` finds an entry. */
export async function waitForPending(
  as: As,
  name: string,
  env: Record<string, string>,
  pick: (p: PendingView) => boolean,
  ms = 10_000,
): Promise<{ entry: PendingView; listed: PendingView[] }> {
  const deadline = Date.now() + ms;
  let last = '';
  for (;;) {
    const r = await clawjail(['approvals', '--json', '--name', name], { as, env });
    const stdout = String(r.stdout);
    last = `${r.exitCode} ${stdout} ${String(r.stderr)}`;
    if (r.exitCode === 0) {
      const listed = (JSON.parse(stdout) as { sandboxes: { sandbox: string; pending: PendingView[] }[] }).sandboxes.flatMap((s) => s.pending);
      const entry = listed.find(pick);
      if (entry) return { entry, listed };
    }
    if (Date.now() > deadline) throw new Error(`no matching pending approval in ${name} after ${ms} ms; last answer: ${last}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}
