import { ClawjailError } from '../errors.js';

/** The host uids tenants may run as (root orchestrators only): [first, first + count). */
export interface UidRange {
  first: number;
  count: number;
}

/**
 * Picks a tenant's host uid. A requested uid must lie in the range and be free; otherwise the
 * lowest free uid is taken. `inUse` holds the uids of every tenant that exists (running, starting
 * or restarting), so a uid is never shared between two tenants and never reused while its tenant
 * exists. The gid is the same number.
 */
export function allocateUid(range: UidRange, inUse: ReadonlyMap<number, string>, tenant: string, requested?: number): number {
  const last = range.first + range.count - 1;
  if (requested !== undefined) {
    if (requested < range.first || requested > last) {
      throw new ClawjailError('ERR_CLAWJAIL_TENANT_UID', `tenant ${tenant}: uid ${requested} is outside the tenant uid range ${range.first}-${last}`, {
        hint: 'pick a uid inside uids.first .. uids.first + uids.count - 1, or omit uid to have one allocated',
      });
    }
    const owner = inUse.get(requested);
    if (owner !== undefined && owner !== tenant) {
      throw new ClawjailError('ERR_CLAWJAIL_TENANT_UID', `tenant ${tenant}: uid ${requested} already belongs to tenant ${owner}`, {
        hint: 'each tenant needs its own host uid; omit uid to have a free one allocated',
      });
    }
    return requested;
  }
  for (const [uid, owner] of inUse) if (owner === tenant) return uid;
  for (let uid = range.first; uid <= last; uid++) if (!inUse.has(uid)) return uid;
  throw new ClawjailError('ERR_CLAWJAIL_TENANT_UID', `tenant ${tenant}: no free uid left in the tenant uid range ${range.first}-${last} (${inUse.size} tenants)`, {
    hint: 'widen uids.count in the tenants config, or remove tenants that are no longer needed',
  });
}
