import { accessSync, constants, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { ClawjailError } from './errors.js';
import { packageRoot } from './paths.js';
import { errnoName } from './errno.js';

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
  /** posix_spawn of the helper with fds[i] as its fd i, an empty environment, cwd /; argv[0] is argv0 (default: path). */
  spawnHelper(o: { path: string; argv0?: string; fds: number[]; setsid: boolean }): { pid: number; pidfd: number };
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

/** Where the addon and its helper come from: a local node-gyp build, or the package's prebuilds. */
export interface NativeLocation {
  addon: string;
  /** clawjail-init from the same build as the addon: never one from elsewhere. */
  helper: string;
  origin: 'build' | 'prebuilt';
}

export interface NativeTarget {
  platform: string;
  arch: string;
  libc: string;
}

/** The file name scripts/build-prebuilds.mjs gives the addon (node-gyp-build's tags: N-API, libc). */
export function prebuiltAddonName(libc: string): string {
  return `clawjail.napi.${libc}.node`;
}

/** This process's target as node-gyp-build sees it (npm_config_arch/platform, LIBC, Alpine = musl). */
export function currentTarget(): NativeTarget {
  return {
    platform: process.env.npm_config_platform || process.platform,
    arch: process.env.npm_config_arch || process.arch,
    libc: process.env.LIBC || (process.platform === 'linux' && existsSync('/etc/alpine-release') ? 'musl' : 'glibc'),
  };
}

/**
 * The addon node-gyp-build would choose among the layouts clawjail produces, in its order: a
 * local build (build/Release, then build/Debug: what `npm install` built from source when no
 * prebuild fitted, or a developer's build) before prebuilds/<platform>-<arch>/. The helper is
 * the clawjail-init beside that addon. Undefined when none of these exists.
 */
export function locateNative(root: string, target: NativeTarget, exists: (p: string) => boolean = existsSync): NativeLocation | undefined {
  for (const config of ['Release', 'Debug']) {
    const dir = join(root, 'build', config);
    if (exists(join(dir, 'clawjail.node'))) return { addon: join(dir, 'clawjail.node'), helper: join(dir, 'clawjail-init'), origin: 'build' };
  }
  const dir = join(root, 'prebuilds', `${target.platform}-${target.arch}`);
  const file = join(dir, prebuiltAddonName(target.libc));
  if (exists(file)) return { addon: file, helper: join(dir, 'clawjail-init'), origin: 'prebuilt' };
  return undefined;
}

const REBUILD_HINT = 'reinstall clawjail, or build it from source: `npm rebuild clawjail --build-from-source` where it is installed, `npm run build:native` in a clone (needs g++, make and python3)';

let located: NativeLocation | undefined;

/** Where the addon and helper are, without loading anything (node-gyp-build only for layouts clawjail does not make). */
export function nativeLocation(): NativeLocation {
  if (located) return located;
  const found = locateNative(packageRoot, currentTarget());
  if (found) return (located = found);
  let addonFile: string;
  try {
    addonFile = (createRequire(import.meta.url)('node-gyp-build') as { resolve(dir: string): string }).resolve(packageRoot);
  } catch (e) {
    const t = currentTarget();
    throw new ClawjailError('ERR_CLAWJAIL_NATIVE', `clawjail's native addon is not built, and there is no prebuilt one for ${t.platform}-${t.arch} (${t.libc}) in ${packageRoot}`, {
      hint: 'build it from source: `npm rebuild clawjail --build-from-source` where it is installed, `npm run build:native` in a clone (needs g++, make and python3); prebuilt binaries ship for linux-x64 and linux-arm64 with glibc',
      cause: e,
    });
  }
  return (located = { addon: addonFile, helper: join(dirname(addonFile), 'clawjail-init'), origin: addonFile.includes(`${sep}prebuilds${sep}`) ? 'prebuilt' : 'build' });
}

let cached: Addon | undefined;

/** The addon: a local build first, then the prebuilt one for this platform (node-gyp-build's order). */
export function addon(): Addon {
  if (cached) return cached;
  const where = nativeLocation();
  try {
    // process.dlopen directly: require() would first start up the CommonJS loader (~1 ms).
    const mod = { exports: {} as Addon };
    process.dlopen(mod, where.addon);
    cached = withErrnoCodes(mod.exports);
  } catch (e) {
    throw new ClawjailError('ERR_CLAWJAIL_NATIVE', `cannot load clawjail's native addon ${where.addon}: ${(e as Error).message.split('\n')[0]}`, {
      hint: where.origin === 'prebuilt' ? `the prebuilt addon does not fit this system (it needs glibc >= 2.33 and libstdc++ from GCC >= 11); ${REBUILD_HINT}` : REBUILD_HINT,
      path: where.addon,
      cause: e,
    });
  }
  return cached;
}

/**
 * The addon reports a failed syscall as an Error with `errno` (and the syscall in its message);
 * callers branch on `code`, so each function's errors get the errno's name as `code` here, once,
 * from the one errno table (src/errno.ts). Classes (Channel) are left as they are.
 */
function withErrnoCodes(m: Addon): Addon {
  const out = { ...m } as Record<string, unknown>;
  for (const [key, value] of Object.entries(m)) {
    if (typeof value !== 'function' || /^[A-Z]/.test(key)) continue;
    const fn = value as (...args: unknown[]) => unknown;
    out[key] = (...args: unknown[]) => {
      try {
        return fn(...args);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err && typeof err.errno === 'number' && err.code === undefined) err.code = errnoName(err.errno);
        throw err;
      }
    };
  }
  return out as unknown as Addon;
}

let helper: string | undefined;

/**
 * The helper's argv[0]. The sandbox's PID 1 is a clone of it, so this is what /proc/1/cmdline
 * shows inside: a name, never the host path of the install.
 */
export const HELPER_ARGV0 = 'clawjail-init';

/**
 * Path of the clawjail-init executable built with the loaded addon (CLAWJAIL_INIT_PATH overrides).
 * A missing or non-executable helper is an error, never a reason to take one from another build.
 */
export function helperPath(): string {
  if (helper) return helper;
  const override = process.env.CLAWJAIL_INIT_PATH;
  return (helper = override ? checkHelper(override, 'CLAWJAIL_INIT_PATH') : checkHelper(nativeLocation()));
}

/** The helper's path once it is known to be executable; else a ClawjailError saying what to do. */
export function checkHelper(where: NativeLocation | string, source?: string): string {
  const file = typeof where === 'string' ? where : where.helper;
  try {
    accessSync(file, constants.X_OK);
    return file;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const what = typeof where === 'string' ? (source ?? 'clawjail-init') : `the clawjail-init helper beside the ${where.origin === 'build' ? 'locally built' : 'prebuilt'} addon ${where.addon}`;
    const problem = code === 'ENOENT' ? 'does not exist' : `is not executable (${code})`;
    const hint = typeof where === 'string' ? `point ${source ?? 'it'} at an executable clawjail-init, or unset it` : code === 'ENOENT' ? REBUILD_HINT : `make it executable (chmod 755 ${file}), or ${REBUILD_HINT}`;
    throw new ClawjailError('ERR_CLAWJAIL_NATIVE', `${what}: ${file} ${problem}`, { hint, path: file, cause: e });
  }
}
