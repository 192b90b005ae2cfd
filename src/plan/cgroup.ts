import { ClawjailError } from '../errors.js';
import type { LaunchPlan } from './plan.js';

/**
 * The plan for a sandbox whose cgroup could not be set up at launch: the host facts said it could
 * be (so buildPlan planned one), but creating it or writing a limit failed, for `reason`. Pure; the
 * plan given is never changed.
 * - no cgroup planned (limits.cgroup.mode off, or no limit asked for): the same plan;
 * - required: refuses with ERR_CLAWJAIL_LAYER_REQUIRED, naming the reason;
 * - best-effort: a new plan without the cgroup, whose report shows the layer unavailable with the
 *   reason, and which carries the reason as a warning.
 */
export function degradeCgroup(plan: LaunchPlan, reason: string): LaunchPlan {
  if (!plan.cgroup) return plan;
  if (plan.cgroup.mode === 'required') {
    throw new ClawjailError('ERR_CLAWJAIL_LAYER_REQUIRED', `cgroup limits are required but ${reason}`, {
      hint: 'delegate a cgroup v2 subtree to clawjail (root, or systemd-run --user --scope -p Delegate=yes), or set limits.cgroup.mode: best-effort',
      path: plan.cgroup.dir,
    });
  }
  return {
    ...plan,
    native: { ...plan.native, cgroupProcs: null },
    cgroup: null,
    report: { ...plan.report, layers: plan.report.layers.map((l) => (l.layer === 'cgroup' ? { ...l, status: 'unavailable' as const, detail: reason } : l)) },
    warnings: [...plan.warnings, reason],
  };
}
