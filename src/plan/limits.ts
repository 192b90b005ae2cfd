import type { Profile } from '../profile/schema.js';
import type { NativeRlimit } from './types.js';

type Requested = Profile['limits']['rlimits'];
type HostLimits = Record<string, { soft: number | 'unlimited'; hard: number | 'unlimited' }>;

const toNative = (v: number | 'unlimited'): number | 'infinity' => (v === 'unlimited' ? 'infinity' : v);
const le = (a: number | 'unlimited', b: number | 'unlimited'): boolean => b === 'unlimited' || (a !== 'unlimited' && a <= b);

/**
 * setrlimit values for the workload. A hard limit cannot be raised without CAP_SYS_RESOURCE on the
 * host, so a request above the host's hard limit is lowered to it and reported (the result is
 * never looser than asked).
 */
export function buildRlimits(requested: Requested, host: HostLimits): { rlimits: NativeRlimit[]; notes: string[] } {
  const rlimits: NativeRlimit[] = [];
  const notes: string[] = [];
  for (const [resource, value] of Object.entries(requested)) {
    if (value === undefined) continue;
    let soft = typeof value === 'object' ? value.soft : value;
    let hard = typeof value === 'object' ? value.hard : value;
    if (!le(soft, hard)) soft = hard;
    const hostHard = host[resource]?.hard;
    if (hostHard !== undefined && !le(hard, hostHard)) {
      notes.push(`${resource}: requested ${hard}, host hard limit is ${hostHard}; applied ${hostHard}`);
      hard = hostHard;
      if (!le(soft, hard)) soft = hard;
    }
    rlimits.push({ resource, soft: toNative(soft), hard: toNative(hard) });
  }
  return { rlimits, notes };
}
