import type { LevelWithSilent } from 'pino';
import { setLogLevel } from '../log.js';

const LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** --log-level: for this process's logger, and for errors reported with a stack at debug. */
export function applyLogLevel(level: string | undefined): void {
  if (!level) return;
  if (!LEVELS.includes(level as LevelWithSilent)) {
    throw Object.assign(new Error(), { clawjailUsage: true });
  }
  process.env.CLAWJAIL_LOG_LEVEL = level;
  setLogLevel(level as LevelWithSilent);
}
