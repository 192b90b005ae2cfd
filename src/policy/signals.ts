/**
 * Signals a terminal or an orchestrator sends that the workload should receive. The CLI forwards
 * them from its own process to the helper (src/cli/run.ts), and the plan (`forwardSignals`) tells
 * the helper's monitor and init (or the in-place helper) to pass them on to the workload: one
 * list, so a signal is never caught at one hop and dropped at the next.
 */
export const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const satisfies readonly NodeJS.Signals[];

export type ForwardedSignal = (typeof FORWARDED_SIGNALS)[number];
