/** The library: one sandbox per call, several at once from one process. */
export { launch, planLaunch, closeAll, runningSandboxes, type LaunchOptions } from './launch.js';
export { Sandbox, type ExitStatus, type SandboxStatus, type SandboxStats } from './sandbox.js';
export { loadProfile, parseProfile, type LoadedProfile, type LoadProfileOptions } from './profile/load.js';
export { ProfileSchema, type Profile } from './profile/schema.js';
export { probeHost, type HostFacts } from './host/probe.js';
export { buildPlan, type LaunchPlan, type BuildPlanInput } from './plan/plan.js';
export type { EnforcementReport, LayerReport, LayerStatus, NativePlan } from './plan/types.js';
export { ClawjailError, isClawjailError, type ClawjailErrorCode } from './errors.js';
export type { AuditEvent } from './log.js';
