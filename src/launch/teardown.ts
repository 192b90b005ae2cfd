import type { Logger } from 'pino';
import type { AuditSink } from '../log.js';
import type { RunningServices } from '../services/start.js';

/** Undoes one thing a launch step made. */
export type Cleanup = () => void | Promise<void>;

/**
 * Step 10: the services first, then what the steps made, last first, then the audit sink. A step
 * that fails is logged and the rest still run.
 */
export async function tearDown(log: Logger, services: RunningServices | undefined, cleanups: Cleanup[], audit: AuditSink | undefined): Promise<void> {
  await services?.close().catch((e: unknown) => log.warn({ err: e }, 'closing services failed'));
  for (const c of cleanups.reverse()) {
    try {
      await c();
    } catch (e) {
      log.warn({ err: e }, 'cleanup step failed');
    }
  }
  await audit?.close();
}
