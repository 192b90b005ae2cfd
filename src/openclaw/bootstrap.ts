import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ClawjailError } from '../errors.js';
import { readJsonFile } from './json-file.js';
import { INSIDE } from './paths.js';

/**
 * Bootstrap integrity. OpenClaw reads these workspace files into the model's context at the start
 * of every session, so an agent that can rewrite them can plant instructions for all its future
 * sessions (persistent prompt injection). They are hashed at init (`pin`), checked at every
 * launch, and mounted read-only over the writable workspace. MEMORY.md and memory/ are left
 * writable on purpose: remembering is the agent's job.
 */
export const BOOTSTRAP_FILES = ['AGENTS.md', 'SOUL.md', 'USER.md', 'IDENTITY.md', 'BOOT.md', 'BOOTSTRAP.md', 'TOOLS.md'] as const;
export const BOOTSTRAP_DIRS = ['skills'] as const;

const EntrySchema = z.object({
  path: z.string(),
  kind: z.enum(['file', 'dir', 'symlink', 'other']),
  sha256: z.string().optional(),
  size: z.number().optional(),
  target: z.string().optional(),
});
export type BootstrapEntry = z.infer<typeof EntrySchema>;

const ManifestSchema = z.object({
  schema: z.literal(1),
  pinnedAt: z.string(),
  roots: z.array(z.string()),
  entries: z.array(EntrySchema),
});
export type BootstrapManifest = z.infer<typeof ManifestSchema>;

export type BootstrapChangeKind = 'changed' | 'new' | 'removed' | 'symlink' | 'not-a-file';
export interface BootstrapChange {
  /** Workspace-relative, `/`-separated. */
  path: string;
  change: BootstrapChangeKind;
}

/**
 * What differs between the pinned entries and the workspace now. A symlink is always reported:
 * a bootstrap file that points elsewhere can be rewritten through its target, and a read-only
 * bind of it would follow the link on the host.
 */
export function diffBootstrap(pinned: readonly BootstrapEntry[], current: readonly BootstrapEntry[]): BootstrapChange[] {
  const before = new Map(pinned.map((e) => [e.path, e]));
  const now = new Map(current.map((e) => [e.path, e]));
  const changes: BootstrapChange[] = [];
  for (const [p, e] of now) {
    if (e.kind === 'symlink') changes.push({ path: p, change: 'symlink' });
    else if (e.kind === 'other') changes.push({ path: p, change: 'not-a-file' });
    else {
      const b = before.get(p);
      if (!b) changes.push({ path: p, change: 'new' });
      else if (b.kind !== e.kind || b.sha256 !== e.sha256) changes.push({ path: p, change: 'changed' });
    }
  }
  for (const p of before.keys()) if (!now.has(p)) changes.push({ path: p, change: 'removed' });
  return changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export interface BootstrapBind {
  src: string;
  dest: string;
}

/**
 * Read-only binds laid over the writable workspace: each bootstrap file present, and each
 * bootstrap dir as a whole (so new files cannot appear in it either). Paths are host paths
 * under `workspaceHost` and the same relative paths under `workspaceInside`; parents come before
 * children as the launcher mounts them in list order.
 */
export function bootstrapBinds(entries: readonly BootstrapEntry[], workspaceHost: string, workspaceInside: string = INSIDE.workspace): BootstrapBind[] {
  const dirs = new Set<string>();
  const binds: BootstrapBind[] = [];
  const sorted = [...entries].sort((a, b) => a.path.split('/').length - b.path.split('/').length || (a.path < b.path ? -1 : 1));
  for (const e of sorted) {
    if (e.kind !== 'file' && e.kind !== 'dir') continue;
    const base = path.posix.basename(e.path);
    const top = e.kind === 'dir' ? (BOOTSTRAP_DIRS as readonly string[]).includes(base) : (BOOTSTRAP_FILES as readonly string[]).includes(base);
    if (!top) continue;
    if ([...dirs].some((d) => e.path.startsWith(d + '/'))) continue;
    if (e.kind === 'dir') dirs.add(e.path);
    binds.push({ src: path.join(workspaceHost, ...e.path.split('/')), dest: path.posix.join(workspaceInside, e.path) });
  }
  return binds;
}

/**
 * Entries for the bootstrap files and dirs under each root (workspace-relative dirs; '' is the
 * workspace itself; a multi-agent config adds one root per agent sub-workspace). Sorted by path.
 */
export async function scanBootstrap(workspace: string, roots: readonly string[] = ['']): Promise<BootstrapEntry[]> {
  const entries: BootstrapEntry[] = [];
  for (const root of roots) {
    for (const name of [...BOOTSTRAP_FILES, ...BOOTSTRAP_DIRS]) {
      await scanPath(workspace, root ? `${root}/${name}` : name, entries);
    }
  }
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

async function scanPath(workspace: string, rel: string, out: BootstrapEntry[]): Promise<void> {
  const abs = path.join(workspace, ...rel.split('/'));
  let st;
  try {
    st = await lstat(abs);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (st.isSymbolicLink()) out.push({ path: rel, kind: 'symlink', target: await readlink(abs) });
  else if (st.isFile()) {
    const data = await readFile(abs);
    out.push({ path: rel, kind: 'file', sha256: createHash('sha256').update(data).digest('hex'), size: data.length });
  } else if (st.isDirectory()) {
    out.push({ path: rel, kind: 'dir' });
    for (const child of (await readdir(abs)).sort()) await scanPath(workspace, `${rel}/${child}`, out);
  } else out.push({ path: rel, kind: 'other' });
}

/** Hashes the bootstrap files now present and writes the manifest (atomically, mode 0600). */
export async function pinBootstrap(workspace: string, manifestPath: string, options: { roots?: string[]; now?: Date } = {}): Promise<BootstrapManifest> {
  const roots = options.roots ?? [''];
  const entries = await scanBootstrap(workspace, roots);
  const refused = entries.filter((e) => e.kind === 'symlink' || e.kind === 'other');
  if (refused.length > 0) {
    throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `cannot pin bootstrap paths that are not regular files or dirs:\n  ${refused.map((e) => `${e.path} (${e.kind})`).join('\n  ')}`, {
      hint: `replace them with regular files in ${workspace}`,
    });
  }
  const manifest: BootstrapManifest = { schema: 1, pinnedAt: (options.now ?? new Date()).toISOString(), roots, entries };
  await mkdir(path.dirname(manifestPath), { recursive: true, mode: 0o700 });
  const tmp = `${manifestPath}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(manifest, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, manifestPath);
  return manifest;
}

export function readManifest(manifestPath: string): Promise<BootstrapManifest | undefined> {
  return readJsonFile(manifestPath, ManifestSchema, 'bootstrap manifest', 'run `clawjail openclaw pin` to write it again');
}

export type BootstrapVerdict =
  | { pinned: false }
  | { pinned: true; ok: boolean; changes: BootstrapChange[]; binds: BootstrapBind[]; manifest: BootstrapManifest };

/** Compares the workspace with the manifest; `binds` are valid only when `ok`. */
export async function verifyBootstrap(workspace: string, manifestPath: string): Promise<BootstrapVerdict> {
  const manifest = await readManifest(manifestPath);
  if (!manifest) return { pinned: false };
  const current = await scanBootstrap(workspace, manifest.roots);
  const changes = diffBootstrap(manifest.entries, current);
  return { pinned: true, ok: changes.length === 0, changes, binds: changes.length === 0 ? bootstrapBinds(current, workspace) : [], manifest };
}

/** The launch refusal (exit 125) for a workspace that no longer matches its pin. */
export function bootstrapRefusal(verdict: BootstrapVerdict, name: string): ClawjailError | undefined {
  if (!verdict.pinned) {
    return new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `sandbox "${name}" has no pinned bootstrap manifest`, {
      hint: `run \`clawjail openclaw pin --name ${name}\` after reviewing the workspace, or pass --writable-bootstrap`,
      exitCode: 125,
    });
  }
  if (verdict.ok) return undefined;
  const list = verdict.changes.map((c) => `${c.change.padEnd(10)} ${c.path}`).join('\n  ');
  return new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `bootstrap files of sandbox "${name}" differ from their pin:\n  ${list}`, {
    hint: `review them, then run \`clawjail openclaw pin --name ${name}\` to accept them (or pass --writable-bootstrap)`,
    exitCode: 125,
  });
}
