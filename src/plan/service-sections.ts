import type { InferenceConfig, InferenceRoute } from '../profile/inference.js';
import type { NetworkConfig } from '../profile/network.js';
import type { Profile } from '../profile/schema.js';

/*
 * The parts of the plan the supervisor's services carry out: the egress proxy, the approvals
 * broker and control socket, the loopback forwarder (the egress section) and the inference router
 * (the inference section). The services read these and nothing of the profile, so `--dry-run`
 * shows every rule they will enforce.
 */

/**
 * The egress policy as the proxy enforces it (the profile's `network` section, with the audit
 * log a launch option may have named instead), and the profile file `approve --always` adds its
 * rules to, when approvals can ask for that.
 */
export interface EgressPlan extends NetworkConfig {
  persistTo?: string;
}

/**
 * The inference routes. A route's `credential` is where the supervisor reads the key at launch
 * (`{env: NAME}` or `{file: PATH}`); the key itself is never part of a plan.
 */
export interface InferencePlan extends InferenceConfig {}

export interface ServiceSectionInputs {
  /** The launch's audit log option (`--audit-log`), which wins over network.auditLog. */
  auditLog?: string;
  /** The user's own profile file, if any: where `approve --always` writes a rule. */
  profileFile?: string;
}

/** Pure: the egress section from the profile and the launch's own inputs. */
export function buildEgressSection(profile: Profile, inputs: ServiceSectionInputs = {}): EgressPlan {
  const n = profile.network;
  const auditLog = inputs.auditLog ?? n.auditLog;
  const approvals = n.mode === 'proxy' && n.approvals.enabled;
  return {
    mode: n.mode,
    allow: n.allow.map((r) => ({ ...r })),
    deny: n.deny.map((r) => ({ ...r })),
    approvals: { ...n.approvals },
    limits: { ...n.limits },
    ...(auditLog !== undefined ? { auditLog } : {}),
    ...(approvals && inputs.profileFile ? { persistTo: inputs.profileFile } : {}),
  };
}

/**
 * Pure: the inference section. Each route is copied field by field, so only a credential's
 * source (a variable name or a file path) can be in it.
 */
export function buildInferenceSection(profile: Profile): InferencePlan {
  const c = profile.inference;
  const def = c.default ?? c.routes[0]?.name;
  return {
    routes: c.routes.map(copyRoute),
    ...(def !== undefined ? { default: def } : {}),
    auditBodies: c.auditBodies,
  };
}

function copyRoute(r: InferenceRoute): InferenceRoute {
  const credential = r.credential === undefined ? undefined : 'env' in r.credential ? { env: r.credential.env } : { file: r.credential.file };
  return {
    name: r.name,
    api: r.api,
    upstream: r.upstream,
    ...(credential ? { credential } : {}),
    ...(r.models ? { models: [...r.models] } : {}),
    ...(r.rewriteModel !== undefined ? { rewriteModel: r.rewriteModel } : {}),
    timeoutMs: r.timeoutMs,
    optional: r.optional,
  };
}
