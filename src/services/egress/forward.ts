import http from 'node:http';
import type net from 'node:net';
import { errText, NO_TARGET, type ConnRecord } from './audit-events.js';
import type { ProxyContext } from './context.js';
import { forwardHeaders, stripHopByHop } from './forward-headers.js';
import { refusalBody, refuseRaw, respond } from './responses.js';
import { parseProxyRequestUrl } from './target.js';

/**
 * Plain-HTTP forwarding of absolute-URI requests: parse the URL → a host served in-process, or
 * authorize (method and path included) → connect to a checked address → one request out with
 * hop-by-hop headers stripped, its answer piped back.
 */

/** Why a request target is not one the proxy forwards. Pure. */
export function badTargetDetail(url: string): string {
  return url.startsWith('/')
    ? `this is the clawjail egress proxy: send requests as absolute URIs (GET http://host/path) or use CONNECT; set HTTP_PROXY/HTTPS_PROXY to reach the network`
    : `bad request target ${JSON.stringify(url.slice(0, 100))}; a proxy request needs an absolute http:// URL (https:// goes through CONNECT)`;
}

export async function serveForward(ctx: ProxyContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const started = performance.now();
  const target = parseProxyRequestUrl(req.url ?? '');
  const method = req.method ?? 'GET';
  const conn: ConnRecord = { id: ctx.audit.connId(), via: 'http', target: target ?? NO_TARGET, method };
  if (!target) {
    const detail = badTargetDetail(req.url ?? '');
    ctx.audit.decision(conn, 'deny', 'malformed', detail);
    // A client that gets the protocol wrong is not worth keeping a connection open for.
    res.shouldKeepAlive = false;
    respond(res, 400, 'malformed', `clawjail: ${detail}\n`);
    return;
  }
  conn.path = target.pathname;
  const handler = ctx.local.get(target.host);
  if (handler && !target.hostIsIp) {
    ctx.audit.decision(conn, 'allow', 'local', `${target.host} is served by the supervisor`);
    req.url = target.requestPath;
    handler.listener(req, res);
    return;
  }
  const auth = await ctx.authorize(conn, req.socket);
  if (res.destroyed || req.socket.destroyed) return;
  if (!auth.ok) {
    respond(res, auth.status, auth.reason, refusalBody(target, auth));
    return;
  }
  let upstream: { socket: net.Socket; ip: string };
  try {
    upstream = await ctx.dial(auth.addresses, target.port);
  } catch (err) {
    const detail = `cannot connect to ${auth.addresses.join(', ')} port ${target.port}: ${errText(err)}`;
    ctx.audit.decision(conn, 'deny', 'upstream-unreachable', detail, { ip: auth.addresses[0] });
    respond(res, 502, 'upstream-unreachable', refusalBody(target, { status: 502, reason: 'upstream-unreachable', detail }));
    return;
  }
  const up = upstream.socket;
  let error: string | undefined;
  up.setTimeout(ctx.limits.idleTimeoutMs, () => up.destroy(new Error('idle timeout')));
  up.once('close', () => ctx.audit.close(conn, upstream.ip, up.bytesRead, up.bytesWritten, started, error));
  const upReq = http.request({
    createConnection: () => up,
    method,
    path: target.requestPath,
    headers: forwardHeaders(req.rawHeaders, target.hostHeader),
  });
  upReq.on('response', (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, stripHopByHop(upRes.rawHeaders));
    upRes.pipe(res);
    upRes.on('error', () => res.destroy());
  });
  upReq.on('error', (err) => {
    error = errText(err);
    if (!res.headersSent) respond(res, 502, 'upstream-unreachable', refusalBody(target, { status: 502, reason: 'upstream-unreachable', detail: error }));
    else res.destroy();
  });
  res.on('close', () => {
    if (!res.writableFinished) upReq.destroy();
  });
  req.pipe(upReq);
}

/** An Upgrade request on a plain-HTTP connection: not forwarded (a tunnel is what CONNECT is for). */
export function refuseUpgrade(ctx: ProxyContext, req: http.IncomingMessage, socket: net.Socket): void {
  ctx.connections.disarm(socket);
  socket.on('error', () => socket.destroy());
  refuseRaw(socket, 501, 'unsupported', 'clawjail: protocol upgrades over plain-HTTP forwarding are not supported; use CONNECT (wss://, or a proxy-aware client)\n');
  ctx.audit.decision({ id: ctx.audit.connId(), via: 'http', target: NO_TARGET }, 'deny', 'unsupported', `Upgrade: ${String(req.headers.upgrade ?? '').slice(0, 40)}`);
}
