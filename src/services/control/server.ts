import http from 'node:http';
import net from 'node:net';
import { chmod, rmdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { ClawjailError, isClawjailError } from '../../errors.js';
import type { AuditSink } from '../../log.js';
import type { ApprovalBroker, ApprovalVerdict } from '../egress/approvals.js';
import { controlBaseDir, controlSocketPath, ensurePrivateDir, type RuntimeContext } from './paths.js';
import { readBody as readBodyUpTo, sendJson as send } from './json-http.js';

/**
 * The per-sandbox control socket: small JSON over HTTP on a unix socket.
 *
 *   GET  /v1/sandbox              → { name, pid }
 *   GET  /v1/approvals            → { sandbox, pending: PendingApproval[] }
 *   POST /v1/approvals/<id>       { "verdict": "allow" | "deny" | "always" } → DecideResult
 *
 * Errors: { error: code, message } with 400 / 404 / 405 / 413.
 */

export interface ControlServerOptions extends RuntimeContext {
  sandbox: string;
  broker: ApprovalBroker;
  audit?: AuditSink;
  logger?: Logger;
  /** Overrides the path derived from the sandbox name. */
  socketPath?: string;
}

export interface ControlServer {
  readonly path: string;
  listen(): Promise<void>;
  close(): Promise<void>;
}

const MAX_BODY = 4096;
/**
 * How long close() lets requests already being answered finish. An answer can wait on the disk
 * (an "always" rule is fsync'ed before the reply); the CLI gives up after 10 s itself.
 */
const DRAIN_MS = 10_000;
const VERDICTS: readonly ApprovalVerdict[] = ['allow', 'deny', 'always'];

export function createControlServer(options: ControlServerOptions): ControlServer {
  const path = options.socketPath ?? controlSocketPath(options.sandbox, options);
  const { broker, sandbox } = options;
  let listening = false;
  /** Requests whose answer has not been sent yet, and who waits for there to be none. */
  let answering = 0;
  let onDrained: (() => void) | undefined;

  const server = http.createServer({ headersTimeout: 5_000, requestTimeout: 10_000 }, (req, res) => {
    answering++;
    res.once('close', () => {
      if (--answering === 0) onDrained?.();
    });
    handle(req, res).catch((err: unknown) => {
      options.logger?.error({ err }, 'control socket: handler failed');
      send(res, 500, { error: 'internal', message: 'internal error' });
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    if (url === '/v1/sandbox') {
      if (req.method !== 'GET') return send(res, 405, { error: 'method', message: 'use GET' });
      return send(res, 200, { name: sandbox, pid: process.pid });
    }
    if (url === '/v1/approvals') {
      if (req.method !== 'GET') return send(res, 405, { error: 'method', message: 'use GET' });
      return send(res, 200, { sandbox, pending: broker.list() });
    }
    const m = /^\/v1\/approvals\/([0-9a-f]{1,32})$/.exec(url);
    if (!m) return send(res, 404, { error: 'not-found', message: `no such endpoint ${url.slice(0, 100)}` });
    if (req.method !== 'POST') return send(res, 405, { error: 'method', message: 'use POST' });
    const body = await readBodyUpTo(req, MAX_BODY);
    if (body === null) return send(res, 413, { error: 'too-large', message: `body over ${MAX_BODY} bytes` });
    let verdict: unknown;
    try {
      verdict = (JSON.parse(body) as { verdict?: unknown }).verdict;
    } catch {
      return send(res, 400, { error: 'bad-request', message: 'body must be JSON {"verdict": "allow"|"deny"|"always"}' });
    }
    if (typeof verdict !== 'string' || !VERDICTS.includes(verdict as ApprovalVerdict)) {
      return send(res, 400, { error: 'bad-request', message: 'verdict must be "allow", "deny" or "always"' });
    }
    try {
      const result = await broker.decide(m[1] as string, verdict as ApprovalVerdict);
      options.audit?.emit({ kind: 'egress.approval', sandbox, ...result });
      return send(res, 200, result);
    } catch (err) {
      if (isClawjailError(err) && err.code === 'ERR_CLAWJAIL_NOT_FOUND') return send(res, 404, { error: 'not-found', message: err.message });
      throw err;
    }
  }

  return {
    path,
    async listen() {
      await ensurePrivateDir(dirname(path), undefined, options.socketPath ? dirname(path) : controlBaseDir(options));
      await clearStaleSocket(path, sandbox);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.removeListener('error', reject);
          resolve();
        });
      });
      listening = true;
      await chmod(path, 0o600);
    },
    async close() {
      if (!listening) return;
      listening = false;
      // The sandbox may end while an operator's `approve` is being answered (its workload finished
      // as soon as the request was let through, while the rule is still being written). Cutting
      // that connection would make the CLI report a failure for an approval that happened: stop
      // accepting, let the answers in progress go out, then close what is left.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (answering > 0) {
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          onDrained = resolve;
          timer = setTimeout(resolve, DRAIN_MS);
        });
        clearTimeout(timer);
        onDrained = undefined;
      }
      server.closeAllConnections();
      await closed;
      await unlink(path).catch(() => undefined);
      await rmdir(dirname(path)).catch(() => undefined);
    },
  };
}



/** A socket file left by a sandbox that died is removed; a live one means the name is taken. */
async function clearStaleSocket(path: string, sandbox: string): Promise<void> {
  const live = await new Promise<boolean>((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) {
    throw new ClawjailError('ERR_CLAWJAIL_SERVICE', `a sandbox named ${sandbox} is already running (its control socket ${path} answers)`, {
      path,
      hint: 'pick another name with --name',
    });
  }
  await unlink(path).catch(() => undefined);
}
