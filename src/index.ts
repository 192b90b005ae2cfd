/** The library: one sandbox per call, several at once from one process. */
export { launch, planLaunch, closeAll, runningSandboxes, type LaunchOptions } from './launch.js';
export { Sandbox, type ExitStatus, type SandboxStatus, type SandboxStats } from './sandbox.js';
export { loadProfile, parseProfile, type LoadedProfile, type LoadProfileOptions } from './profile/load.js';
export { ProfileSchema, type Profile } from './profile/schema.js';
export { probeHost, type HostFacts } from './host/probe.js';
export { buildPlan, type LaunchPlan, type BuildPlanInput } from './plan/plan.js';
export { chooseMode, chooseIdentity, type ModeDecision, type ResolvedMode } from './plan/mode.js';
export { buildInPlacePlan, inPlaceSeccomp } from './plan/in-place.js';
export type { EnforcementReport, LayerReport, LayerStatus, NativePlan } from './plan/types.js';
export { ClawjailError, isClawjailError, type ClawjailErrorCode } from './errors.js';
export type { AuditEvent } from './log.js';
export { createOrchestrator, defaultStateRoot, type Orchestrator, type OrchestratorOptions, type TenantEvent, type TenantState, type TenantStatus } from './tenants/orchestrator.js';
export { loadTenantsConfig, parseTenantsConfig, type TenantSpec, type TenantSpecInput, type TenantsConfig, type TenantsConfigInput } from './tenants/config.js';
export { createEdge, routeEdge } from './tenants/edge.js';
export { buildKubernetesManifests, renderManifests, type KubernetesOptions } from './tenants/k8s.js';
