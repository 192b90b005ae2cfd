import { lstat, mkdir, readdir, realpath } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ClawjailError } from '../../errors.js';

/**
 * Where a sandbox's control socket lives:
 * - `$CLAWJAIL_RUNTIME_DIR/<name>/control.sock` when set (containers with a read-only /run, tests);
 * - `/run/clawjail/<name>/` for root;
 * - `$XDG_RUNTIME_DIR/clawjail/<name>/` otherwise, or `<tmpdir>/clawjail-<uid>/<name>/` without it.
 * Directories are mode 0700 and must belong to the caller: the socket answers approvals, so who
 * can reach it decides who can open the sandbox's network.
 */

export interface RuntimeContext {
  env?: NodeJS.ProcessEnv;
  uid?: number;
}

export const SOCKET_NAME = 'control.sock';

export function controlBaseDir(ctx: RuntimeContext = {}): string {
  const env = ctx.env ?? process.env;
  const uid = ctx.uid ?? process.getuid?.() ?? 0;
  if (env.CLAWJAIL_RUNTIME_DIR) return env.CLAWJAIL_RUNTIME_DIR;
  if (uid === 0) return '/run/clawjail';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'clawjail');
  return join(tmpdir(), `clawjail-${uid}`);
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function checkSandboxName(name: string): void {
  if (!NAME.test(name) || name.includes('..')) {
    throw new ClawjailError('ERR_CLAWJAIL_USAGE', `invalid sandbox name ${JSON.stringify(name)}`, {
      hint: 'use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit',
    });
  }
}

export function controlSocketPath(name: string, ctx: RuntimeContext = {}): string {
  checkSandboxName(name);
  return join(controlBaseDir(ctx), name, SOCKET_NAME);
}

/**
 * Creates (or checks) the directory of a control socket. Whoever can replace any directory on the
 * way to the socket can put their own socket there and answer approvals, so every component is
 * checked, not only the last: symlinks on the way must belong to root or the caller; the real
 * directories above must belong to root or the caller and be writable by nobody else unless sticky
 * (like /tmp); the directories clawjail owns (from the base down) must be the caller's and 0700.
 */
export async function ensurePrivateDir(dir: string, uid = process.getuid?.() ?? 0, base = dir): Promise<void> {
  await createMissing(dir);
  await checkPrivateDir(dir, uid, base);
}

/** The checks of ensurePrivateDir, creating nothing (clients check before they connect). */
export async function checkPrivateDir(dir: string, uid = process.getuid?.() ?? 0, base = dir): Promise<void> {
  const refuse = (path: string, what: string, hint: string): never => {
    throw new ClawjailError('ERR_CLAWJAIL_CONTROL_DIR', `refusing to use the control socket under ${dir}: ${path} ${what}`, { path, hint });
  };
  const trusted = (owner: number) => owner === 0 || owner === uid;
  // Symlinks in the path as given: their owner can point them elsewhere at any time.
  for (const prefix of prefixes(resolve(dir))) {
    const st = await lstat(prefix).catch(() => null);
    if (st?.isSymbolicLink() && !trusted(st.uid)) refuse(prefix, `is a symlink owned by uid ${st.uid}`, 'remove it, or point CLAWJAIL_RUNTIME_DIR at a directory of your own');
  }
  let real: string;
  let realBase: string;
  try {
    real = await realpath(dir);
    realBase = await realpath(base);
  } catch (e) {
    return refuse(dir, `cannot be resolved (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'check the path, or point CLAWJAIL_RUNTIME_DIR at a directory of your own');
  }
  for (const prefix of prefixes(real)) {
    const st = await lstat(prefix);
    const ours = prefix === realBase || prefix.startsWith(realBase + '/');
    if (ours) {
      if (!st.isDirectory() || st.uid !== uid) refuse(prefix, st.isDirectory() ? `is owned by uid ${st.uid}, not by you (uid ${uid})` : 'is not a directory', `remove ${prefix} (another user may have created it to catch your approvals), or set CLAWJAIL_RUNTIME_DIR or XDG_RUNTIME_DIR to a directory of your own`);
      if ((st.mode & 0o077) !== 0) refuse(prefix, `has mode ${(st.mode & 0o777).toString(8)}, not 700`, `\`chmod 700 ${prefix}\` after checking nothing in it is someone else's, or remove it`);
    } else {
      if (!trusted(st.uid)) refuse(prefix, `belongs to uid ${st.uid}, who could replace what is inside`, 'use a runtime directory whose parents belong to root or to you (CLAWJAIL_RUNTIME_DIR or XDG_RUNTIME_DIR)');
      if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) refuse(prefix, `is writable by others (mode ${(st.mode & 0o777).toString(8)}) and not sticky`, 'use a runtime directory whose parents only root or you can write (CLAWJAIL_RUNTIME_DIR or XDG_RUNTIME_DIR)');
    }
  }
}

/** "/a/b/c" → ["/", "/a", "/a/b", "/a/b/c"] */
function prefixes(abs: string): string[] {
  const out = ['/'];
  let cur = '';
  for (const part of abs.split('/').filter(Boolean)) out.push((cur += '/' + part));
  return out;
}

/** mkdir of each missing component, 0700, one at a time (never through a swapped component: each is checked after). */
async function createMissing(dir: string): Promise<void> {
  const abs = resolve(dir);
  for (const prefix of prefixes(abs)) {
    try {
      await mkdir(prefix, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new ClawjailError('ERR_CLAWJAIL_CONTROL_DIR', `cannot create the control socket directory ${prefix}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
          path: prefix,
          hint: 'set CLAWJAIL_RUNTIME_DIR to a writable directory of your own',
          cause: e,
        });
      }
    }
  }
}

/** Names of sandboxes that have a control socket under the base directory (live or stale). */
export async function listSandboxNames(ctx: RuntimeContext = {}): Promise<string[]> {
  const base = controlBaseDir(ctx);
  const uid = ctx.uid ?? process.getuid?.() ?? 0;
  if (await lstat(base).catch(() => null)) await checkPrivateDir(base, uid, base);
  let entries: string[];
  try {
    entries = await readdir(base);
  } catch {
    return [];
  }
  const names: string[] = [];
  for (const e of entries.sort()) {
    if (!NAME.test(e)) continue;
    const st = await lstat(join(base, e, SOCKET_NAME)).catch(() => null);
    if (st?.isSocket()) names.push(e);
  }
  return names;
}

/**
 * A control socket a client may talk to: every directory on the way passes checkPrivateDir and the
 * socket is the caller's. Anything else could be another user's socket collecting approvals.
 */
export async function checkControlSocket(socket: string, ctx: RuntimeContext = {}): Promise<void> {
  const uid = ctx.uid ?? process.getuid?.() ?? 0;
  await checkPrivateDir(dirname(socket), uid, controlBaseDir(ctx));
  const st = await lstat(socket);
  if (!st.isSocket() || st.uid !== uid) {
    throw new ClawjailError('ERR_CLAWJAIL_CONTROL_DIR', `refusing to use ${socket}: ${st.isSocket() ? `it belongs to uid ${st.uid}, not to you (uid ${uid})` : 'it is not a socket'}`, {
      path: socket,
      hint: 'remove it; a sandbox you start creates its own',
    });
  }
}
