import { ClawjailError } from '../errors.js';
import type { HostFacts, IdRange } from '../host/probe.js';
import type { Profile } from '../profile/schema.js';

/** How a sandbox is built: its own namespaces, or confined in place (no new namespaces). */
export type ResolvedMode = 'namespaces' | 'in-place';

export interface ModeDecision {
  mode: ResolvedMode;
  /** Why this mode, for the report and `clawjail doctor`. */
  reason: string;
  /** Set when auto fell back to in-place: logged as a warning, never silent. */
  warning?: string;
}

/** A namespaces launch (or trial) that failed at a step a container's policy explains. */
export interface NamespacesRefusal {
  step: string;
  errno: number;
  /** What refused it, in words (from the probe or the step's hint). */
  reason: string;
}

/**
 * The launch mode, pure. `namespaces` required and unavailable is a refusal naming why; `auto`
 * takes in-place only when namespaces are known to be unavailable (from the host facts, or from a
 * namespaces attempt that a container refused) and says so in a warning.
 */
export function chooseMode(profile: Pick<Profile, 'mode'>, host: Pick<HostFacts, 'userns'>, refused?: NamespacesRefusal): ModeDecision {
  const unavailable =
    refused !== undefined
      ? refused.reason
      : host.userns.available === false
        ? (host.userns.reason ?? 'user namespaces are unavailable')
        : undefined;
  switch (profile.mode) {
    case 'in-place':
      return { mode: 'in-place', reason: 'mode: in-place was asked for' };
    case 'namespaces':
      if (unavailable !== undefined) {
        throw new ClawjailError('ERR_CLAWJAIL_LAYER_REQUIRED', `cannot create the sandbox: namespaces mode was asked for, but namespaces are unavailable here: ${unavailable}`, {
          hint: 'use --mode in-place (or mode: auto) to run confined without namespaces, or allow user namespaces in the container (see `clawjail doctor`)',
          step: refused?.step ?? 'namespaces.clone',
          ...(refused ? { errno: refused.errno } : host.userns.errno !== undefined ? { errno: host.userns.errno } : {}),
        });
      }
      return { mode: 'namespaces', reason: 'mode: namespaces was asked for' };
    default:
      if (unavailable === undefined) return { mode: 'namespaces', reason: 'mode: auto, and namespaces are available' };
      return {
        mode: 'in-place',
        reason: `mode: auto, and namespaces are unavailable: ${unavailable}`,
        warning: `namespaces are unavailable (${unavailable}); running in-place: landlock, seccomp, rlimits, no capabilities and no_new_privs confine the workload, but it shares the container's pid, ipc, mount and network namespaces (use --mode namespaces to refuse instead)`,
      };
  }
}

/** Namespaces-mode steps whose failure means the environment forbids what namespaces need. */
const REFUSAL_STEPS = /^(namespaces\.clone|userns\.(setgroups|uid_map|gid_map)|uts\.sethostname|mount\.(proc|mqueue|make_slave|devpts))$/;
const REFUSAL_ERRNOS = new Set([1 /* EPERM */, 13 /* EACCES */, 22 /* EINVAL */, 28 /* ENOSPC */, 38 /* ENOSYS */]);

/** True when a namespaces launch failed because the environment forbids namespaces (a container). */
export function isNamespacesRefusal(failure: { step?: string; errno?: number }): boolean {
  return failure.step !== undefined && REFUSAL_STEPS.test(failure.step) && failure.errno !== undefined && REFUSAL_ERRNOS.has(failure.errno);
}

const mapped = (ranges: IdRange[] | undefined, id: number): boolean =>
  ranges === undefined || ranges.some((r) => id >= r.inside && id < r.inside + r.count);

const showMap = (ranges: IdRange[]): string => ranges.map((r) => `${r.inside}-${r.inside + r.count - 1}`).join(', ') || 'none';

/** The mapped uid nearest to the top of the first range above root, to suggest in a hint. */
function suggestUid(ranges: IdRange[]): number | undefined {
  for (const r of ranges) {
    const hi = r.inside + r.count - 1;
    if (hi >= 1000) return Math.max(r.inside, Math.min(hi, 61000));
  }
  return undefined;
}

export interface WorkloadIdentity {
  uid: number;
  gid: number;
  /** The supervisor changes to this identity before exec (it is root). */
  change: boolean;
  detail: string;
}

/**
 * Who the workload runs as, and a refusal when that identity does not exist here. A root caller
 * gets identity.uid/gid, which must be mapped in clawjail's own user namespace (root in a
 * rootless or Kubernetes `hostUsers: false` container has only a small range): chown and setuid
 * to an unmapped id fail with EINVAL. An unprivileged caller keeps its own ids.
 */
export function chooseIdentity(profile: Pick<Profile, 'identity' | 'inPlace'>, host: Pick<HostFacts, 'isRoot' | 'uid' | 'gid' | 'idMap'>, mode: ResolvedMode): WorkloadIdentity {
  if (!host.isRoot) return { uid: host.uid, gid: host.gid, change: false, detail: `uid ${host.uid} (the caller's own)` };
  const { uid, gid } = profile.identity;
  if (mapped(host.idMap?.uid, uid) && mapped(host.idMap?.gid, gid)) {
    return { uid, gid, change: true, detail: `uid ${uid} (dedicated uid for a root caller)` };
  }
  if (mode === 'in-place' && profile.inPlace.rootWorkload) {
    return { uid: 0, gid: 0, change: false, detail: 'uid 0: identity.uid is not mapped here and inPlace.rootWorkload is true (capabilities dropped)' };
  }
  const uids = showMap(host.idMap?.uid ?? []);
  const suggestion = suggestUid(host.idMap?.uid ?? []);
  throw new ClawjailError('ERR_CLAWJAIL_IDENTITY', `the sandbox user uid ${uid}/gid ${gid} (identity.uid/gid) does not exist in this user namespace: only uids ${uids} are mapped (a rootless or user-namespaced container)`, {
    hint:
      (suggestion !== undefined ? `set identity.uid and identity.gid to a mapped id such as ${suggestion}` : 'map a range of uids into the container (e.g. podman --userns=auto, or a larger subuid range)') +
      (mode === 'in-place' ? ', or set inPlace.rootWorkload: true to run the workload as root with capabilities dropped' : ''),
    step: 'identity',
  });
}
