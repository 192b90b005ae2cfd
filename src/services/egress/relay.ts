import type net from 'node:net';
import { addon } from '../../native.js';

/**
 * Moving a checked tunnel's bytes: the upstream reader that feeds the client while the proxy
 * still holds the tunnel, and the pieces of the hand-over to the addon's native relay (tunnel.ts
 * does the hand-over itself). Everything here is on the per-chunk path: no extra awaits.
 */

/**
 * How the native relay moves a tunnel's bytes. `copy` (recv/send through native buffers growing
 * to 4 MiB) is the default because it measured fastest: bench/egress.mjs on a 2-core host with the
 * upstream on loopback, 512 MiB downloads, 3 interleaved runs ×3: JS piping 1325–1576 MiB/s at
 * ~0.5 s proxy CPU per GiB; `splice` 1260–1463 MiB/s at ~0.18 s (the client then copies cold pages
 * the server wrote long before, which costs it more than the proxy saves); `copy` 1846–1884 MiB/s
 * at ~0.32 s. With the upstream behind a real NIC, `splice` may win; measure there.
 */
export type RelayEngine = 'copy' | 'splice';

/**
 * Reads a tunnel's upstream side into fresh buffers that go straight to the client socket: no
 * 'data' event per chunk, and reads grow up to 1 MiB while the upstream keeps them full (a
 * download), which cuts the proxy's per-byte CPU well below pipe()'s. Bytes that arrive before
 * the client is attached are held and the upstream paused.
 */
export interface UpstreamReader {
  onread: net.OnReadOpts;
  attach(client: net.Socket, upstream: net.Socket): void;
  detach(): void;
  /** No more resuming the upstream on the client's drain (the tunnel goes to the relay)… */
  stop(): void;
  /** …unless the relay could not take it after all. */
  restart(): void;
}

const MIN_READ = 16 * 1024;
const MAX_READ = 1024 * 1024;

/**
 * Full-size read buffers whose writes completed, shared by a proxy's tunnels. Allocating a fresh
 * 1 MiB buffer per read costs page faults and zeroing in the kernel on every read; a few
 * recycled ones avoid that, and the cap bounds what idle tunnels keep.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  constructor(private readonly max: number) {}
  take(size: number): Buffer {
    return (size === MAX_READ ? this.free.pop() : undefined) ?? Buffer.allocUnsafeSlow(size);
  }
  give(buf: Buffer): void {
    if (buf.length === MAX_READ && this.free.length < this.max) this.free.push(buf);
  }
}

export function createUpstreamReader(pool: BufferPool): UpstreamReader {
  let size = 64 * 1024;
  let client: net.Socket | undefined;
  let upstream: net.Socket | undefined;
  let detached = false;
  let stopped = false;
  const held: Buffer[] = [];
  const resume = (): void => {
    if (!detached && !stopped) upstream?.resume();
  };
  return {
    onread: {
      // Never a buffer whose bytes may still sit in the client's write queue: it comes back to
      // the pool only from the write's completion callback.
      buffer: () => pool.take(size),
      callback: (n, buf) => {
        if (detached) return false;
        const whole = buf as Buffer;
        const chunk = whole.subarray(0, n);
        if (n === size && size < MAX_READ) size *= 2;
        else if (n < size / 8 && size > MIN_READ) size /= 2;
        if (!client) {
          held.push(chunk);
          return false;
        }
        const more = client.write(chunk, (err) => {
          if (!err) pool.give(whole);
        });
        if (!more) {
          client.once('drain', resume);
          return false;
        }
        return true;
      },
    },
    attach(c, u) {
      client = c;
      upstream = u;
      for (const b of held) c.write(b);
      held.length = 0;
      if (c.writableNeedDrain) c.once('drain', resume);
      else u.resume();
    },
    detach() {
      detached = true;
      held.length = 0;
    },
    stop() {
      stopped = true;
    },
    restart() {
      stopped = false;
      if (client?.writableNeedDrain) client.once('drain', resume);
      else resume();
    },
  };
}

export type RelayFn = NonNullable<ReturnType<typeof addon>['relay']>;

/** The part of a net.Socket's libuv handle (TCPWrap/PipeWrap) the relay hand-over uses. */
export interface StreamHandle {
  fd?: number;
  reading?: boolean;
  readStop(): number;
  readStart(): number;
}

/** The socket's handle when it has a usable fd (not on a TLS socket or one already closed). */
export function streamHandle(s: net.Socket): StreamHandle | undefined {
  const h = (s as unknown as { _handle?: StreamHandle | null })._handle;
  if (!h || typeof h.fd !== 'number' || h.fd < 0 || typeof h.readStop !== 'function' || s.destroyed) return undefined;
  return h;
}

/** The addon's relay, or undefined when the addon is missing or predates it (JS piping then). */
export function nativeRelay(): RelayFn | undefined {
  try {
    const a = addon();
    return typeof a.relay === 'function' ? a.relay.bind(a) : undefined;
  } catch {
    return undefined;
  }
}

const EMPTY = Buffer.alloc(0);

/** Resolves once everything written to the socket so far has left Node (or the socket died). */
export function flushed(s: net.Socket): Promise<void> {
  if (s.writableLength === 0 || s.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    // Already ended (the other side half-closed first): 'finish' comes once the queue is out.
    if (s.writableEnded) {
      s.once('finish', resolve);
      s.once('close', resolve);
      return;
    }
    // Writes complete in order: the callback of an empty write comes after all earlier ones.
    s.write(EMPTY, () => resolve());
  });
}
