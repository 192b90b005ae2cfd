import net from 'node:net';
import type { UpstreamReader } from './relay.js';

/**
 * Connecting out to a destination, to the addresses authorize() checked and to nothing else: no
 * second lookup, so no DNS-rebinding gap between the check and the connect.
 */

export type Dialer = (addresses: readonly string[], port: number, reader?: UpstreamReader) => Promise<{ socket: net.Socket; ip: string }>;

export function createDialer(opts: { connectTimeoutMs: number; closing: AbortSignal; track(socket: net.Socket): void }): Dialer {
  const { connectTimeoutMs, closing, track } = opts;

  function connectOne(ip: string, port: number, reader?: UpstreamReader): Promise<net.Socket> {
    return new Promise((resolveConnect, reject) => {
      // A tunnel's upstream may half-close while the client still sends (the relay passes that
      // on too): Node must not end the writing side by itself when the reading side ends.
      const socket = net.connect({ host: ip, port, noDelay: true, ...(reader ? { onread: reader.onread, allowHalfOpen: true } : {}) });
      track(socket);
      const timer = setTimeout(() => socket.destroy(Object.assign(new Error(`connect to ${ip}:${port} timed out`), { code: 'ETIMEDOUT' })), connectTimeoutMs);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(err);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        resolveConnect(socket);
      });
    });
  }

  /** Tries each checked address in turn. */
  return async (addresses, port, reader) => {
    let last: unknown;
    for (const ip of addresses) {
      if (closing.aborted) break;
      try {
        const socket = await connectOne(ip, port, reader);
        return { socket, ip };
      } catch (err) {
        last = err;
      }
    }
    throw last ?? new Error('proxy is closing');
  };
}
