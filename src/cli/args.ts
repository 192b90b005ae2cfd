import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ClawjailError } from '../errors.js';
import { applyLogLevel } from './log-level.js';

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

/**
 * Splits `[options] COMMAND ARGS…` at the command: the first word that is neither an option nor an
 * option's value, or what follows `--`. Options after the command are the command's (as with
 * bwrap, firejail and docker run): `clawjail run ls -la` runs `ls -la`.
 */
export function splitAtCommand(argv: string[], options: NonNullable<ParseArgsConfig['options']>): { own: string[]; command: string[] } {
  const takesValue = (name: string | undefined) => name !== undefined && options[name]?.type === 'string';
  const longName = (arg: string) => arg.slice(2).split('=')[0];
  const shortName = (c: string) => Object.keys(options).find((k) => options[k]?.short === c);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return { own: argv.slice(0, i), command: argv.slice(i + 1) };
    if (arg.startsWith('--')) {
      if (!arg.includes('=') && takesValue(longName(arg))) i++;
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      // A cluster such as -te: booleans, then at most one option whose value is the rest or the next word.
      for (let j = 1; j < arg.length; j++) {
        if (takesValue(shortName(arg[j]!))) {
          if (j === arg.length - 1) i++;
          break;
        }
      }
      continue;
    }
    return { own: argv.slice(0, i), command: argv.slice(i) };
  }
  return { own: argv, command: [] };
}

export function usageError(message: string, command: string, hint = `see \`clawjail ${command} --help\``): ClawjailError {
  return new ClawjailError('ERR_CLAWJAIL_USAGE', message, { hint });
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
  try {
    applyLogLevel(value);
  } catch {
    throw usageError(`--log-level ${value}: expected fatal, error, warn, info, debug, trace or silent`, command);
  }
}
