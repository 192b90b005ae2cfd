import { lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
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
    const rk = kindOf(statSync(fact.real));
    fact.realKind = rk === 'symlink' || rk === 'missing' ? 'other' : rk;
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
