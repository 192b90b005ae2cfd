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
 * exists. Uids of the host's own accounts (`accounts`, from /etc/passwd) are never handed out:
 * a tenant must not own that account's files. The gid is the same number.
 */
export function allocateUid(range: UidRange, inUse: ReadonlyMap<number, string>, tenant: string, requested?: number, accounts: ReadonlySet<number> = new Set()): number {
  const last = range.first + range.count - 1;
  if (requested !== undefined) {
    if (requested < range.first || requested > last) {
      throw new ClawjailError('ERR_CLAWJAIL_TENANT_UID', `tenant ${tenant}: uid ${requested} is outside the tenant uid range ${range.first}-${last}`, {
        hint: 'pick a uid inside uids.first .. uids.first + uids.count - 1, or omit uid to have one allocated',
      });
    }
    if (accounts.has(requested)) {
      throw new ClawjailError('ERR_CLAWJAIL_TENANT_UID', `tenant ${tenant}: uid ${requested} belongs to an account of this host (/etc/passwd)`, {
        hint: 'pick a uid no host account uses, or omit uid to have one allocated',
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
  for (let uid = range.first; uid <= last; uid++) if (!inUse.has(uid) && !accounts.has(uid)) return uid;
  throw new ClawjailError('ERR_CLAWJAIL_TENANT_UID', `tenant ${tenant}: no free uid left in the tenant uid range ${range.first}-${last} (${inUse.size} tenants)`, {
    hint: 'widen uids.count in the tenants config, or remove tenants that are no longer needed',
  });
}

/** Uids of the accounts in a passwd file (name:x:uid:…); unreadable means none. */
export function parsePasswdUids(text: string): Set<number> {
  const out = new Set<number>();
  for (const line of text.split('\n')) {
    const uid = Number(line.split(':')[2]);
    if (line && !line.startsWith('#') && Number.isInteger(uid)) out.add(uid);
  }
  return out;
}
