import { chmod, unlink } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { ClawjailError, isClawjailError } from '../errors.js';
import { controlBaseDir, ensurePrivateDir, type RuntimeContext } from '../services/control/paths.js';
import type { Orchestrator, TenantStatus } from './orchestrator.js';
import { readBody as readBodyUpTo, sendJson as send } from '../services/control/json-http.js';

/**
 * The socket `clawjail tenants serve` holds and `ls | add | rm | restart | logs` talk to: small
 * JSON over HTTP on a unix socket in a 0700 directory of the orchestrator's user.
 *
 *   GET    /v1/tenants                  → { tenants: (TenantStatus & { rssBytes, processes })[] }
 *   POST   /v1/tenants                  tenant spec → TenantStatus (201)
 *   DELETE /v1/tenants/NAME             → { removed: NAME, stateDir }
 *   POST   /v1/tenants/NAME/restart     → TenantStatus
 *   GET    /v1/tenants/NAME/logs        → the tail of its output (text/plain)
 *
 * Errors: { error: code, message } with 400 (bad spec), 404, 405, 409 (exists/clash), 413, 500.
 */
export function tenantsSocketPath(ctx: RuntimeContext = {}): string {
  return join(controlBaseDir(ctx), 'tenants.sock');
}

const MAX_BODY = 256 * 1024;

export interface TenantsControlServer {
  readonly path: string;
  listen(): Promise<void>;
  close(): Promise<void>;
}

const STATUS_OF_CODE: Record<string, number> = {
  ERR_CLAWJAIL_NOT_FOUND: 404,
  ERR_CLAWJAIL_TENANT_EXISTS: 409,
  ERR_CLAWJAIL_TENANT_UID: 409,
  ERR_CLAWJAIL_TENANT_STATE: 409,
  ERR_CLAWJAIL_TENANT_CONFIG: 400,
  ERR_CLAWJAIL_PROFILE: 400,
  ERR_CLAWJAIL_CREDENTIAL_MISSING: 400,
  ERR_CLAWJAIL_TENANT_CLOSED: 409,
};

export function createTenantsControlServer(orch: Orchestrator, options: { path?: string } & RuntimeContext = {}): TenantsControlServer {
  const path = options.path ?? tenantsSocketPath(options);
  let listening = false;
  const server = http.createServer({ headersTimeout: 5_000, requestTimeout: 60_000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (isClawjailError(err)) return send(res, STATUS_OF_CODE[err.code] ?? 500, { error: err.code, message: err.message });
      send(res, 500, { error: 'internal', message: `internal error: ${(err as Error).message}` });
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = (req.url ?? '/').split('?')[0]!;
    if (url === '/v1/tenants') {
      if (req.method === 'GET') {
        const tenants = orch.list().map((t) => ({ ...t, ...pick(orch.stats(t.name)) }));
        return send(res, 200, { tenants });
      }
      if (req.method !== 'POST') return send(res, 405, { error: 'method', message: 'use GET or POST' });
      const body = await readBodyUpTo(req, MAX_BODY);
      if (body === null) return send(res, 413, { error: 'too-large', message: `body over ${MAX_BODY} bytes` });
      let spec: unknown;
      try {
        spec = JSON.parse(body);
      } catch {
        return send(res, 400, { error: 'ERR_CLAWJAIL_TENANT_CONFIG', message: 'the body must be a tenant spec in JSON' });
      }
      return send(res, 201, await orch.add(spec as never));
    }
    const m = /^\/v1\/tenants\/([a-z0-9-]{1,40})(\/restart|\/logs)?$/.exec(url);
    if (!m) return send(res, 404, { error: 'not-found', message: `no such endpoint ${url.slice(0, 100)}` });
    const [, name, action] = m as unknown as [string, string, string | undefined];
    if (!action) {
      if (req.method !== 'DELETE') return send(res, 405, { error: 'method', message: 'use DELETE' });
      const { stateDir } = orch.status(name);
      await orch.remove(name);
      return send(res, 200, { removed: name, stateDir });
    }
    if (action === '/restart') {
      if (req.method !== 'POST') return send(res, 405, { error: 'method', message: 'use POST' });
      return send(res, 200, await orch.restart(name));
    }
    if (req.method !== 'GET') return send(res, 405, { error: 'method', message: 'use GET' });
    const text = orch.logs(name);
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  return {
    path,
    async listen() {
      await ensurePrivateDir(dirname(path));
      const live = await new Promise<boolean>((resolve) => {
        const s = net.connect(path);
        s.once('connect', () => (s.destroy(), resolve(true)));
        s.once('error', () => resolve(false));
      });
      if (live) {
        throw new ClawjailError('ERR_CLAWJAIL_SERVICE', `another \`clawjail tenants serve\` is running (its socket ${path} answers)`, {
          path,
          hint: 'stop it first, or give this one its own --socket',
        });
      }
      await unlink(path).catch(() => undefined);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => (server.removeListener('error', reject), resolve()));
      });
      listening = true;
      await chmod(path, 0o600);
    },
    async close() {
      if (!listening) return;
      listening = false;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await unlink(path).catch(() => undefined);
    },
  };
}

const pick = (s: { rssBytes: number; processes: number }) => ({ rssBytes: s.rssBytes, processes: s.processes });



export type ListedTenant = TenantStatus & { rssBytes: number; processes: number };

/** The client side, used by the CLI subcommands. */
export function createTenantsClient(socketPath: string, timeoutMs = 60_000) {
  function call(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request(
        { socketPath, method, path, timeout: timeoutMs, headers: payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
          return reject(
            new ClawjailError('ERR_CLAWJAIL_NOT_FOUND', `no tenants orchestrator is listening on ${socketPath} (${err.code})`, {
              path: socketPath,
              hint: 'start one with `clawjail tenants serve --config tenants.yaml` (as the same user), or give its --socket',
            }),
          );
        }
        reject(new ClawjailError('ERR_CLAWJAIL_SERVICE', `tenants socket ${socketPath}: ${err.message}`, { path: socketPath }));
      });
      req.end(payload);
    });
  }
  async function json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await call(method, path, body);
    let parsed: { error?: string; message?: string };
    try {
      parsed = JSON.parse(r.text) as typeof parsed;
    } catch {
      throw new ClawjailError('ERR_CLAWJAIL_SERVICE', `tenants socket ${socketPath} answered ${r.status} with something that is not JSON`);
    }
    if (r.status >= 200 && r.status < 300) return parsed as T;
    throw new ClawjailError(parsed.error ?? 'ERR_CLAWJAIL_SERVICE', parsed.message ?? `HTTP ${r.status}`);
  }
  return {
    list: () => json<{ tenants: ListedTenant[] }>('GET', '/v1/tenants'),
    add: (spec: unknown) => json<TenantStatus>('POST', '/v1/tenants', spec),
    remove: (name: string) => json<{ removed: string; stateDir: string }>('DELETE', `/v1/tenants/${encodeURIComponent(name)}`),
    restart: (name: string) => json<TenantStatus>('POST', `/v1/tenants/${encodeURIComponent(name)}/restart`),
    logs: async (name: string) => {
      const r = await call('GET', `/v1/tenants/${encodeURIComponent(name)}/logs`);
      if (r.status === 200) return r.text;
      const parsed = JSON.parse(r.text) as { error?: string; message?: string };
      throw new ClawjailError(parsed.error ?? 'ERR_CLAWJAIL_SERVICE', parsed.message ?? `HTTP ${r.status}`);
    },
  };
}
