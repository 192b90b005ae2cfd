import { statSync } from 'node:fs';
import { cacheGet, cachePut } from '../cache.js';
import { profilesDir } from '../paths.js';
import type { LoadedProfile, LoadProfileOptions, ProfileBase } from './load.js';

/**
 * loadProfile with caches in front: in memory for a long-lived orchestrator, on disk for the CLI.
 * A hit is re-checked against every file of the `extends` chain (inode, size, mtime), so an edited
 * profile is always re-read and re-validated.
 */
const memory = new Map<string, { loaded: LoadedProfile; stamps: string[] }>();
/**
 * The files of a profile reference, read and layered, without overrides: an orchestrator's tenants
 * share one profile and differ only in their overrides (uid, state dir, routes), so each new
 * tenant costs a merge and a validation, not a YAML parse of every file in the chain.
 */
const bases = new Map<string, { base: ProfileBase; stamps: string[] }>();

function stamp(path: string): string {
  try {
    const st = statSync(path);
    return `${path}\0${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return `${path}\0missing`;
  }
}
const fresh = (stamps: string[]) => stamps.every((s) => stamp(s.slice(0, s.indexOf('\0'))) === s);

export async function loadProfileCached(options: LoadProfileOptions): Promise<LoadedProfile> {
  let key: string | undefined;
  try {
    // The profiles directory is part of the key: two installs with the same build id (the same
    // release unpacked twice, or worktrees of one checkout) share the on-disk cache, and a hit
    // re-checks only the files of the install that wrote it.
    key = JSON.stringify([profilesDir, options.profile ?? 'default', options.overrides ?? [], options.cwd ?? process.cwd()]);
  } catch {
    key = undefined;
  }
  if (key !== undefined) {
    const hit = memory.get(key) ?? cacheGet<{ loaded: LoadedProfile; stamps: string[] }>('profile', key);
    if (hit && fresh(hit.stamps)) {
      if (!memory.has(key)) memory.set(key, hit);
      return structuredClone(hit.loaded);
    }
  }
  const { readProfileBase, finishProfile } = await import('./load.js');
  let baseKey: string | undefined;
  try {
    baseKey = JSON.stringify([options.profile ?? 'default', options.cwd ?? process.cwd()]);
  } catch {
    baseKey = undefined;
  }
  let base = baseKey !== undefined ? bases.get(baseKey) : undefined;
  if (!base || !fresh(base.stamps)) {
    const read = readProfileBase(options);
    base = { base: read, stamps: read.sources.map(stamp) };
    if (baseKey !== undefined) {
      if (bases.size >= 16) bases.delete(bases.keys().next().value!);
      bases.set(baseKey, base);
    }
  }
  const loaded = finishProfile(base.base, options.overrides, options.fieldLabels);
  if (key !== undefined) {
    const entry = { loaded: structuredClone(loaded), stamps: loaded.sources.map(stamp) };
    if (memory.size >= 64) memory.delete(memory.keys().next().value!);
    memory.set(key, entry);
    cachePut('profile', key, entry);
  }
  return loaded;
}
