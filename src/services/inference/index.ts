export { createInferenceRouter, classifyUpstreamError, type InferenceRouter, type InferenceRouterOptions, type ListenTarget } from './router.js';
export { resolveCredentials, redactInference, missingCredentialReason } from './credentials.js';
export { routeOverridesFromCli } from './cli.js';
export { buildInferenceEnv, INFERENCE_PORT, INFERENCE_SOCKET_PATH } from './env.js';
export { API_PATHS, resolveRoute, defaultRouteName, type RouteDecision } from './routing.js';
export { applyModelPolicy, type ModelDecision } from './model-policy.js';
export { buildUpstreamHeaders, filterResponseHeaders, DEFAULT_ANTHROPIC_VERSION } from './headers.js';
export { errorBody, streamErrorEvent, ROUTER_ERROR_HEADER, type RouterErrorCode } from './api-errors.js';
export { createSseUsageScanner, usageFromJson, type TokenCounts } from './usage.js';
