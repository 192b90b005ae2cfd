import { createWriteStream, writeSync, type WriteStream } from 'node:fs';
import { createRequire } from 'node:module';
import type { Logger, LevelWithSilent } from 'pino';

/**
 * The root logger writes to stderr: JSON lines when stderr is not a terminal, a readable form
 * when it is (pino-pretty); CLAWJAIL_LOG_FORMAT=json|text chooses. Every other message clawjail
 * prints on stderr (errors, notices) follows the same choice through `say`, so a log collector
 * never sees a mix. stdout belongs to the workload.
 *
 * pino is loaded on the first line that is actually written: a CLI run that logs nothing at the
 * active level (the common case) does not pay for loading it.
 */
const LEVELS: Record<LevelWithSilent, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
const require = createRequire(import.meta.url);

/** json or text for everything clawjail writes on stderr. */
export function logFormat(): 'json' | 'text' {
  const f = process.env.CLAWJAIL_LOG_FORMAT;
  if (f === 'json' || f === 'text') return f;
  return process.stderr.isTTY ? 'text' : 'json';
}

/**
 * A message for the person (or collector) reading stderr: `clawjail: TEXT` in text form, one JSON
 * line (level, name, msg and the fields) in JSON form.
 */
export function say(level: 'info' | 'warn' | 'error', text: string, fields: Record<string, unknown> = {}): void {
  if (logFormat() === 'json') {
    const line = JSON.stringify({ level: LEVELS[level], time: Date.now(), name: 'clawjail', ...fields, msg: text });
    writeSync(2, line + '\n');
  } else {
    writeSync(2, `clawjail: ${level === 'warn' ? 'warning: ' : ''}${text}\n${typeof fields.stack === 'string' ? fields.stack + '\n' : ''}`);
  }
}

function createPino(level: LevelWithSilent): Logger {
  const pino = require('pino') as typeof import('pino').default;
  const base = { name: 'clawjail' };
  if (logFormat() === 'text') {
    const pretty = require('pino-pretty') as (o: object) => NodeJS.WritableStream;
    return pino({ level, base }, pretty({ destination: 2, sync: true, colorize: Boolean(process.stderr.isTTY), ignore: 'pid,hostname,name', translateTime: 'HH:MM:ss.l' }));
  }
  return pino({ level, base }, pino.destination({ fd: 2, sync: true }));
}

type Method = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
const METHODS: Method[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

function lazyLogger(getLevel: () => LevelWithSilent, materialise: () => Logger): Logger {
  const target: Record<string, unknown> = {
    isLevelEnabled: (l: LevelWithSilent) => LEVELS[l] >= LEVELS[getLevel()],
    child: (bindings: Record<string, unknown>) => lazyLogger(getLevel, () => materialise().child(bindings)),
  };
  for (const m of METHODS) {
    target[m] = (...args: unknown[]) => {
      if (LEVELS[m] < LEVELS[getLevel()]) return;
      (materialise()[m] as (...a: unknown[]) => void)(...args);
    };
  }
  Object.defineProperty(target, 'level', { get: getLevel, set: (l: LevelWithSilent) => setLogLevel(l), enumerable: true });
  return target as unknown as Logger;
}

let level: LevelWithSilent = (process.env.CLAWJAIL_LOG_LEVEL as LevelWithSilent | undefined) ?? 'warn';
if (!(level in LEVELS)) level = 'warn';
let real: Logger | undefined;
const materialiseRoot = (): Logger => (real ??= createPino(level));

export const logger: Logger = lazyLogger(() => level, materialiseRoot);

export function setLogLevel(l: LevelWithSilent): void {
  level = l;
  if (real) real.level = l;
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
