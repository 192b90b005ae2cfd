/** When a crashed tenant is started again. */
export interface RestartPolicy {
  /** Delay before the first restart. */
  initialMs: number;
  /** Upper bound of the delay. */
  maxMs: number;
  /** Growth per consecutive crash. */
  factor: number;
  /** A run at least this long counts as healthy: the next crash starts again from initialMs. */
  resetAfterMs: number;
  /** Give up after this many consecutive crashes (0: never). */
  maxAttempts: number;
}

export const DEFAULT_RESTART: RestartPolicy = { initialMs: 500, maxMs: 30_000, factor: 2, resetAfterMs: 60_000, maxAttempts: 0 };

/**
 * What to do after a tenant's sandbox exited on its own: `attempt` is the number of consecutive
 * crashes before this one, `ranMs` how long this run lasted. Returns the delay and the new
 * attempt count, or `give-up`.
 */
export function nextRestart(policy: RestartPolicy, attempt: number, ranMs: number): { action: 'restart'; delayMs: number; attempt: number } | { action: 'give-up'; attempt: number } {
  const consecutive = ranMs >= policy.resetAfterMs ? 0 : attempt;
  if (policy.maxAttempts > 0 && consecutive >= policy.maxAttempts) return { action: 'give-up', attempt: consecutive };
  const delayMs = Math.min(policy.maxMs, Math.round(policy.initialMs * policy.factor ** consecutive));
  return { action: 'restart', delayMs, attempt: consecutive + 1 };
}
