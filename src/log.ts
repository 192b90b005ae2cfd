import { createWriteStream, type WriteStream } from 'node:fs';
import { createRequire } from 'node:module';
import pino, { type Logger, type LevelWithSilent } from 'pino';

/**
 * The root logger writes to stderr: JSON lines when stderr is not a terminal, a readable form
 * when it is. stdout belongs to the workload.
 */
function createRootLogger(): Logger {
  const level = (process.env.CLAWJAIL_LOG_LEVEL as LevelWithSilent | undefined) ?? 'warn';
  const base = { name: 'clawjail' };
  if (process.stderr.isTTY && process.env.CLAWJAIL_LOG_FORMAT !== 'json') {
    return pino({ level, base }, lazyPretty());
  }
  return pino({ level, base }, pino.destination({ fd: 2, sync: true }));
}

function lazyPretty(): NodeJS.WritableStream {
  // pino-pretty is loaded only on a terminal; scripted runs do not pay for it.
  const pretty = createRequire(import.meta.url)('pino-pretty') as (o: object) => NodeJS.WritableStream;
  return pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname,name', translateTime: 'HH:MM:ss.l' });
}

export const logger: Logger = createRootLogger();

export function setLogLevel(level: LevelWithSilent): void {
  logger.level = level;
}

/** One audit event: a decision a service made (egress, inference, approvals, launch). */
export interface AuditEvent {
  kind: string;
  sandbox?: string;
  [field: string]: unknown;
}

export interface AuditSink {
  emit(event: AuditEvent): void;
  close(): Promise<void>;
}

/**
 * Audit events go to the logger (level info, `audit: true`) and, when a file is given, to that
 * file as JSON lines with a timestamp. Writes are appended; nothing is buffered past close().
 */
export function createAuditSink(options: { file?: string; log?: Logger; listener?: (e: AuditEvent) => void } = {}): AuditSink {
  const log = options.log ?? logger;
  let stream: WriteStream | undefined;
  if (options.file) stream = createWriteStream(options.file, { flags: 'a', mode: 0o600 });
  return {
    emit(event) {
      const record = { time: new Date().toISOString(), ...event };
      log.info({ audit: true, ...event }, `audit ${event.kind}`);
      stream?.write(JSON.stringify(record) + '\n');
      options.listener?.(record);
    },
    close() {
      return new Promise((resolve) => {
        if (!stream) return resolve();
        stream.end(() => resolve());
      });
    },
  };
}
