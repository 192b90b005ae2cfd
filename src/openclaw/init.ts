import { randomBytes } from 'node:crypto';
import { chmod, cp, lchown, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { ClawjailError } from '../errors.js';
import { readJsonFile } from './json-file.js';
import { pinBootstrap } from './bootstrap.js';
import { isObject, json5FromOpenClaw, parseConfigText, prepareSandboxConfig, type Json5Parse, type OpenClawConfig, type RouteSpec } from './config.js';
import { sandboxPaths, type SandboxPaths } from './paths.js';
import { expandHome } from '../host/path-facts.js';

/** Files the gateway writes into an empty workspace on first start (from its templates). */
export const SEEDED_FILES = ['AGENTS.md', 'BOOTSTRAP.md', 'IDENTITY.md', 'SOUL.md', 'USER.md'] as const;

export interface InitOptions {
  name?: string;
  /** The user's OpenClaw state dir to copy from (`--from ~/.openclaw`); none: a fresh sandbox. */
  from?: string;
  /** Also copy `<from>/credentials/` (channel logins, pairing allowlists). */
  withCredentials?: boolean;
  /** Replace an existing sandbox of this name (its sessions and state are discarded). */
  force?: boolean;
  /** `openclaw.mjs` of the install in use: its templates seed the workspace, its JSON5 parser reads `--from`'s config. */
  openclawEntry?: string;
  parseJson5?: Json5Parse;
  stateHome?: string;
  hostHome?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * Host uid/gid the sandbox runs as when clawjail runs as root (the profile's identity): the
   * sandbox dir must belong to it, since the launcher refuses a dir owned by anyone else.
   */
  owner?: { uid: number; gid: number };
  /** Fixed token (tests); default 32 random bytes, hex. */
  gatewayToken?: string;
  now?: Date;
}

export interface InitResult {
  paths: SandboxPaths;
  routes: RouteSpec[];
  gatewayToken: string;
  warnings: string[];
  /** Workspace-relative files written from OpenClaw's templates. */
  seeded: string[];
  /** What was copied from `from`, as source paths. */
  copied: string[];
}

const RecordSchema = z.object({
  schema: z.literal(1),
  name: z.string(),
  sandboxDir: z.string(),
  createdAt: z.string(),
  from: z.string().optional(),
  withCredentials: z.boolean(),
  routes: z.array(z.object({ name: z.string(), api: z.enum(['openai', 'anthropic']), upstream: z.string(), credential: z.union([z.object({ env: z.string() }), z.object({ file: z.string() })]).optional(), models: z.array(z.string()).optional() })),
  bootstrapRoots: z.array(z.string()),
});
/** clawjail's host-side record of a sandbox (never inside it). */
export type SandboxRecord = z.infer<typeof RecordSchema>;

/**
 * `clawjail openclaw init`: builds the host dir that becomes /sandbox (`.openclaw/` with a
 * rewritten config, `workspace/`), moves provider keys to host-side files, seeds and pins the
 * bootstrap files, and writes the sandbox record. Touches nothing of `from`.
 */
export async function initOpenClawSandbox(options: InitOptions = {}): Promise<InitResult> {
  const env = options.env ?? process.env;
  const paths = sandboxPaths({ name: options.name ?? 'default', env, ...(options.stateHome ? { stateHome: options.stateHome } : {}), ...(options.hostHome ? { hostHome: options.hostHome } : {}) });
  if (!options.force && ((await nonEmpty(paths.sandboxDir)) || (await nonEmpty(paths.hostDir)))) {
    throw new ClawjailError('ERR_CLAWJAIL_USAGE', `sandbox "${paths.name}" already exists (${paths.sandboxDir})`, {
      hint: `choose another --name, or pass --force to replace it (its sessions and state are discarded)`,
    });
  }
  const from = options.from ? path.resolve(expandHome(options.from, env.HOME || homedir())) : undefined;
  if (from && !(await isDir(from))) throw new ClawjailError('ERR_CLAWJAIL_NOT_FOUND', `--from ${from} is not a directory`, { path: from, hint: 'point --from at an OpenClaw state dir such as ~/.openclaw' });

  const warnings: string[] = [];
  const copied: string[] = [];
  let source: OpenClawConfig = {};
  const sourceConfig = from ? path.join(from, 'openclaw.json') : undefined;
  if (sourceConfig) {
    try {
      const parse = options.parseJson5 ?? (options.openclawEntry ? json5FromOpenClaw(options.openclawEntry) : undefined);
      source = parseConfigText(await readFile(sourceConfig, 'utf8'), parse, sourceConfig);
      copied.push(sourceConfig);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      warnings.push(`${sourceConfig} does not exist; starting from an empty config`);
    }
  }
  const gatewayToken = options.gatewayToken ?? randomBytes(32).toString('hex');
  const prepared = prepareSandboxConfig(source, { gatewayToken, keysDir: paths.keysDir });
  warnings.push(...prepared.warnings);

  if (options.force) {
    await rm(paths.sandboxDir, { recursive: true, force: true });
    await rm(paths.hostDir, { recursive: true, force: true });
  }
  // 0700 throughout: the dir holds the gateway token and the agent's private data, and
  // OpenClaw's own audit flags anything group/world-readable.
  await mkdir(paths.openclawDir, { recursive: true, mode: 0o700 });
  await chmod(paths.sandboxDir, 0o700);
  await mkdir(path.join(paths.openclawDir, 'logs'), { recursive: true, mode: 0o700 });
  await mkdir(paths.workspace, { recursive: true, mode: 0o700 });
  await mkdir(paths.hostDir, { recursive: true, mode: 0o700 });

  if (from) {
    const ws = workspaceSource(source, from, env);
    if (await isDir(ws)) {
      // Symlinks are copied as links: inside they resolve against the sandbox, not the host.
      await cp(ws, paths.workspace, { recursive: true, verbatimSymlinks: true, force: true, errorOnExist: false });
      copied.push(ws);
    } else warnings.push(`workspace ${ws} does not exist; the sandbox starts with an empty one`);
    const creds = path.join(from, 'credentials');
    if (options.withCredentials && (await isDir(creds))) {
      await cp(creds, path.join(paths.openclawDir, 'credentials'), { recursive: true, verbatimSymlinks: true });
      await chmod(path.join(paths.openclawDir, 'credentials'), 0o700);
      copied.push(creds);
    }
  }
  await writeFileAtomic(paths.config, JSON.stringify(prepared.config, null, 2) + '\n', 0o600);

  const seeded = options.openclawEntry ? await seedWorkspace(paths.workspace, templatesDirOf(options.openclawEntry)) : [];
  // An empty skills/ and memory/ exist from the start, so skills/ is bound read-only even
  // before the operator adds a skill (an agent cannot create one mid-session).
  await mkdir(path.join(paths.workspace, 'skills'), { recursive: true, mode: 0o700 });
  await mkdir(path.join(paths.workspace, 'memory'), { recursive: true, mode: 0o700 });

  if (prepared.secrets.length > 0) await mkdir(paths.keysDir, { recursive: true, mode: 0o700 });
  for (const s of prepared.secrets) await writeFileAtomic(s.file, s.value + '\n', 0o600);

  if (options.owner) await chownTree(paths.sandboxDir, options.owner);

  const roots = bootstrapRootsOf(prepared.config);
  await pinBootstrap(paths.workspace, paths.manifest, { roots, ...(options.now ? { now: options.now } : {}) });
  const record: SandboxRecord = {
    schema: 1,
    name: paths.name,
    sandboxDir: paths.sandboxDir,
    createdAt: (options.now ?? new Date()).toISOString(),
    ...(from ? { from } : {}),
    withCredentials: !!options.withCredentials,
    routes: prepared.routes,
    bootstrapRoots: roots,
  };
  await writeFileAtomic(paths.record, JSON.stringify(record, null, 2) + '\n', 0o600);
  return { paths, routes: prepared.routes, gatewayToken, warnings, seeded, copied };
}

export function readSandboxRecord(recordPath: string): Promise<SandboxRecord | undefined> {
  return readJsonFile(recordPath, RecordSchema, 'sandbox record', 'run `clawjail openclaw init --force` to rebuild the sandbox');
}

/**
 * Per-agent sub-workspaces: in a multi-agent config, an agent without its own `workspace` uses
 * `<workspace>/<agentId>`, and reads its bootstrap files from there.
 */
export function bootstrapRootsOf(config: OpenClawConfig): string[] {
  const roots = [''];
  const agents = isObject(config.agents) ? config.agents : {};
  const entries = isObject(agents.entries) ? agents.entries : {};
  for (const [id, a] of Object.entries(entries)) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) continue;
    if (isObject(a) && typeof a.workspace === 'string') continue;
    roots.push(id);
  }
  return roots;
}

function workspaceSource(config: OpenClawConfig, from: string, env: NodeJS.ProcessEnv): string {
  const agents = isObject(config.agents) ? config.agents : {};
  const defaults = isObject(agents.defaults) ? agents.defaults : {};
  const ws = typeof defaults.workspace === 'string' ? defaults.workspace : undefined;
  if (!ws) return path.join(from, 'workspace');
  return path.resolve(from, expandHome(ws, env.HOME || homedir()));
}

export function templatesDirOf(openclawEntry: string): string {
  return path.join(path.dirname(openclawEntry), 'docs', 'reference', 'templates');
}

/**
 * Writes the files OpenClaw's gateway would seed into a fresh workspace, from the same templates
 * with their front matter removed (byte-identical to what 2026.9.6 writes). Seeding here rather
 * than at first start lets init pin them, so the first launch is not refused for "new" files.
 * Existing files are left alone.
 */
export async function seedWorkspace(workspace: string, templatesDir: string): Promise<string[]> {
  const written: string[] = [];
  for (const name of SEEDED_FILES) {
    const dest = path.join(workspace, name);
    if (await exists(dest)) continue;
    let template: string;
    try {
      template = await readFile(path.join(templatesDir, name), 'utf8');
    } catch {
      continue;
    }
    await writeFile(dest, stripFrontMatter(template), { mode: 0o600, flag: 'wx' });
    written.push(name);
  }
  return written;
}

export function stripFrontMatter(text: string): string {
  const m = /^---\n[\s\S]*?\n---\n\n?/.exec(text);
  return m ? text.slice(m[0].length) : text;
}

async function writeFileAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
  await writeFile(tmp, data, { mode });
  await rename(tmp, file);
}

/** chown -R without following symlinks (a copied link must not hand its target over). */
async function chownTree(dir: string, owner: { uid: number; gid: number }): Promise<void> {
  await lchown(dir, owner.uid, owner.gid);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await chownTree(p, owner);
    else await lchown(p, owner.uid, owner.gid);
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function nonEmpty(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length > 0;
  } catch {
    return false;
  }
}
