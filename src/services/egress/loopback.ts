import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { AuditSink } from '../../log.js';
import { LOOPBACK_HOST } from '../../policy/addresses.js';
import type { NetworkConfig } from '../../profile/network.js';
import { matchEgress } from './policy.js';

/**
 * Host-loopback services a rule allows (`host: 127.0.0.1, ports: [11434]`): inside the sandbox
 * 127.0.0.1 is the sandbox's own loopback, so init listens on each such port there and every
 * connection is forwarded here to the host's 127.0.0.1 on the same port, after the same policy
 * decision the proxy makes (deny rules win) and with the same audit events. Programs reach the
 * service by the address the user wrote, proxy variables or not.
 */

export interface LoopbackForwarder {
  /** Serves init's listening socket for `port`. */
  serve(fd: number, port: number): Promise<void>;
  close(): Promise<void>;
}

export interface LoopbackForwarderOptions {
  sandbox: string;
  policy: NetworkConfig;
  audit: AuditSink;
  logger?: Logger;
  /** Where forwarded connections go (tests); default the host's 127.0.0.1. */
  target?: (port: number) => { host: string; port: number };
}

export function createLoopbackForwarder(options: LoopbackForwarderOptions): LoopbackForwarder {
  const { sandbox, policy, audit } = options;
  const servers: net.Server[] = [];
  const open = new Set<net.Socket>();
  let next = 0;

  function forward(client: net.Socket, port: number): void {
    const conn = `l${(++next).toString(36)}`;
    const base = { kind: 'egress.decision', sandbox, conn, via: 'loopback', host: LOOPBACK_HOST, port };
    // Both checks the proxy makes: the destination, then the address it connects to.
    let d = matchEgress(policy, { host: LOOPBACK_HOST, port });
    if (d.action === 'allow') d = matchEgress(policy, { host: LOOPBACK_HOST, port, ip: LOOPBACK_HOST });
    if (d.action !== 'allow') {
      audit.emit({ ...base, decision: 'deny', reason: d.reason, detail: d.detail });
      client.destroy();
      return;
    }
    audit.emit({ ...base, decision: 'allow', reason: d.reason, detail: d.detail, ...(d.rule ? { rule: d.rule } : {}) });
    const started = performance.now();
    const to = options.target?.(port) ?? { host: LOOPBACK_HOST, port };
    const upstream = net.connect({ ...to, allowHalfOpen: true });
    open.add(client);
    open.add(upstream);
    let error: string | undefined;
    let closed = 0;
    const done = () => {
      if (++closed < 2) return;
      open.delete(client);
      open.delete(upstream);
      audit.emit({
        kind: 'egress.close',
        sandbox,
        conn,
        via: 'loopback',
        host: LOOPBACK_HOST,
        port,
        ip: LOOPBACK_HOST,
        bytesIn: upstream.bytesRead,
        bytesOut: upstream.bytesWritten,
        durationMs: Math.round(performance.now() - started),
        ...(error ? { error } : {}),
      });
    };
    const fail = (e: NodeJS.ErrnoException) => {
      error ??= e.code ?? e.message;
      client.destroy();
      upstream.destroy();
    };
    client.on('error', fail).on('close', done);
    upstream.on('error', fail).on('close', done);
    // Half-closes travel both ways (a client that shuts down its write side still gets the answer).
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  }

  return {
    serve(fd, port) {
      return new Promise((resolve, reject) => {
        const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => forward(socket, port));
        servers.push(server);
        server.once('error', reject);
        server.listen({ fd }, () => {
          server.off('error', reject);
          server.on('error', (err) => options.logger?.warn({ err, port }, 'loopback forwarder: accept failed'));
          resolve();
        });
      });
    },
    async close() {
      for (const s of open) s.destroy();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}
