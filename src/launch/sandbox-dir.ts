import { chownSync, lchownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ClawjailError } from '../errors.js';
import { expandHome, inspectHostPath } from '../host/path-facts.js';
import type { HostFacts } from '../host/probe.js';
import type { WorkloadIdentity } from '../plan/mode.js';
import type { Profile } from '../profile/schema.js';

/** /sandbox's host directory, and whether clawjail made it for this run (removed at exit unless kept). */
export interface SandboxDir {
  host: string;
  ephemeral: boolean;
}

/**
 * The temporary /sandbox's name carries nothing about the supervisor (no pid, no sandbox name):
 * the sandbox reads its path within the host filesystem in /proc/self/mountinfo. "-sbx-" keeps it
 * apart from the per-uid control directories (clawjail-<uid>).
 */
export const EPHEMERAL_SANDBOX_PREFIX = 'clawjail-sbx-';

/** /sandbox's host side: the given directory (created if missing) or a fresh temporary one. */
export function prepareSandboxDir(profile: Profile, host: HostFacts, name: string, log: Logger): SandboxDir {
  const owner = host.isRoot ? { uid: profile.identity.uid, gid: profile.identity.gid } : undefined;
  if (!profile.filesystem.sandboxDir) {
    const dir = mkdtempSync(join(tmpdir(), EPHEMERAL_SANDBOX_PREFIX));
    if (owner) chownSync(dir, owner.uid, owner.gid);
    return { host: dir, ephemeral: true };
  }
  const wanted = expandHome(profile.filesystem.sandboxDir);
  let fact = inspectHostPath(wanted);
  if (fact.kind === 'missing') {
    mkdirSync(wanted, { recursive: true, mode: 0o700 });
    if (owner) chownSync(wanted, owner.uid, owner.gid);
    log.warn({ sandbox: name }, `created --sandbox-dir ${wanted}${owner ? ` for host uid ${owner.uid}` : ''}; it is kept after the run`);
    fact = inspectHostPath(wanted);
  }
  if (!fact.real || fact.realKind !== 'dir') {
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `--sandbox-dir ${wanted} is not a directory${fact.kind === 'symlink' ? ` (a symlink to ${fact.link})` : ''}`, {
      hint: 'give a directory, or omit --sandbox-dir for a temporary one',
      path: wanted,
    });
  }
  if (fact.real !== wanted) log.warn(`--sandbox-dir ${wanted} resolves to ${fact.real} (a symlink is on the way); using ${fact.real}`);
  if (owner) {
    const st = inspectHostPath(fact.real);
    if (st.uid !== owner.uid) {
      if (!profile.filesystem.chownSandboxDir) {
        throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `--sandbox-dir ${fact.real} is owned by uid ${st.uid}, but the sandbox runs as host uid ${owner.uid}`, {
          hint: `pass --chown-sandbox-dir (filesystem.chownSandboxDir) to give it and everything in it to uid ${owner.uid}, or run the sandbox as its owner with identity.uid: ${st.uid}${st.uid === 0 ? ' (not 0: pick a dedicated uid and chown the directory to it)' : ''}`,
          path: fact.real,
        });
      }
      chownTree(fact.real, owner.uid, owner.gid);
      log.warn({ sandbox: name }, `--chown-sandbox-dir: ${fact.real} and its contents now belong to uid ${owner.uid} (was ${st.uid})`);
    }
  }
  return { host: fact.real, ephemeral: false };
}

/** chown -R that never follows a symlink (lchown on each entry; directories found by lstat). */
function chownTree(root: string, uid: number, gid: number): void {
  const walk = (p: string) => {
    const st = lstatSync(p);
    lchownSync(p, uid, gid);
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
  };
  try {
    walk(root);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `--chown-sandbox-dir: cannot chown ${err.path ?? root}: ${err.code ?? err.message}`, {
      hint: `chown -R ${uid}:${gid} ${root} yourself, or use another --sandbox-dir`,
      path: err.path ?? root,
      cause: e,
    });
  }
}

// ---- in-place mode ---------------------------------------------------------------------------

/** In place, the sandbox directory is --sandbox-dir, else the container's /sandbox when it is a directory. */
export function inPlaceDirChoice(profile: Profile): string | undefined {
  return profile.filesystem.sandboxDir ?? (inspectHostPath('/sandbox').realKind === 'dir' ? '/sandbox' : undefined);
}

/**
 * In-place mode's sandbox directory. Nothing is mounted: the directory itself, where it is, is the
 * workload's HOME and cwd. A temporary one (named like namespaces mode's, nothing about the supervisor in it) is made
 * when neither --sandbox-dir nor /sandbox exists.
 * Ownership goes to the workload's uid only when clawjail changes to it (a root caller).
 */
export function prepareInPlaceDir(profile: Profile, identity: WorkloadIdentity): SandboxDir {
  const owner = identity.change ? { uid: identity.uid, gid: identity.gid } : undefined;
  const given = inPlaceDirChoice(profile);
  if (!given) {
    const dir = mkdtempSync(join(tmpdir(), 'clawjail-sbx-'));
    if (owner) chownOrExplain(dir, owner, () => rmSync(dir, { recursive: true, force: true }));
    return { host: dir, ephemeral: true };
  }
  const wanted = expandHome(given);
  let fact = inspectHostPath(wanted);
  if (fact.kind === 'missing') {
    mkdirSync(wanted, { recursive: true, mode: 0o700 });
    if (owner) chownOrExplain(wanted, owner, () => rmdirSync(wanted));
    fact = inspectHostPath(wanted);
  }
  if (!fact.real || fact.realKind !== 'dir') {
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `sandbox directory ${wanted} is not a directory${fact.kind === 'symlink' ? ` (a symlink to ${fact.link})` : ''}`, {
      hint: 'give a directory with --sandbox-dir, or omit it for a temporary one',
      path: wanted,
    });
  }
  const st = inspectHostPath(fact.real);
  if (owner && st.uid !== owner.uid) {
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `sandbox directory ${fact.real} is owned by uid ${st.uid}, but the workload runs as uid ${owner.uid}`, {
      hint: `chown -R ${owner.uid}:${owner.gid} ${fact.real} (in a Dockerfile: RUN mkdir /sandbox && chown ${owner.uid}:${owner.gid} /sandbox), or set identity.uid to the directory's owner`,
      path: fact.real,
    });
  }
  return { host: fact.real, ephemeral: false };
}

/** chown that fails as a named error (an unmapped id is EINVAL), undoing what was created. */
function chownOrExplain(path: string, owner: { uid: number; gid: number }, undo: () => void): void {
  try {
    chownSync(path, owner.uid, owner.gid);
  } catch (e) {
    try {
      undo();
    } catch {
      // the original error is the one to report
    }
    const err = e as NodeJS.ErrnoException;
    throw new ClawjailError(err.code === 'EINVAL' ? 'ERR_CLAWJAIL_IDENTITY' : (err.code ?? 'ERR_CLAWJAIL_SETUP'), `cannot give ${path} to the sandbox user ${owner.uid}:${owner.gid}: ${err.code ?? err.message}`, {
      hint: err.code === 'EINVAL' ? 'that uid does not exist in this user namespace; set identity.uid/gid to a mapped id (see /proc/self/uid_map)' : 'check that clawjail may change the owner of files it creates there',
      path,
      ...(typeof err.errno === 'number' ? { errno: Math.abs(err.errno) } : {}),
    });
  }
}
