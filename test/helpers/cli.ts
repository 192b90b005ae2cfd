import { execa, type Options, type Result, type ResultPromise } from 'execa';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = join(ROOT, 'bin', 'clawjail.js');
export const IS_ROOT = process.getuid?.() === 0;
/** The unprivileged user tests run as (nobody on Debian). */
export const UNPRIV = { uid: 65534, gid: 65534 };

/** True when every directory from / to p lets "others" traverse it. */
function traversableByOthers(p: string): boolean {
  let dir = p;
  for (;;) {
    try {
      if ((statSync(dir).mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
    const parent = dirname(dir);
    if (parent === dir) return true;
    dir = parent;
  }
}

let unprivRoot: string | undefined;

/**
 * The package as an unprivileged user can run it. A CI clone may sit in a 0700 directory;
 * then the runnable parts are hard-linked (or copied) into a world-readable temp directory.
 */
export function packageRootFor(user: 'root' | 'unprivileged'): string {
  if (user === 'root' || traversableByOthers(ROOT)) return ROOT;
  if (unprivRoot) return unprivRoot;
  const base = mkdtempSync(join(tmpdir(), 'clawjail-unpriv-pkg-'));
  for (const part of ['package.json', 'bin', 'dist', 'profiles', 'node_modules', 'build/Release/clawjail.node', 'build/Release/clawjail-init']) {
    const src = join(ROOT, part);
    if (!existsSync(src)) continue;
    mkdirSync(dirname(join(base, part)), { recursive: true, mode: 0o755 });
    try {
      cpSync(src, join(base, part), { recursive: true, preserveTimestamps: true, force: true });
    } catch {
      // best effort per part; a missing part fails the test that needs it, loudly
    }
  }
  execFileSync('chmod', ['-R', 'o+rX', base]);
  unprivRoot = base;
  return base;
}


export interface RunOptions {
  as?: 'root' | 'unprivileged';
  env?: Record<string, string>;
  input?: string;
  timeout?: number;
  cwd?: string;
  /** Give the process a pipe on fd 3 (read it from result.stdio[3]): for --status-json /dev/fd/3. */
  fd3?: boolean;
}

/** Runs `clawjail ARGS…` (as root, or as the unprivileged user through setpriv). */
export async function clawjail(args: string[], options: RunOptions = {}): Promise<Result> {
  return clawjailProcess(args, options);
}

/** Starts `clawjail ARGS…` and returns the running process (stdout/stderr piped) to talk to. */
export function clawjailProcess(args: string[], options: RunOptions = {}): ResultPromise {
  const as = options.as ?? 'root';
  const root = packageRootFor(as);
  const cli = join(root, 'bin', 'clawjail.js');
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', CLAWJAIL_LOG_FORMAT: 'text', ...options.env };
  const common: Options = { reject: false, env, extendEnv: false, timeout: options.timeout ?? 30_000, cwd: options.cwd ?? tmpdir(), ...(options.input !== undefined ? { input: options.input } : { stdin: 'ignore' }) };
  if (options.fd3) {
    delete (common as { stdin?: unknown }).stdin;
    Object.assign(common, { stdio: [options.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe', 'pipe'] });
  }
  if (as === 'unprivileged' && IS_ROOT) {
    return execa('setpriv', ['--reuid', String(UNPRIV.uid), '--regid', String(UNPRIV.gid), '--clear-groups', process.execPath, cli, ...args], common);
  }
  return execa(process.execPath, [cli, ...args], common);
}

/** Shell-quotes a script for `sh -c`. */
export const sh = (script: string): string[] => ['sh', '-c', script];

/** Runs a python3 snippet inside; prints what it prints. */
export const py = (code: string): string[] => ['python3', '-c', code];

/** A python snippet that tries an operation and prints OK or the errno name. */
export function tryOp(expr: string): string {
  return `import errno,os,socket\ntry:\n    ${expr}\n    print("OK")\nexcept OSError as e:\n    print(errno.errorcode.get(e.errno, e.errno))`;
}

export const USERS: ('root' | 'unprivileged')[] = IS_ROOT ? ['root', 'unprivileged'] : ['unprivileged'];

/** `clawjail run --status-json /dev/fd/3 ARGS…`: the result and the parsed status report. */
export async function runWithStatus<T = unknown>(args: string[], options: RunOptions = {}): Promise<{ r: Result; status: T }> {
  const r = await clawjail(['run', '--status-json', '/dev/fd/3', ...args], { ...options, fd3: true });
  const text = String(r.stdio[3] ?? '');
  if (!text) throw new Error(`no status on fd 3 (exit ${r.exitCode}): ${r.stderr}`);
  return { r, status: JSON.parse(text) as T };
}
