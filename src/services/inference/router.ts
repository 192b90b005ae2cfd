import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { lstat, unlink } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { AuditSink } from '../../log.js';
import type { InferenceConfig } from '../../profile/inference.js';
import { missingCredentialReason } from './credentials.js';
import { capText, exchangeEvent, openExchange, writeRouterError, type Exchange } from './exchange.js';
import { forward, MAX_AUDIT_BODY, type ForwardContext } from './forward.js';
import { applyModelPolicy } from './model-policy.js';
import { guessApi, readBody } from './request.js';
import { clip, filterQuery, resolveRoute, splitTarget } from './routing.js';
import { createUpstream, type Upstream } from './upstream.js';

/**
 * The inference router: an HTTP server that forwards a fixed set of model-API paths to the
 * route's upstream with the route's key, and nothing else. It holds the keys; the sandbox holds
 * only the address. The same request listener serves a listening fd handed over from inside the
 * sandbox, a host/port, a unix socket, and the egress proxy's `inference.local` in-process.
 *
 * Per request: resolve the route (routing.ts) → read the body and apply the model policy
 * (request.ts, model-policy.ts) → forward it and relay the answer (forward.ts, upstream.ts) →
 * one audit event (exchange.ts).
 */


export type ListenTarget = { fd: number } | { host: string; port: number } | { path: string };

export interface InferenceRouter {
  /** The request listener; the egress proxy calls it for http://inference.local/… */
  handler: http.RequestListener;
  /** Serves one more listener; resolves with its address (a path for unix sockets). */
  listen(target: ListenTarget): Promise<AddressInfo | string>;
  /** Stops all listeners, aborts requests in flight, and releases upstream connections. */
  close(): Promise<void>;
}

export interface InferenceRouterOptions {
  sandbox: string;
  config: InferenceConfig;
  /** Route name → key, from resolveCredentials(). */
  credentials: ReadonlyMap<string, string>;
  audit: AuditSink;
  logger?: Logger;
  /** Largest request body accepted, in bytes (default 32 MiB). */
  maxBodyBytes?: number;
}

const DEFAULT_MAX_BODY = 32 << 20;

export function createInferenceRouter(options: InferenceRouterOptions): InferenceRouter {
  const { sandbox, config, credentials, audit } = options;
  const log = options.logger?.child({ service: 'inference' });
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const upstreams = new Map<string, Upstream>();
  for (const route of config.routes) upstreams.set(route.name, createUpstream(route, credentials.get(route.name)));
  const servers = new Set<http.Server>();
  const inFlight = new Set<http.ClientRequest>();
  let closing = false;
  const finish = (x: Exchange): void => {
    if (x.done) return;
    x.done = true;
    audit.emit(exchangeEvent(sandbox, x, performance.now()));
  };
  /** Answers with the router's own error in the API's shape. */
  const refuse: ForwardContext['refuse'] = (res, x, status, code, message, extra) => {
    writeRouterError(res, x, status, code, message, extra);
    finish(x);
  };
  const ctx: ForwardContext = { auditBodies: config.auditBodies === true, log, inFlight, refuse, finish };

  const handler: http.RequestListener = (req, res) => {
    handle(req, res).catch((err: unknown) => {
      log?.error({ err }, 'inference router failed on a request');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"message":"internal router error","type":"server_error","param":null,"code":null}}');
      else res.destroy();
    });
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const decision = resolveRoute(config, method, req.url ?? '/');
    const x = openExchange(performance.now(), decision.route, decision.route?.api ?? guessApi(req.headers, config), method, clip(splitTarget(req.url ?? '/').path));
    res.on('close', () => {
      if (x.done) return;
      // The caller went away first: stop the upstream so it stops generating (and billing).
      x.error = 'client_closed';
      if (x.status === 0) x.status = 499;
      x.upstream?.destroy();
      finish(x);
    });

    if (closing) return refuse(res, x, 503, 'router_closing', 'the inference router is shutting down.');
    if (decision.kind === 'refuse') {
      return refuse(res, x, decision.status, decision.code, decision.message, decision.allow ? { allow: decision.allow } : undefined);
    }
    const { route, apiPath } = decision;
    const up = upstreams.get(route.name)!;
    const { query, dropped } = filterQuery(route.api, apiPath, decision.query);
    if (dropped.length > 0) x.droppedQuery = dropped;

    let body: Buffer = Buffer.alloc(0);
    if (method === 'POST') {
      const read = await readBody(req, maxBody);
      if (read === 'aborted') return;
      if (read === 'too_large') {
        return refuse(res, x, 413, 'body_too_large', `route "${route.name}": the request body is larger than ${maxBody} bytes.`, { connection: 'close' });
      }
      x.bytesIn = read.length;
      const policy = applyModelPolicy(route, read);
      if (!policy.ok) {
        x.model = policy.model;
        return refuse(res, x, policy.status, policy.code, policy.message);
      }
      body = policy.body;
      x.model = policy.model;
      x.upstreamModel = policy.upstreamModel;
      x.stream = (policy.json as { stream?: unknown } | undefined)?.stream === true;
      if (config.auditBodies) x.requestBody = capText(body, MAX_AUDIT_BODY);
    }
    if (route.credential && up.credential === undefined) {
      return refuse(res, x, 503, 'credential_missing', `route "${route.name}" has no API key: ${missingCredentialReason(route)}. Set it and restart the sandbox.`);
    }
    if (res.destroyed) return;
    forward(ctx, { up, method, apiPath, query, body }, req, res, x, 0);
  }

  async function listen(target: ListenTarget): Promise<AddressInfo | string> {
    if (closing) throw new Error('inference router is closed');
    const server = http.createServer(handler);
    if ('path' in target) await removeStaleSocket(target.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const done = () => {
        server.off('error', reject);
        resolve();
      };
      if ('fd' in target) server.listen({ fd: target.fd }, done);
      else if ('path' in target) server.listen({ path: target.path }, done);
      else server.listen({ host: target.host, port: target.port }, done);
    });
    server.on('error', (err) => log?.error({ err }, 'inference listener failed'));
    servers.add(server);
    return server.address() ?? ('path' in target ? target.path : '');
  }

  async function close(): Promise<void> {
    closing = true;
    for (const r of inFlight) r.destroy();
    await Promise.all(
      [...servers].map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    servers.clear();
    for (const up of upstreams.values()) up.agent.destroy();
  }

  return { handler, listen, close };
}

async function removeStaleSocket(path: string): Promise<void> {
  try {
    if ((await lstat(path)).isSocket()) await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
