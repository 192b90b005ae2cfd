import { EventEmitter } from 'node:events';
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { unlinkSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ClawjailError, isClawjailError } from '../errors.js';
import { launch, type LaunchOptions } from '../launch.js';
import { logger as rootLogger, type AuditEvent } from '../log.js';
import type { ExitStatus, Sandbox, SandboxStats } from '../sandbox.js';
import type { PendingApproval, ApprovalVerdict } from '../services/egress/approvals.js';
import { nextRestart, type RestartPolicy } from './backoff.js';
import { checkTenantSet, parseTenantSpec, parseTenantsConfig, type TenantSpec, type TenantSpecInput, type TenantsConfig, type TenantsConfigInput } from './config.js';
import { allocateUid, parsePasswdUids } from './uids.js';
import { createTurnQueue } from '../turns.js';

export type TenantState = 'starting' | 'running' | 'ready' | 'backoff' | 'failed' | 'stopping' | 'stopped';

export interface TenantStatus {
  name: string;
  state: TenantState;
  /** Host uid its processes run as. */
  uid: number;
  /** Host directory mounted at /sandbox. */
  stateDir: string;
  /** Host pid of its sandbox's monitor while one runs. */
  pid?: number;
  /** Where its gateway is published on the host (and the unix socket it is also served on). */
  gateway?: { hostAddress: string; hostPort: number; port: number; socket?: string };
  restarts: number;
  startedAt?: string;
  lastExit?: ExitStatus;
  lastError?: { code: string; message: string };
}

/** Everything the orchestrator reports, each tagged with its tenant. */
export interface TenantEvent {
  tenant: string;
  kind: 'starting' | 'started' | 'ready' | 'unhealthy' | 'exit' | 'oom' | 'restart-scheduled' | 'gave-up' | 'failed' | 'removed' | 'audit' | 'approval';
  time: string;
  [field: string]: unknown;
}

export interface OrchestratorOptions {
  config?: TenantsConfigInput;
  /** Where `{env: NAME}` credential sources are read (default process.env). Each tenant's router sees only the variables its own routes name. */
  credentialEnv?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Egress approvals (when a tenant's profile turns them on), asked with the tenant's name. */
  onApproval?: (tenant: string, pending: PendingApproval) => Promise<ApprovalVerdict | void> | ApprovalVerdict | void;
  /** Bytes of each tenant's output (stdout and stderr) kept for logs(). Default 256 KiB. */
  logBytes?: number;
  /** Where OpenClaw is found for tenants without a command (default: clawjail's cache, then PATH). */
  openclaw?: import('../openclaw/install.js').FindOptions;
  /** Also pass each output chunk here (the CLI writes them to files). */
  onOutput?: (tenant: string, stream: 'stdout' | 'stderr', chunk: Buffer) => void;
}

/**
 * Events: `event` (TenantEvent), `output` (tenant, 'stdout' | 'stderr', Buffer).
 */
export interface Orchestrator extends EventEmitter {
  /** Starts the tenants of the config; resolves when every sandbox started (readiness follows). */
  start(): Promise<TenantStatus[]>;
  /** Adds and starts a tenant; resolves once its sandbox started. */
  add(spec: TenantSpecInput): Promise<TenantStatus>;
  /** Stops a tenant (SIGTERM, then SIGKILL after graceMs) and frees its uid. Its state dir stays. */
  remove(name: string, graceMs?: number): Promise<void>;
  /** Stops and starts a tenant again now, resetting its backoff. */
  restart(name: string, graceMs?: number): Promise<TenantStatus>;
  status(name: string): TenantStatus;
  list(): TenantStatus[];
  /** Resolves when the tenant is ready (its gateway answered the health path), rejects if it fails first. */
  ready(name: string): Promise<TenantStatus>;
  /** Resources of a tenant's sandbox now. */
  stats(name: string): SandboxStats;
  /** The tail of a tenant's output. */
  logs(name: string): string;
  /** A tenant's validated spec. */
  spec(name: string): TenantSpec;
  /** The running sandbox of a tenant (undefined between restarts). */
  sandbox(name: string): Sandbox | undefined;
  /** The token the edge adds for this tenant's gateway and the one clients must present to the edge. */
  secrets(name: string): { gatewayToken?: string; edgeToken?: string };
  /** Stops every tenant (in parallel, SIGKILL after graceMs) and refuses new ones. */
  close(graceMs?: number): Promise<void>;
  readonly config: TenantsConfig;
}

interface Tenant {
  spec: TenantSpec;
  uid: number;
  stateDir: string;
  state: TenantState;
  sandbox?: Sandbox;
  restarts: number;
  attempt: number;
  startedAt?: number;
  lastExit?: ExitStatus;
  lastError?: { code: string; message: string };
  timer?: NodeJS.Timeout;
  stopping?: Promise<void>;
  removed?: boolean;
  log: Buffer[];
  logSize: number;
  secrets: { gatewayToken?: string; edgeToken?: string };
  readyWaiters: { resolve: (s: TenantStatus) => void; reject: (e: Error) => void }[];
  healthAbort?: AbortController;
  /** The gateway as run: the spec's, or OpenClaw's (port 18789, /readyz). */
  gateway?: { port: number; hostPort: number; health?: string; socket?: string };
  /** The host unix socket the gateway is served on, across restarts. */
  socketServer?: net.Server;
}

/** Default place for tenants' state: root's under /var/lib, a user's under XDG_STATE_HOME. */
export function defaultStateRoot(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string {
  if (uid === 0) return '/var/lib/clawjail/tenants';
  return join(env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state'), 'clawjail', 'tenants');
}

function readSecret(source: { env: string } | { file: string }, env: NodeJS.ProcessEnv, tenant: string, what: string): string {
  let value: string | undefined;
  try {
    value = 'env' in source ? env[source.env] : readFileSync(source.file, 'utf8');
  } catch (e) {
    throw new ClawjailError('ERR_CLAWJAIL_CREDENTIAL_MISSING', `tenant ${tenant}: cannot read the ${what} from ${'file' in source ? source.file : ''} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      hint: 'make the file readable by the orchestrator',
      cause: e,
    });
  }
  value = value?.trim();
  if (!value) {
    throw new ClawjailError('ERR_CLAWJAIL_CREDENTIAL_MISSING', `tenant ${tenant}: the ${what} is missing (${'env' in source ? `environment variable ${source.env} is not set` : `file ${source.file} is empty`})`, {
      hint: 'env' in source ? `export ${source.env}=<token> where the orchestrator starts` : `put the token in ${source.file}`,
    });
  }
  return value;
}

/** The only variables a tenant's router may read: the ones its own routes name. */
export function credentialEnvFor(spec: TenantSpec, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const r of spec.routes) if (r.credential && 'env' in r.credential && env[r.credential.env] !== undefined) out[r.credential.env] = env[r.credential.env];
  return out;
}

/** The launch() input for one tenant: pure, so it is tested as a table. */
export function tenantLaunchOptions(spec: TenantSpec, ctx: { uid: number; stateDir: string; profile?: string; env: NodeJS.ProcessEnv }): LaunchOptions {
  const overrides: Record<string, unknown>[] = [
    {
      name: spec.name,
      identity: { uid: ctx.uid, gid: ctx.uid },
      filesystem: { sandboxDir: ctx.stateDir },
      network: { allow: spec.allow },
      inference: { routes: spec.routes },
      env: { set: spec.env },
      ...(spec.gateway ? { publish: [{ hostPort: spec.gateway.hostPort, port: spec.gateway.port }], landlock: { bindPorts: [spec.gateway.port] } } : {}),
    },
  ];
  if (spec.profile) overrides.push(spec.profile);
  return {
    profile: ctx.profile ?? 'default',
    overrides,
    command: spec.command ?? ['sh', '-c', 'echo "no command given for this tenant" >&2; exit 2'],
    name: spec.name,
    credentialEnv: credentialEnvFor(spec, ctx.env),
  };
}

export function createOrchestrator(options: OrchestratorOptions = {}): Orchestrator {
  const config = parseTenantsConfig(options.config ?? {});
  const log = options.logger ?? rootLogger;
  const env = options.credentialEnv ?? process.env;
  const isRoot = process.geteuid?.() === 0;
  const myUid = process.getuid?.() ?? 0;
  const stateRoot = config.stateRoot ?? defaultStateRoot();
  const logLimit = options.logBytes ?? 256 * 1024;
  const tenants = new Map<string, Tenant>();
  const uidsInUse = new Map<number, string>();
  const emitter = new EventEmitter() as Orchestrator;
  let closed = false;
  // Tenants added together validate and prepare one per loop iteration, interleaved with the
  // launches already under way, so the first tenant is not held up by the checks of the last.
  const turns = createTurnQueue();

  const hostAccounts = (): Set<number> => {
    try {
      return parsePasswdUids(readFileSync('/etc/passwd', 'utf8'));
    } catch {
      return new Set();
    }
  };

  const emit = (tenant: string, kind: TenantEvent['kind'], fields: Record<string, unknown> = {}) => {
    const ev: TenantEvent = { tenant, kind, time: new Date().toISOString(), ...fields };
    emitter.emit('event', ev);
  };

  const get = (name: string): Tenant => {
    const t = tenants.get(name);
    if (!t) {
      throw new ClawjailError('ERR_CLAWJAIL_NOT_FOUND', `no tenant named ${name}`, {
        hint: tenants.size ? `tenants: ${[...tenants.keys()].join(', ')}` : 'there are no tenants; add one first',
      });
    }
    return t;
  };

  const statusOf = (t: Tenant): TenantStatus => {
    const published = t.sandbox?.published[0];
    return {
      name: t.spec.name,
      state: t.state,
      uid: t.uid,
      stateDir: t.stateDir,
      ...(t.sandbox && t.sandbox.status().state === 'running' ? { pid: t.sandbox.pid } : {}),
      ...(published && t.gateway ? { gateway: { ...published, ...(t.gateway.socket ? { socket: t.gateway.socket } : {}) } } : {}),
      restarts: t.restarts,
      ...(t.startedAt ? { startedAt: new Date(t.startedAt).toISOString() } : {}),
      ...(t.lastExit ? { lastExit: t.lastExit } : {}),
      ...(t.lastError ? { lastError: t.lastError } : {}),
    };
  };

  /** STATEROOT (0711: tenants can reach their own dir, list nobody's) and STATEROOT/NAME (0700, the tenant's). */
  const prepareStateDir = (t: Tenant) => {
    mkdirSync(stateRoot, { recursive: true, mode: 0o711 });
    const root = lstatSync(stateRoot);
    if (!root.isDirectory() || root.uid !== myUid) {
      throw new ClawjailError('ERR_CLAWJAIL_TENANT_STATE', `state root ${stateRoot} is not a directory owned by uid ${myUid}`, { hint: 'point stateRoot at a directory of the orchestrator\'s user', path: stateRoot });
    }
    if ((root.mode & 0o777) !== 0o711) chmodSync(stateRoot, 0o711);
    try {
      mkdirSync(t.stateDir, { mode: 0o700 });
      if (isRoot) chownSync(t.stateDir, t.uid, t.uid);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const st = lstatSync(t.stateDir);
    if (!st.isDirectory()) {
      throw new ClawjailError('ERR_CLAWJAIL_TENANT_STATE', `tenant ${t.spec.name}: state dir ${t.stateDir} is not a directory`, {
        hint: 'move it away; the orchestrator creates the directory with the tenant as owner',
        path: t.stateDir,
      });
    }
    if (st.uid !== t.uid) {
      throw new ClawjailError('ERR_CLAWJAIL_TENANT_STATE', `tenant ${t.spec.name}: state dir ${t.stateDir} is owned by uid ${st.uid}, but the tenant runs as uid ${t.uid}`, {
        hint: `it may hold another tenant's data; move it away, or chown -R ${t.uid}:${t.uid} ${t.stateDir} if it is this tenant's`,
        path: t.stateDir,
      });
    }
  };

  const appendLog = (t: Tenant, stream: 'stdout' | 'stderr', chunk: Buffer) => {
    options.onOutput?.(t.spec.name, stream, chunk);
    emitter.emit('output', t.spec.name, stream, chunk);
    t.log.push(chunk);
    t.logSize += chunk.length;
    while (t.logSize > logLimit && t.log.length > 1) t.logSize -= t.log.shift()!.length;
  };

  const settleReady = (t: Tenant, err?: Error) => {
    const waiters = t.readyWaiters.splice(0);
    for (const w of waiters) (err ? w.reject(err) : w.resolve(statusOf(t)));
  };

  /** Polls the gateway's health path through the sandbox's own connection until it answers 200. */
  /**
   * Readiness from the gateway's health path, asked through the sandbox's own connection: until
   * it first answers 200 (backing off to 1 s), then every `healthIntervalMs`. Three failures in a
   * row make a ready tenant `running` again (event `unhealthy`); a 200 makes it `ready` again.
   * A tenant without a health path is ready once its sandbox started.
   */
  const watchHealth = (t: Tenant, sb: Sandbox) => {
    const gw = t.gateway;
    const markReady = () => {
      if (t.sandbox !== sb || t.state !== 'running') return;
      t.state = 'ready';
      emit(t.spec.name, 'ready', { pid: sb.pid });
      settleReady(t);
    };
    if (!gw?.health) return markReady();
    const abort = new AbortController();
    t.healthAbort = abort;
    const interval = t.spec.gateway?.healthIntervalMs ?? 10_000;
    let delay = 50;
    let failures = 0;
    const schedule = (ms: number) => {
      if (abort.signal.aborted) return;
      const timer = setTimeout(probe, ms);
      abort.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
    };
    const settle = (ok: boolean) => {
      if (abort.signal.aborted || t.sandbox !== sb) return;
      if (ok) {
        failures = 0;
        markReady();
        return schedule(interval);
      }
      if (t.state === 'ready') {
        if (++failures >= 3) {
          t.state = 'running';
          emit(t.spec.name, 'unhealthy', { failures, pid: sb.pid });
        }
        return schedule(Math.min(interval, 1000));
      }
      delay = Math.min(delay * 2, 1000);
      schedule(Math.min(delay, interval));
    };
    const probe = () => {
      if (abort.signal.aborted) return;
      let done = false;
      const once = (ok: boolean) => (done ? undefined : ((done = true), settle(ok)));
      const req = http.request(
        {
          method: 'GET',
          path: gw.health,
          headers: { host: 'localhost', ...(t.secrets.gatewayToken ? { authorization: `Bearer ${t.secrets.gatewayToken}` } : {}) },
          createConnection: (_o: unknown, cb: (err: Error | null, s?: net.Socket) => void) => {
            sb.connect(gw.port).then((s) => cb(null, s), (e: Error) => cb(e));
            return undefined;
          },
          timeout: 2000,
        } as http.RequestOptions,
        (res) => {
          res.resume();
          once(res.statusCode === 200);
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => once(false));
      req.end();
    };
    probe();
  };

  const startSandbox = async (t: Tenant): Promise<void> => {
    const name = t.spec.name;
    t.state = 'starting';
    emit(name, 'starting', { uid: t.uid });
    let sb: Sandbox;
    try {
      prepareStateDir(t);
      let launchOptions = tenantLaunchOptions(t.spec, { uid: t.uid, stateDir: t.stateDir, ...(config.profile ? { profile: config.profile } : {}), env });
      t.gateway = t.spec.gateway;
      if (!t.spec.command) {
        const { prepareOpenClawTenant } = await import('./openclaw.js');
        const oc = await prepareOpenClawTenant(t.spec, { uid: t.uid, isRoot, stateRoot, ...(options.openclaw ? { find: options.openclaw } : {}) });
        t.gateway = oc.gateway;
        t.secrets.gatewayToken ??= oc.gatewayToken;
        const [own, ...rest] = launchOptions.overrides as Record<string, unknown>[];
        // OpenClaw's mounts and env first, then the tenant's identity, allowlist and routes; the gateway is published by OpenClaw's part.
        const { publish: _p, ...tenantPart } = own!;
        launchOptions = { ...launchOptions, profile: config.profile ?? 'openclaw', overrides: [oc.overrides, { ...tenantPart, landlock: { bindPorts: [oc.gateway.port] } }, ...rest], command: oc.command };
      }
      // Where user namespaces are forbidden (a locked-down pod), the in-place mode (profile `mode`).
      if (config.mode) launchOptions = { ...launchOptions, overrides: [...(launchOptions.overrides ?? []), { mode: config.mode }] };
      sb = await launch({
        ...launchOptions,
        stdio: ['ignore', 'pipe', 'pipe'],
        logger: log.child({ tenant: name }),
        // Every pending approval is an event tagged with the tenant, whoever answers it (this
        // callback, `clawjail approve`, or the timeout).
        onApproval: (p: PendingApproval) => {
          emit(name, 'approval', { pending: p });
          return options.onApproval?.(name, p);
        },
      });
    } catch (e) {
      const err = isClawjailError(e) ? e : new ClawjailError('ERR_CLAWJAIL_SETUP', (e as Error).message, { cause: e });
      t.lastError = { code: err.code, message: err.message.split('\n')[0]! };
      t.state = 'failed';
      emit(name, 'failed', { code: err.code, message: err.message });
      settleReady(t, err);
      throw err;
    }
    if (t.removed || closed) {
      await sb.close(0);
      return;
    }
    t.sandbox = sb;
    t.startedAt = Date.now();
    t.state = 'running';
    sb.stdout!.on('data', (d: Buffer) => appendLog(t, 'stdout', d));
    sb.stderr!.on('data', (d: Buffer) => appendLog(t, 'stderr', d));
    sb.on('audit', (e: AuditEvent) => emit(name, e.kind.startsWith('egress.approval') ? 'approval' : 'audit', { audit: e }));
    if (t.gateway?.socket && !t.socketServer) {
      try {
        await serveGatewaySocket(t);
      } catch (e) {
        t.stopping = sb.close(0).then(() => undefined);
        await t.stopping;
        t.stopping = undefined;
        t.state = 'failed';
        t.lastError = { code: (e as ClawjailError).code, message: (e as Error).message.split('\n')[0]! };
        emit(name, 'failed', { code: (e as ClawjailError).code, message: (e as Error).message });
        settleReady(t, e as Error);
        throw e;
      }
    }
    emit(name, 'started', { pid: sb.pid, uid: t.uid, ...(sb.published[0] ? { gateway: sb.published[0] } : {}) });
    void sb.exited.then((st) => onExit(t, sb, st));
    watchHealth(t, sb);
  };

  /**
   * The gateway on a host unix socket: each connection goes to the tenant's current sandbox
   * through its own connect(), so the socket outlives restarts. A stale socket file is replaced.
   */
  const serveGatewaySocket = async (t: Tenant) => {
    const path = t.gateway!.socket!;
    const port = t.gateway!.port;
    const server = net.createServer((client) => {
      client.pause();
      const sb = t.sandbox;
      if (!sb || sb.status().state !== 'running') return void client.destroy();
      sb.connect(port).then(
        (inner) => {
          client.pipe(inner).pipe(client);
          client.resume();
          const end = () => (client.destroy(), inner.destroy());
          client.on('error', end);
          inner.on('error', end);
          client.on('close', end);
          inner.on('close', end);
        },
        () => client.destroy(),
      );
    });
    try {
      if (lstatSync(path).isSocket()) unlinkSync(path);
    } catch {
      // absent
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new ClawjailError('ERR_CLAWJAIL_SERVICE', `tenant ${t.spec.name}: cannot serve the gateway on ${path}: ${e.code ?? e.message}`, { hint: 'give gateway.socket a path in an existing directory the orchestrator may write', path })),
      );
      server.listen(path, () => resolve());
    });
    chmodSync(path, 0o600);
    t.socketServer = server;
  };

  const closeGatewaySocket = async (t: Tenant) => {
    const server = t.socketServer;
    if (!server) return;
    t.socketServer = undefined;
    // Open connections end with the sandbox they lead to, which is stopped first.
    await new Promise<void>((r) => server.close(() => r()));
    try {
      unlinkSync(t.gateway!.socket!);
    } catch {
      // gone
    }
  };

  const onExit = (t: Tenant, sb: Sandbox, st: ExitStatus) => {
    if (t.sandbox !== sb) return;
    t.healthAbort?.abort();
    t.lastExit = st;
    const ran = Date.now() - (t.startedAt ?? Date.now());
    emit(t.spec.name, 'exit', { ...st, ranMs: ran });
    if (st.oomKilled) emit(t.spec.name, 'oom', { pid: sb.pid });
    if (t.stopping || t.removed || closed) return;
    settleReady(t, new ClawjailError('ERR_CLAWJAIL_TENANT_EXITED', `tenant ${t.spec.name} exited (status ${st.status}) before it was ready`));
    scheduleRestart(t, ran);
  };

  /** After a crash (or a failed restart, which counts as a run of no length): backoff, or give up. */
  const scheduleRestart = (t: Tenant, ranMs: number) => {
    const next = nextRestart(config.restart as RestartPolicy, t.attempt, ranMs);
    t.attempt = next.attempt;
    if (next.action === 'give-up') {
      t.state = 'failed';
      t.lastError = { code: 'ERR_CLAWJAIL_TENANT_CRASHING', message: `exited ${t.attempt} times in a row; not restarted` };
      emit(t.spec.name, 'gave-up', { attempts: t.attempt });
      return;
    }
    t.state = 'backoff';
    emit(t.spec.name, 'restart-scheduled', { delayMs: next.delayMs, attempt: next.attempt });
    t.timer = setTimeout(() => {
      t.timer = undefined;
      if (t.removed || closed) return;
      t.restarts++;
      startSandbox(t).catch((e: unknown) => {
        // The 'failed' event carries the error; the log gets one line, no stack.
        log.warn({ tenant: t.spec.name, code: (e as { code?: string }).code }, `restart failed: ${String((e as Error).message).split('\n')[0]}`);
        if (!t.removed && !closed) scheduleRestart(t, 0);
      });
    }, next.delayMs);
  };

  const stopSandbox = async (t: Tenant, graceMs: number): Promise<void> => {
    if (t.timer) clearTimeout(t.timer);
    t.timer = undefined;
    t.healthAbort?.abort();
    const sb = t.sandbox;
    if (!sb) {
      // Never ran (its first start failed): nothing to stop, and no retry any more.
      if (t.state === 'backoff') t.state = 'stopped';
      return;
    }
    t.state = 'stopping';
    t.stopping = sb.close(graceMs).then(() => undefined);
    await t.stopping;
    t.stopping = undefined;
    t.state = 'stopped';
  };

  /**
   * `keep`: a tenant of the config that fails to start stays, in backoff, and is retried like a
   * crashed one (the error is still returned). A tenant added through the API is rejected and
   * forgotten, so its caller sees the error and nothing is left half-added.
   */
  const add = async (input: TenantSpecInput, keep = false): Promise<TenantStatus> => {
    if (closed) throw new ClawjailError('ERR_CLAWJAIL_TENANT_CLOSED', 'the orchestrator is closing; no tenant can be added', { hint: 'start a new orchestrator' });
    const endTurn = await turns.take();
    let t: Tenant;
    try {
      t = prepareTenant(input);
    } finally {
      endTurn();
    }
    try {
      await startSandbox(t);
    } catch (e) {
      if (keep && !closed) scheduleRestart(t, 0);
      else {
        tenants.delete(t.spec.name);
        if (isRoot) uidsInUse.delete(t.uid);
      }
      throw e;
    }
    return statusOf(t);
  };

  /** Validates a new tenant against the others and reserves its name and uid. */
  const prepareTenant = (input: TenantSpecInput): Tenant => {
    if (closed) throw new ClawjailError('ERR_CLAWJAIL_TENANT_CLOSED', 'the orchestrator is closing; no tenant can be added', { hint: 'start a new orchestrator' });
    const spec = parseTenantSpec(input);
    if (tenants.has(spec.name)) throw new ClawjailError('ERR_CLAWJAIL_TENANT_EXISTS', `a tenant named ${spec.name} already exists`, { hint: 'remove it first, or choose another name' });
    checkTenantSet([...[...tenants.values()].map((x) => x.spec), spec]);
    const uid = isRoot ? allocateUid(config.uids, uidsInUse, spec.name, spec.uid, hostAccounts()) : myUid;
    if (!isRoot && spec.uid !== undefined) log.warn({ tenant: spec.name }, `tenant ${spec.name}: uid ${spec.uid} is ignored: an orchestrator that is not root runs every tenant as its own uid ${myUid}`);
    const secrets = {
      ...(spec.gateway?.token ? { gatewayToken: readSecret(spec.gateway.token, env, spec.name, 'gateway token') } : {}),
      ...(spec.edge ? { edgeToken: readSecret(spec.edge.token, env, spec.name, 'edge token') } : {}),
    };
    const t: Tenant = { spec, uid, stateDir: join(stateRoot, spec.name), state: 'starting', restarts: 0, attempt: 0, log: [], logSize: 0, secrets, readyWaiters: [] };
    if (isRoot) uidsInUse.set(uid, spec.name);
    tenants.set(spec.name, t);
    return t;
  };

  Object.assign(emitter, {
    config,
    start: async () => {
      // All at once: launch() lets each one finish as soon as its own sandbox is up.
      const results = await Promise.allSettled(config.tenants.map((t) => add(t, true)));
      const failed = results.map((r, i) => [r, config.tenants[i]!.name] as const).filter(([r]) => r.status === 'rejected');
      if (failed.length) {
        const first = (failed[0]![0] as PromiseRejectedResult).reason as Error;
        // Every tenant failing is a problem of the host or the config, not of a tenant: stop.
        if (failed.length === results.length) {
          await emitter.close(0);
          throw first;
        }
        log.error(`${failed.length} of ${results.length} tenants did not start (retried with backoff): ${failed.map(([, n]) => n).join(', ')}`);
      }
      return [...tenants.values()].map(statusOf);
    },
    add: (spec: TenantSpecInput) => add(spec),
    remove: async (name: string, graceMs = 4000) => {
      const t = get(name);
      t.removed = true;
      await stopSandbox(t, graceMs);
      settleReady(t, new ClawjailError('ERR_CLAWJAIL_TENANT_REMOVED', `tenant ${name} was removed`));
      await closeGatewaySocket(t);
      tenants.delete(name);
      uidsInUse.delete(t.uid);
      emit(name, 'removed', { stateDir: t.stateDir });
    },
    restart: async (name: string, graceMs = 4000) => {
      const t = get(name);
      await stopSandbox(t, graceMs);
      t.attempt = 0;
      t.restarts++;
      await startSandbox(t);
      return statusOf(t);
    },
    status: (name: string) => statusOf(get(name)),
    list: () => [...tenants.values()].map(statusOf),
    ready: (name: string) => {
      const t = get(name);
      if (t.state === 'ready') return Promise.resolve(statusOf(t));
      if (t.state === 'failed') return Promise.reject(new ClawjailError(t.lastError?.code ?? 'ERR_CLAWJAIL_SETUP', `tenant ${name} failed: ${t.lastError?.message ?? 'unknown'}`));
      return new Promise<TenantStatus>((resolve, reject) => t.readyWaiters.push({ resolve, reject }));
    },
    stats: (name: string) => {
      const sb = get(name).sandbox;
      return sb ? sb.stats() : { processes: 0, rssBytes: 0, cpuMs: 0 };
    },
    logs: (name: string) => Buffer.concat(get(name).log).toString('utf8'),
    sandbox: (name: string) => get(name).sandbox,
    spec: (name: string) => get(name).spec,
    secrets: (name: string) => ({ ...get(name).secrets }),
    close: async (graceMs = 4000) => {
      closed = true;
      const all = [...tenants.values()];
      await Promise.all(all.map((t) => stopSandbox(t, graceMs).then(() => closeGatewaySocket(t))));
      for (const t of all) settleReady(t, new ClawjailError('ERR_CLAWJAIL_TENANT_CLOSED', 'the orchestrator closed'));
    },
  });
  return emitter;
}
