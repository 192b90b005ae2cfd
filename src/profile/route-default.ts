import type { InferenceConfig } from './inference.js';

/**
 * The route `/v1` means. Kept apart from the inference schema (zod) so the planner, which runs on
 * every launch, does not load the schema: a cached profile needs no validation.
 */
export function defaultRouteName(config: InferenceConfig): string | undefined {
  return config.default ?? config.routes[0]?.name;
}
