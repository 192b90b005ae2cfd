import { lstat, mkdir, chmod, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
      exitCode: 2,
    });
  }
}

export function controlSocketPath(name: string, ctx: RuntimeContext = {}): string {
  checkSandboxName(name);
  return join(controlBaseDir(ctx), name, SOCKET_NAME);
}

/** Creates (or checks) a private directory: ours, a real directory, mode 0700. */
export async function ensurePrivateDir(dir: string, uid = process.getuid?.() ?? 0): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory() || st.uid !== uid) {
    throw new ClawjailError('ERR_CLAWJAIL_SERVICE', `${dir} is not a directory owned by uid ${uid}; refusing to put a control socket there`, {
      path: dir,
      hint: 'remove it, or point CLAWJAIL_RUNTIME_DIR at a directory of your own',
    });
  }
  if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
}

/** Names of sandboxes that have a control socket under the base directory (live or stale). */
export async function listSandboxNames(ctx: RuntimeContext = {}): Promise<string[]> {
  const base = controlBaseDir(ctx);
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
