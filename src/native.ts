import { accessSync, constants, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ClawjailError } from './errors.js';
import { packageRoot } from './paths.js';

export interface NativeProbe {
  kernelRelease: string;
  machine: string;
  landlockAbi: number;
  landlockErrno: number;
  seccompMode: number;
  seccompErrno: number;
  usernsErrno?: number;
  uid: number;
  gid: number;
  euid: number;
  pid: number;
  rlimits: Record<string, { soft: number | 'unlimited'; hard: number | 'unlimited' }>;
}

export interface NativeChannel {
  send(data: Buffer, fds?: number[]): void;
  close(): void;
}

/** What a relay moved, reported once when it ends. `error` is absent when both sides closed normally. */
export interface NativeRelayResult {
  bytesAtoB: number;
  bytesBtoA: number;
  /** An errno code (`ECONNRESET`, `EPIPE`…), `idle-timeout` or `cancelled`. */
  error?: string;
  /** Which socket an errno error came from. */
  errorSide?: 'a' | 'b';
}

export interface NativeRelay {
  /** Ends the relay now (both sockets closed); onDone runs before cancel() returns. No-op once ended. */
  cancel(): void;
}

export interface Addon {
  probe(options?: { skipUserns?: boolean }): NativeProbe;
  socketpair(): [number, number];
  closeFd(fd: number): void;
  /** A pipe already holding data (write end closed); returns the read end. */
  planPipe(data: Buffer): number;
  /** In-place mode: a TCP socket listening on 127.0.0.1 at a port the kernel chose (close-on-exec). */
  listenLoopback(): { fd: number; port: number };
  /** pipe2(O_CLOEXEC): [read, write]. */
  pipe(): [number, number];
  /** posix_spawn of the helper with fds[i] as its fd i, an empty environment, cwd /. */
  spawnHelper(o: { path: string; fds: number[]; setsid: boolean }): { pid: number; pidfd: number };
  /** Reaps the child and calls back once with (code, null) or (null, signal number). */
  watchExit(pid: number, pidfd: number, onExit: (code: number | null, signal: number | null) => void): void;
  Channel: new (fd: number, onMessage: (data: Buffer | null, fds: number[]) => void) => NativeChannel;
  /**
   * Moves bytes both ways between two connected stream sockets natively, on the event loop, until
   * both directions ended (half-close is passed on), an error, the idle timeout or cancel().
   * engine 'splice' (default): socket → pipe → socket, zero-copy; 'copy': recv/send through a
   * native buffer of up to 4 MiB. Works on its own close-on-exec duplicates of fdA/fdB: the caller
   * still closes its descriptors (and must stop reading/writing them). onDone is called once,
   * never from inside relay(). Absent from addons built before it existed.
   */
  relay?(
    fdA: number,
    fdB: number,
    onDone: (result: NativeRelayResult) => void,
    options?: { idleTimeoutMs?: number; engine?: 'splice' | 'copy' },
  ): NativeRelay;
}

let cached: Addon | undefined;

/** The addon, loaded prebuilt-first then from build/ (node-gyp-build). */
export function addon(): Addon {
  if (cached) return cached;
  try {
    // The usual places first (prebuilt for this platform, then the local build); node-gyp-build's
    // full search (ABI tags, libc variants) only when neither is there.
    const direct = [join(packageRoot, 'prebuilds', `linux-${process.arch}`, 'clawjail.node'), join(packageRoot, 'build', 'Release', 'clawjail.node')].find((p) => existsSync(p));
    if (direct) {
      // process.dlopen directly: require() would first start up the CommonJS loader (~1 ms).
      const mod = { exports: {} as Addon };
      process.dlopen(mod, direct);
      cached = mod.exports;
    } else {
      cached = (createRequire(import.meta.url)('node-gyp-build') as (dir: string) => Addon)(packageRoot);
    }
  } catch (e) {
    throw new ClawjailError('ERR_CLAWJAIL_NATIVE', `cannot load clawjail's native addon: ${(e as Error).message.split('\n')[0]}`, {
      hint: 'run `npm install` (or `npm run build:native`) in the clawjail package; it needs g++, make and python3',
      cause: e,
    });
  }
  return cached;
}

let helper: string | undefined;

/** Path of the clawjail-init executable that sits next to the addon. */
export function helperPath(): string {
  if (helper) return helper;
  const candidates = [
    process.env.CLAWJAIL_INIT_PATH,
    join(packageRoot, 'prebuilds', `linux-${process.arch}`, 'clawjail-init'),
    join(packageRoot, 'build', 'Release', 'clawjail-init'),
    join(packageRoot, 'build', 'Debug', 'clawjail-init'),
  ].filter((p): p is string => !!p);
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      helper = c;
      return c;
    } catch {
      // next candidate
    }
  }
  throw new ClawjailError('ERR_CLAWJAIL_NATIVE', `cannot find the clawjail-init helper (looked in ${candidates.join(', ')})`, {
    hint: 'run `npm install` (or `npm run build:native`) in the clawjail package',
  });
}
