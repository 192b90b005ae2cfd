import { accessSync, constants, lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';

/** What a host path is, gathered before planning so the planner itself stays pure. */
export interface PathFact {
  /** Kind of the path itself (a symlink is reported as such). */
  kind: 'dir' | 'file' | 'symlink' | 'missing' | 'other';
  /** readlink() text when kind is symlink. */
  link?: string;
  /** realpath() when the path resolves. */
  real?: string;
  /** Kind of what the path resolves to. */
  realKind?: 'dir' | 'file' | 'other';
  uid?: number;
  /** Owner, group and mode of what the path resolves to. */
  realOwner?: { uid: number; gid: number; mode: number };
  /** access(W_OK) for this process: what an unprivileged caller's sandbox (same uid, same groups) can do. */
  writableByCaller?: boolean;
}

export type PathFacts = Record<string, PathFact>;

/** Expands a leading ~; the home directory is looked up only then (a uid may have none). */
export function expandHome(p: string, home?: string): string {
  if (p === '~') return home ?? homedir();
  if (p.startsWith('~/')) return (home ?? homedir()) + p.slice(1);
  return p;
}

function kindOf(st: { isDirectory(): boolean; isFile(): boolean; isSymbolicLink(): boolean }): PathFact['kind'] {
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  return 'other';
}

export function inspectHostPath(path: string): PathFact {
  let fact: PathFact;
  try {
    const st = lstatSync(path);
    fact = { kind: kindOf(st), uid: st.uid };
  } catch {
    return { kind: 'missing' };
  }
  if (fact.kind === 'symlink') fact.link = readlinkSync(path);
  try {
    fact.real = realpathSync(path);
    const st = statSync(fact.real);
    const rk = kindOf(st);
    fact.realKind = rk === 'symlink' || rk === 'missing' ? 'other' : rk;
    fact.realOwner = { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
    try {
      accessSync(fact.real, constants.W_OK);
      fact.writableByCaller = true;
    } catch {
      fact.writableByCaller = false;
    }
  } catch {
    // dangling symlink: real stays undefined
  }
  return fact;
}

export function inspectHostPaths(paths: Iterable<string>): PathFacts {
  const out: PathFacts = {};
  for (const p of paths) out[p] = inspectHostPath(p);
  return out;
}
