import { writeFileSync, writeSync } from 'node:fs';
import { ClawjailError } from '../errors.js';
import { usageError } from './args.js';

/**
 * `--status-json TARGET`: standard output belongs to the workload, so `-` is refused before the
 * run; `/dev/fd/N` writes to an inherited descriptor (`3>&1`), anything else is a file.
 */
export function checkStatusTarget(target: string | undefined, command: string): void {
  if (target !== '-') return;
  throw usageError(
    `--status-json -: standard output is the workload's, so the report would be mixed into its output`,
    command,
    'give a file, or a descriptor of its own: `clawjail run --status-json /dev/fd/3 -- CMD 3>&1 >/dev/null | jq`',
  );
}

/** Writes the status JSON to a file, or to descriptor N for /dev/fd/N (no reopen: works across uids). */
export function writeJsonFile(path: string, value: unknown): void {
  const text = JSON.stringify(value, null, 2) + '\n';
  const fd = /^\/dev\/fd\/(\d+)$/.exec(path);
  try {
    if (fd) writeSync(Number(fd[1]), text);
    else writeFileSync(path, text, { mode: 0o600 });
  } catch (e) {
    throw new ClawjailError('ERR_CLAWJAIL_USAGE', `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
      hint: fd ? `open descriptor ${fd[1]} for the run (e.g. ${fd[1]}>status.json)` : 'give a writable file path',
      path,
      cause: e,
    });
  }
}
