import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import type { Orchestrator } from './orchestrator.js';

/**
 * The front door: one port for every tenant. A request is routed by its Host header
 * (`edge.host`, or `NAME.<anything>`) or by a `/t/NAME/` path prefix, must carry the tenant's
 * edge token (`Authorization: Bearer …`), and is forwarded to the tenant's gateway through the
 * sandbox's own connection, with the client's credentials replaced by the gateway's token. The
 * gateway token never leaves the host; a tenant without an edge token is not reachable here.
 */

export interface EdgeTenant {
  name: string;
  host?: string;
}

/** Which tenant a request is for, and the path the gateway gets. Pure. */
export function routeEdge(hostHeader: string | undefined, path: string, tenants: readonly EdgeTenant[]): { tenant: string; path: string } | undefined {
  const host = (hostHeader ?? '').toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  const explicit = tenants.find((t) => t.host !== undefined && t.host === host);
  if (explicit) return { tenant: explicit.name, path };
  const label = host.split('.')[0];
  if (host.includes('.')) {
    const byLabel = tenants.find((t) => t.host === undefined && t.name === label);
    if (byLabel) return { tenant: byLabel.name, path };
  }
  const m = /^\/t\/([a-z0-9-]{1,40})(\/.*)?$/.exec(path.split('?')[0]!);
  if (m) {
    const t = tenants.find((x) => x.name === m[1]);
    if (t) return { tenant: t.name, path: (m[2] ?? '/') + (path.includes('?') ? path.slice(path.indexOf('?')) : '') };
  }
  return undefined;
}

/** Constant-time comparison of a presented bearer token with the expected one. */
export function tokenMatches(header: string | undefined, expected: string): boolean {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) return false;
  const a = createHash('sha256').update(m[1]!).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'authorization', 'host']);

export async function createEdge(orch: Orchestrator, options: { port: number; host?: string }): Promise<{ port: number; close(): Promise<void> }> {
  const edgeTenants = (): EdgeTenant[] =>
    orch
      .list()
      .filter((s) => orch.secrets(s.name).edgeToken !== undefined)
      .map((s) => {
        const host = orch.spec(s.name).edge?.host;
        return { name: s.name, ...(host ? { host } : {}) };
      });

  type Target = { name: string; path: string; port: number; gatewayToken?: string; connect: () => Promise<net.Socket> };
  /** Routing, auth and readiness: a target, or the status and message to answer with. */
  const resolve = (req: http.IncomingMessage): Target | { status: number; message: string; headers?: Record<string, string> } => {
    const route = routeEdge(req.headers.host, req.url ?? '/', edgeTenants());
    if (!route) return { status: 404, message: 'no tenant for this host or path' };
    const secrets = orch.secrets(route.tenant);
    if (!tokenMatches(req.headers.authorization, secrets.edgeToken!)) return { status: 401, message: 'missing or wrong token for this tenant', headers: { 'WWW-Authenticate': 'Bearer' } };
    const status = orch.status(route.tenant);
    const sb = orch.sandbox(route.tenant);
    if (status.state !== 'ready' || !sb || !status.gateway) return { status: 503, message: `tenant ${route.tenant} is ${status.state}`, headers: { 'Retry-After': '2' } };
    const port = status.gateway.port;
    return { name: route.tenant, path: route.path, port, ...(secrets.gatewayToken ? { gatewayToken: secrets.gatewayToken } : {}), connect: () => sb.connect(port) };
  };

  const forwardHeaders = (req: http.IncomingMessage, t: Target): Record<string, string | string[]> => {
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) out[k] = v;
    out.host = 'localhost';
    out['x-forwarded-for'] = req.socket.remoteAddress ?? '';
    if (t.gatewayToken) out.authorization = `Bearer ${t.gatewayToken}`;
    return out;
  };

  const refuse = (res: http.ServerResponse, r: { status: number; message: string; headers?: Record<string, string> }) => {
    const body = JSON.stringify({ error: r.status, message: r.message });
    res.writeHead(r.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...r.headers });
    res.end(body);
  };

  const server = http.createServer((req, res) => {
    const t = resolve(req);
    if (!('connect' in t)) return refuse(res, t);
    const up = http.request(
      {
        method: req.method,
        path: t.path,
        headers: forwardHeaders(req, t),
        createConnection: (_o: unknown, cb: (err: Error | null, s?: net.Socket) => void) => {
          t.connect().then((s) => cb(null, s), (e: Error) => cb(e));
          return undefined;
        },
      } as http.RequestOptions,
      (upRes) => {
        const headers = { ...upRes.headers };
        delete headers.connection;
        delete headers['keep-alive'];
        res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => (res.headersSent ? res.destroy() : refuse(res, { status: 502, message: `tenant ${t.name}'s gateway did not answer` })));
    req.pipe(up);
  });

  // WebSocket and other upgrades: same routing and auth, then bytes both ways.
  server.on('upgrade', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const t = resolve(req);
    if (!('connect' in t)) {
      client.end(`HTTP/1.1 ${t.status} ${http.STATUS_CODES[t.status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    t.connect().then(
      (inner) => {
        const headers = forwardHeaders(req, t);
        headers.connection = 'Upgrade';
        headers.upgrade = req.headers.upgrade ?? '';
        const lines = Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}: ${x}`) : [`${k}: ${v}`]));
        inner.write(`${req.method} ${t.path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
        if (head.length) inner.write(head);
        inner.pipe(client).pipe(inner);
        const end = () => (client.destroy(), inner.destroy());
        client.on('error', end);
        inner.on('error', end);
        client.on('close', end);
        inner.on('close', end);
      },
      () => client.end('HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'),
    );
  });

  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(options.port, options.host ?? '127.0.0.1', () => res());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((res) => {
        server.close(() => res());
        server.closeAllConnections();
      }),
  };
}
