import type http from 'node:http';
import type net from 'node:net';
import type { Target } from './target.js';

/**
 * The proxy's own answers to a client: a refusal on a raw socket (CONNECT, parse errors, the
 * connection cap), on an HTTP response (forwarded requests), and the one-line body both carry.
 */

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

// TLS alert, fatal, access_denied: the client's TLS stack reports a clear handshake failure
// where a bare close would look like a network fault.
export const TLS_ALERT_ACCESS_DENIED = Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x31]);

export function hostPort(t: Target): string {
  return `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
}

/** One line: destination, what happened, the reason token (as in X-Clawjail-Reason), why. Pure. */
export function refusalBody(target: Target, r: { status: number; reason: string; detail: string }): string {
  return `clawjail: ${hostPort(target)} ${r.status === 403 ? 'refused' : 'failed'} (${r.reason}): ${r.detail}\n`;
}

/** The whole HTTP/1.1 refusal written on a raw socket. Pure. */
export function rawRefusal(status: number, reason: string, body: string): string {
  return (
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nX-Clawjail-Reason: ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

export function refuseRaw(socket: net.Socket, status: number, reason: string, body: string, lingerMs = 2_000): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(rawRefusal(status, reason, body));
  // A client that never reads must not keep the socket (and its buffer) alive.
  setTimeout(() => socket.destroy(), lingerMs).unref();
}

export function respond(res: http.ServerResponse, status: number, reason: string, body: string): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  res.writeHead(status, {
    'X-Clawjail-Reason': reason,
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}
