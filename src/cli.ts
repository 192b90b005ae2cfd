import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClawjailError, isClawjailError } from './errors.js';
import { logFormat, say } from './log.js';
import { packageRoot } from './paths.js';
import { runCommand } from './cli/run.js';

/**
 * argv → a command. Thin: parsing and printing only; every decision is in the library.
 * Modules are imported per command so `clawjail run` does not load what `doctor` needs.
 */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'run':
        // Statically linked: the hot path loads no further chunks for the command itself.
        return await runCommand(rest);
      case 'doctor':
        return await (await import('./cli/doctor.js')).doctorCommand(rest);
      case 'approvals':
      case 'approve':
      case 'deny':
        return await (await import('./cli/approvals.js')).approvalsCommand(cmd, rest);
      case 'profile':
        return await (await import('./cli/profile.js')).profileCommand(rest);
      case 'openclaw':
        return await (await import('./cli/openclaw.js')).openclawCommand(rest);
      case 'tenants':
        return await (await import('./cli/tenants.js')).tenantsCommand(rest);
      case '--version':
      case '-V':
      case 'version':
        process.stdout.write(`${version()}\n`);
        return 0;
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(HELP);
        return cmd === undefined ? 2 : 0;
      default:
        say('error', `unknown command '${cmd}'\n  hint: one of run, doctor, approvals, approve, deny, profile, openclaw, tenants (clawjail --help)`, { code: 'ERR_CLAWJAIL_USAGE' });
        return 125;
    }
  } catch (e) {
    return reportError(e);
  }
}

/** Prints an error for people: message and hint; a stack only at debug level. */
export function reportError(e: unknown): number {
  const debug = process.env.CLAWJAIL_LOG_LEVEL === 'debug';
  if (isClawjailError(e)) {
    const fields: Record<string, unknown> = { code: e.code };
    for (const k of ['step', 'errno', 'syscall', 'path', 'hint'] as const) if (e[k] !== undefined) fields[k] = e[k];
    if (debug && e.stack) fields.stack = e.stack;
    // In JSON the hint is its own field; in text it stays under the message.
    const suffix = e.hint !== undefined ? `\n  hint: ${e.hint}` : '';
    say('error', logFormat() === 'json' && suffix && e.message.endsWith(suffix) ? e.message.slice(0, -suffix.length) : e.message, fields);
    return e.exitCode;
  }
  const err = e as Error;
  say('error', `internal error: ${err?.message ?? String(e)}\n  hint: this is a bug; rerun with --log-level debug and report it`, debug && err?.stack ? { stack: err.stack } : {});
  return 125;
}

export function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

const HELP = `clawjail — run OpenClaw, or any command, in a sandbox clawjail builds itself

Usage:
  clawjail run [options] -- COMMAND [ARGS...]   run a command in a new sandbox
  clawjail openclaw [options] -- SUBCOMMAND...  run OpenClaw (gateway, agent, ...) in a sandbox
  clawjail doctor [--json]                      what this host can enforce, and why not
  clawjail approvals [--name N] [--json]        pending egress approvals
  clawjail approve ID [--always] [--name N]     let a pending destination through
  clawjail deny ID [--name N]                   refuse a pending destination
  clawjail profile show|schema [--profile P]    the merged profile, or every field explained
  clawjail tenants serve|ls|add|rm|logs|k8s     one sandbox per tenant (clawjail tenants --help)

Run 'clawjail run --help' for the run options. Exit status: the command's own; 128+N when it
was killed by signal N; 125 when clawjail itself failed; 126 not executable; 127 not found.
`;
