import type http from 'node:http';
import type net from 'node:net';
import type { NativeRelay, NativeRelayResult } from '../../native.js';
import { errText, NO_TARGET, type ConnRecord } from './audit-events.js';
import type { ProxyContext } from './context.js';
import { createUpstreamReader, flushed, streamHandle, type BufferPool, type RelayEngine, type RelayFn, type StreamHandle, type UpstreamReader } from './relay.js';
import { refusalBody, refuseRaw, TLS_ALERT_ACCESS_DENIED } from './responses.js';
import { TLS_PORTS } from '../../policy/addresses.js';
import { checkTunnelStart, MAX_CLIENT_HELLO_BYTES, scanClientHello } from './sni.js';
import { parseConnectTarget, type Target } from './target.js';

/**
 * CONNECT tunnels: parse the target → a host served in-process, or authorize → connect to a
 * checked address → 200 → hold the client's first bytes until the TLS SNI check passes → hand
 * the tunnel to the native relay (or pipe it in JS).
 */

export interface TunnelContext extends ProxyContext {
  readonly readPool: BufferPool;
  /** The addon's relay; undefined: tunnels are piped in JS. */
  readonly relay: RelayFn | undefined;
  readonly relayEngine: RelayEngine;
}

/**
 * Where a CONNECT goes: out through the policy, or to a host served in-process (`served`). The
 * local services speak plain HTTP, so a CONNECT to one of them on a TLS port is refused. Pure.
 */
export function localConnectAction(target: Target, served: boolean): 'out' | 'local' | 'local-tls' {
  if (!served || target.hostIsIp) return 'out';
  return TLS_PORTS.has(target.port) ? 'local-tls' : 'local';
}

export async function serveConnect(ctx: TunnelContext, req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
  const started = performance.now();
  socket.on('error', () => socket.destroy());
  socket.setTimeout(ctx.limits.idleTimeoutMs, () => socket.destroy());
  const target = parseConnectTarget(req.url ?? '');
  const conn: ConnRecord = { id: ctx.audit.connId(), via: 'connect', target: target ?? NO_TARGET };
  if (!target) {
    const detail = `bad CONNECT target ${JSON.stringify((req.url ?? '').slice(0, 100))}; expected host:port`;
    ctx.audit.decision(conn, 'deny', 'malformed', detail);
    refuseRaw(socket, 400, 'malformed', `clawjail: ${detail}\n`);
    return;
  }
  const handler = ctx.local.get(target.host);
  const where = localConnectAction(target, handler !== undefined);
  if (where === 'local-tls') {
    // The local services speak plain HTTP: the traffic never leaves this machine, so TLS would
    // add nothing but a certificate the sandbox would have to trust. Say so instead of failing
    // the client's handshake with an unreadable error.
    const detail = `${target.host} is served by clawjail in plain HTTP only: use http://${target.host}/ (the request never leaves this machine)`;
    ctx.audit.decision(conn, 'deny', 'unsupported', detail);
    refuseRaw(socket, 403, 'unsupported', `clawjail: ${detail}\n`);
    return;
  }
  if (where === 'local' && handler) {
    ctx.audit.decision(conn, 'allow', 'local', `${target.host} is served by the supervisor`);
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) socket.unshift(head);
    ctx.connections.armHeaderDeadline(socket, true);
    handler.server.emit('connection', socket);
    return;
  }
  // Hold what the client sends before the 200 (some clients pipeline their ClientHello), and
  // notice a client that gives up: without a reader, a half-open socket would linger.
  const early: Buffer[] = head.length > 0 ? [head] : [];
  let earlyBytes = head.length;
  const onEarly = (chunk: Buffer): void => {
    early.push(chunk);
    earlyBytes += chunk.length;
    if (earlyBytes > MAX_CLIENT_HELLO_BYTES + 64) socket.destroy();
  };
  const onEarlyEnd = (): void => {
    if (!socket.writableEnded) socket.destroy();
  };
  socket.on('data', onEarly);
  socket.once('end', onEarlyEnd);
  const auth = await ctx.authorize(conn, socket);
  if (socket.destroyed) return;
  if (!auth.ok) {
    refuseRaw(socket, auth.status, auth.reason, refusalBody(target, auth));
    return;
  }
  let upstream: { socket: net.Socket; ip: string };
  const reader = createUpstreamReader(ctx.readPool);
  try {
    upstream = await ctx.dial(auth.addresses, target.port, reader);
  } catch (err) {
    const detail = `cannot connect to ${auth.addresses.join(', ')} port ${target.port}: ${errText(err)}`;
    ctx.audit.decision(conn, 'deny', 'upstream-unreachable', detail, { ip: auth.addresses[0] });
    refuseRaw(socket, 502, 'upstream-unreachable', refusalBody(target, { status: 502, reason: 'upstream-unreachable', detail }));
    return;
  }
  if (socket.destroyed) {
    upstream.socket.destroy();
    return;
  }
  socket.removeListener('data', onEarly);
  socket.removeListener('end', onEarlyEnd);
  socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  splice(ctx, conn, socket, upstream.socket, reader, upstream.ip, early.length === 1 ? (early[0] as Buffer) : Buffer.concat(early), auth.decision.allowMissingSni === true, started);
}

/**
 * Joins client and upstream. Upstream → client flows at once (some protocols speak first);
 * client → upstream waits until the first client bytes pass the SNI check. Then the tunnel goes
 * to the native relay when there is one (see handOver), else client → upstream is piped too.
 */
function splice(ctx: TunnelContext, conn: ConnRecord, client: net.Socket, upstream: net.Socket, reader: UpstreamReader, ip: string, head: Buffer, allowMissingSni: boolean, started: number): void {
  let closed = 0;
  let error: string | undefined;
  // Set once the relay owns the tunnel: destroying the Node sockets then is not the tunnel's end.
  let relayed = false;
  const onClose = (): void => {
    if (++closed === 2) ctx.audit.close(conn, ip, upstream.bytesRead, upstream.bytesWritten, started, error);
  };
  client.once('close', (hadError) => {
    if (relayed) return;
    onClose();
    if (hadError) upstream.destroy();
    else upstream.destroySoon();
  });
  upstream.once('close', (hadError) => {
    if (relayed) return;
    onClose();
    if (hadError) client.destroy();
    else client.destroySoon();
  });
  upstream.on('error', (err) => {
    error = errText(err);
    client.destroy();
  });
  client.on('error', () => upstream.destroy());
  client.setTimeout(ctx.limits.idleTimeoutMs, () => client.destroy());
  upstream.setTimeout(ctx.limits.idleTimeoutMs, () => upstream.destroy());
  upstream.once('end', () => client.end());
  reader.attach(client, upstream);

  /**
   * Hands the checked tunnel to the native relay. Node must neither read from nor close the
   * sockets afterwards, and no byte may be lost or reordered on the way:
   * 1. Node stops reading both sockets, for good: readStop() on the handles with their `reading`
   *    flag set, so no pause/resume/pipe/drain in Node can start reading again. Whatever
   *    arrives from now on waits in the kernel's socket buffers for the relay.
   * 2. The first client bytes (checked) go to the upstream through Node like everything Node
   *    already read; the relay starts only when both sockets' Node write queues are empty (a
   *    write callback), so Node's bytes reach the wire before any byte of the relay's.
   * 3. relay() works on its own close-on-exec dup()s of the two fds. Then destroying the Node
   *    sockets closes only Node's descriptors: a TCP connection ends when its last descriptor
   *    closes (Node's destroy() neither shuts down nor resets), and libuv removes its fd from
   *    epoll before closing it, so the relay's own registration of the dup is untouched.
   * If the sockets broke meanwhile, the JS handlers above already ended and reported the
   * tunnel; if relay() itself fails (e.g. EMFILE), Node's reading resumes and JS carries on.
   */
  const handOver = (first: Buffer, fn: RelayFn, ch: StreamHandle, uh: StreamHandle): void => {
    ch.readStop();
    uh.readStop();
    // Node restarts reading only when it believes a handle is not reading.
    ch.reading = true;
    uh.reading = true;
    reader.stop();
    client.pause();
    let pending = first;
    while (client.readableLength > 0) {
      const more = client.read() as Buffer | null;
      if (!more) break;
      pending = Buffer.concat([pending, more]);
    }
    upstream.write(pending);
    void Promise.all([flushed(client), flushed(upstream)]).then(() => {
      if (client.destroyed || upstream.destroyed) return;
      // Counts so far (Node's, exact now that its queues are empty); the relay adds its own.
      const bytesIn = upstream.bytesRead;
      const bytesOut = upstream.bytesWritten;
      const entry: { handle?: NativeRelay } = {};
      const onDone = (r: NativeRelayResult): void => {
        if (entry.handle) ctx.connections.relays.delete(entry.handle);
        ctx.connections.released();
        // As in the JS path, only the destination's errors are reported (the client's own
        // resets, idle timeouts and closing the proxy end a tunnel without one).
        ctx.audit.close(conn, ip, bytesIn + r.bytesBtoA, bytesOut + r.bytesAtoB, started, r.errorSide === 'b' ? r.error : undefined);
      };
      try {
        entry.handle = fn(ch.fd as number, uh.fd as number, onDone, { idleTimeoutMs: ctx.limits.idleTimeoutMs, engine: ctx.relayEngine });
      } catch (err) {
        ctx.log?.warn({ err }, 'egress proxy: native relay unavailable for a tunnel; piping it in JS');
        // The client's stream still waits for the data of its last read request: restart the
        // handle itself. The upstream's reader resumes it now, or on the client's drain.
        ch.readStart();
        uh.reading = false;
        reader.restart();
        client.pipe(upstream);
        return;
      }
      relayed = true;
      ctx.connections.relays.add(entry.handle);
      client.destroy();
      upstream.destroy();
    });
  };

  const chunks: Buffer[] = [];
  let buffered = 0;
  const inspect = (): void => {
    const buf = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, buffered);
    const scan = scanClientHello(buf);
    if (scan.kind === 'need-more') return;
    client.removeListener('data', onData);
    client.removeListener('end', onEndBeforeCheck);
    const verdict = checkTunnelStart(scan, { host: conn.target.host, hostIsIp: conn.target.hostIsIp, port: conn.target.port, allowMissingSni });
    if (!verdict.ok) {
      error = verdict.reason;
      ctx.audit.decision(conn, 'deny', verdict.reason, verdict.detail, { ip });
      reader.detach();
      upstream.destroy();
      if (scan.kind === 'client-hello' || scan.kind === 'malformed') client.end(TLS_ALERT_ACCESS_DENIED);
      else client.end();
      client.resume();
      return;
    }
    const ch = streamHandle(client);
    const uh = streamHandle(upstream);
    if (ctx.relay && ch && uh) {
      handOver(buf, ctx.relay, ch, uh);
      return;
    }
    upstream.write(buf);
    client.pipe(upstream);
  };
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk);
    buffered += chunk.length;
    inspect();
  };
  // The client stopped sending before its first bytes could be checked: nothing to forward.
  const onEndBeforeCheck = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.once('end', onEndBeforeCheck);
  client.on('data', onData);
  if (head.length > 0) onData(head);
}
