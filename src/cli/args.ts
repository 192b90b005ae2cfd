import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ClawjailError } from '../errors.js';

/** Parses flags strictly; an unknown flag names itself and the command's help. */
export function parse<T extends NonNullable<ParseArgsConfig['options']>>(
  command: string,
  argv: string[],
  options: T,
): ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new ClawjailError('ERR_CLAWJAIL_USAGE', `${command}: ${msg}`, { hint: `see \`clawjail ${command} --help\`` });
  }
}

export function usageError(message: string, command: string): ClawjailError {
  return new ClawjailError('ERR_CLAWJAIL_USAGE', message, { hint: `see \`clawjail ${command} --help\`` });
}

/** SRC[:DEST] for --ro/--rw. */
export function parseBindFlag(flag: string, value: string): { src: string; dest?: string } {
  const i = value.indexOf(':');
  const src = i < 0 ? value : value.slice(0, i);
  const dest = i < 0 ? undefined : value.slice(i + 1);
  if (!src || dest === '') throw usageError(`${flag} ${value}: expected SRC or SRC:DEST`, 'run');
  return dest ? { src, dest } : { src };
}

/** HOSTPORT:PORT for --publish. */
export function parsePublishFlag(value: string): { hostPort: number; port: number } {
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(value) ?? /^(\d{1,5})$/.exec(value);
  const hostPort = m ? Number(m[1]) : NaN;
  const port = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || hostPort > 65535 || port < 1 || port > 65535) throw usageError(`--publish ${value}: expected HOSTPORT:PORT (or PORT), ports 1..65535 (HOSTPORT 0 picks a free one)`, 'run');
  return { hostPort, port };
}

/** K=V sets, K alone copies from the host. */
export function parseEnvFlags(values: string[]): { set: Record<string, string>; pass: string[] } {
  const set: Record<string, string> = {};
  const pass: string[] = [];
  for (const v of values) {
    const i = v.indexOf('=');
    if (i === 0) throw usageError(`--env ${v}: expected NAME=VALUE or NAME`, 'run');
    if (i < 0) pass.push(v);
    else set[v.slice(0, i)] = v.slice(i + 1);
  }
  return { set, pass };
}

/** --log-level VALUE, checked, applied to this process's logger. */
export async function applyLogLevelFlag(value: string | undefined, command: string): Promise<void> {
  if (!value) return;
  const { applyLogLevel } = await import('../cli.js');
  try {
    applyLogLevel(value);
  } catch {
    throw usageError(`--log-level ${value}: expected fatal, error, warn, info, debug, trace or silent`, command);
  }
}
