import { lstatSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A small on-disk cache for work that depends only on its inputs (a validated profile, a compiled
 * seccomp program), so a CLI run does not load the YAML parser, the schema library or the
 * compiler when nothing changed. Entries are keyed by a hash of the inputs and of clawjail's own
 * code; a cache it cannot trust (not owned by this user, writable by others) is ignored, and every
 * failure just means recomputing.
 */
const here = (import.meta as { filename?: string }).filename ?? fileURLToPath(import.meta.url);

function cacheDir(): string | undefined {
  if (process.env.CLAWJAIL_NO_CACHE === '1') return undefined;
  // Only a built install has a build id; running from sources (tests, development) never caches.
  if (!buildId()) return undefined;
  let base = process.env.XDG_CACHE_HOME || (process.env.HOME ? join(process.env.HOME, '.cache') : undefined);
  try {
    base ??= join(homedir(), '.cache');
  } catch {
    // a uid with no passwd entry and no HOME (containers run such uids): no cache
    return undefined;
  }
  return join(base, 'clawjail', 'v1');
}

let buildIdMemo: string | null | undefined;
/** Written by the build (scripts/build.mjs) as a hash of everything it produced. */
function buildId(): string | null {
  if (buildIdMemo !== undefined) return buildIdMemo;
  buildIdMemo = null;
  const i = here.lastIndexOf('/dist/');
  if (i < 0) return null;
  try {
    buildIdMemo = readFileSync(join(here.slice(0, i), 'dist', 'build-id.txt'), 'utf8').trim() || null;
  } catch {
    buildIdMemo = null;
  }
  return buildIdMemo;
}

function entryPath(kind: string, key: string): string | undefined {
  const dir = cacheDir();
  if (!dir) return undefined;
  const digest = fnv1a64(`${buildId() ?? ''}\0${key}`);
  return join(dir, `${kind}-${digest}.json`);
}

function trusted(path: string): boolean {
  const uid = process.geteuid?.() ?? -1;
  try {
    for (const p of [path, dirname(path)]) {
      const st = lstatSync(p);
      if (st.uid !== uid || (st.mode & 0o022) !== 0 || st.isSymbolicLink()) return false;
    }
    return true;
  } catch {
    return false;
  }
}

export function cacheGet<T>(kind: string, key: string): T | undefined {
  const path = entryPath(kind, key);
  if (!path || !trusted(path)) return undefined;
  try {
    const entry = JSON.parse(readFileSync(path, 'utf8')) as { key: string; value: T };
    return entry.key === key ? entry.value : undefined;
  } catch {
    return undefined;
  }
}

export function cachePut(kind: string, key: string, value: unknown): void {
  const path = entryPath(kind, key);
  if (!path) return;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (!trusted(dirname(path) + '/.')) return;
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ key, value }), { mode: 0o600 });
    renameSync(tmp, path);
  } catch {
    // a cache that cannot be written is only slower
  }
}

/** Two 32-bit FNV-1a hashes with different offsets: names cache files (the entry itself holds the full key, so a collision only misses). */
function fnv1a64(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193);
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}
