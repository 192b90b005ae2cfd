import { lstat } from 'node:fs/promises';
import { ClawjailError, isClawjailError } from '../../errors.js';
import { say } from '../../log.js';
import type { DecideResult, PendingApproval } from '../egress/approvals.js';
import { createControlClient } from './client.js';
import { checkControlSocket, checkSandboxName, controlBaseDir, controlSocketPath, listSandboxNames, type RuntimeContext } from './paths.js';

export interface ApprovalsCommandArgs {
  command: 'approvals' | 'approve' | 'deny';
  id?: string;
  always?: boolean;
  name?: string;
  json?: boolean;
}

export interface ApprovalsCommandIo extends RuntimeContext {
  /** Errors go here (default stderr); results to `out`. */
  err?: NodeJS.WritableStream;
}

/**
 * `clawjail approvals [--name N] [--json]`, `clawjail approve ID [--always] [--name N]`,
 * `clawjail deny ID [--name N]`. Without --name: every running sandbox is listed, and an id is
 * looked up in all of them. Returns the exit status: 0 done, 125 when clawjail failed (no sandbox,
 * no such id, rule not saved, a usage error), as every clawjail command.
 */
export async function runApprovalsCommand(args: ApprovalsCommandArgs, out: NodeJS.WritableStream, io: ApprovalsCommandIo = {}): Promise<number> {
  try {
    return await run(args, out, io);
  } catch (e) {
    if (!isClawjailError(e)) throw e;
    if (io.err) io.err.write(`clawjail ${args.command}: ${e.message}\n`);
    else say('error', `${args.command}: ${e.message}`, { code: e.code });
    return e.exitCode;
  }
}

function usage(message: string, hint: string): ClawjailError {
  return new ClawjailError('ERR_CLAWJAIL_USAGE', message, { hint });
}

async function run(args: ApprovalsCommandArgs, out: NodeJS.WritableStream, ctx: RuntimeContext): Promise<number> {
  if (args.command !== 'approvals' && !args.id) throw usage(`${args.command} needs the id of a pending approval`, `run \`clawjail approvals\` to see them, then \`clawjail ${args.command} ID\``);
  if (args.always && args.command !== 'approve') throw usage('--always only goes with approve', 'use `clawjail approve ID --always` to allow the destination from now on');
  if (args.command === 'approvals' && args.id) throw usage('approvals takes no id', 'use `clawjail approve ID` or `clawjail deny ID`');
  const sandboxes = await findSandboxes(args.name, ctx);

  if (args.command === 'approvals') {
    const lists: { sandbox: string; socket: string; pending: PendingApproval[]; error?: string }[] = [];
    for (const s of sandboxes) {
      try {
        const r = await createControlClient(s.socket).listApprovals();
        lists.push({ sandbox: s.name, socket: s.socket, pending: r.pending });
      } catch (e) {
        // Naming a sandbox that does not answer is an error; in the full listing it is a note.
        if (args.name) throw e;
        lists.push({ sandbox: s.name, socket: s.socket, pending: [], error: e instanceof Error ? e.message : String(e) });
      }
    }
    if (args.json) out.write(JSON.stringify({ sandboxes: lists }, null, 2) + '\n');
    else out.write(formatLists(lists));
    return 0;
  }

  const id = args.id as string;
  let target = sandboxes.length === 1 ? sandboxes[0] : undefined;
  if (!target) {
    for (const s of sandboxes) {
      const r = await createControlClient(s.socket)
        .listApprovals()
        .catch(() => null);
      if (r?.pending.some((p) => p.id === id)) {
        target = s;
        break;
      }
    }
  }
  if (!target) {
    throw new ClawjailError('ERR_CLAWJAIL_NOT_FOUND', `no pending approval with id ${id} in ${sandboxes.map((s) => s.name).join(', ')}`, {
      hint: 'it may have been answered or timed out; `clawjail approvals` lists the pending ones',
    });
  }
  const verdict = args.command === 'deny' ? 'deny' : args.always ? 'always' : 'allow';
  const result = await createControlClient(target.socket).decide(id, verdict);
  if (args.json) out.write(JSON.stringify({ sandbox: target.name, ...result }, null, 2) + '\n');
  else out.write(formatDecision(target.name, result));
  if (result.verdict === 'always' && !result.persistedTo) {
    throw new ClawjailError('ERR_CLAWJAIL_SERVICE', `the rule for ${dest(result.host, result.port)} was not saved: ${result.persistError ?? 'unknown error'}`, {
      hint: 'it is allowed in the running sandbox; add it to the profile by hand under network.allow to keep it',
    });
  }
  return 0;
}

async function findSandboxes(name: string | undefined, ctx: RuntimeContext): Promise<{ name: string; socket: string }[]> {
  const base = controlBaseDir(ctx);
  if (name !== undefined) {
    checkSandboxName(name);
    const socket = controlSocketPath(name, ctx);
    const st = await lstat(socket).catch(() => null);
    if (!st?.isSocket()) {
      const running = await listSandboxNames(ctx);
      throw new ClawjailError('ERR_CLAWJAIL_NOT_FOUND', `no running sandbox named ${name}: there is no control socket at ${socket}`, {
        hint: running.length
          ? `running sandboxes: ${running.join(', ')} (list their approvals with \`clawjail approvals\`)`
          : `no sandbox is running for this user (nothing under ${base}); root's sandboxes are under /run/clawjail, others under $XDG_RUNTIME_DIR/clawjail`,
      });
    }
    await checkControlSocket(socket, ctx);
    return [{ name, socket }];
  }
  const names = await listSandboxNames(ctx);
  if (names.length === 0) {
    throw new ClawjailError('ERR_CLAWJAIL_NOT_FOUND', `no running sandbox: no control socket under ${base} (looked for ${base}/<name>/control.sock)`, {
      hint: 'start one with `clawjail run`; a sandbox started by another user (or by root) has its sockets elsewhere, run this command as that user',
    });
  }
  const targets = names.map((n) => ({ name: n, socket: controlSocketPath(n, ctx) }));
  for (const t of targets) await checkControlSocket(t.socket, ctx);
  return targets;
}

function dest(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function formatLists(lists: { sandbox: string; pending: PendingApproval[]; error?: string }[]): string {
  const lines: string[] = [];
  const now = Date.now();
  let any = false;
  for (const l of lists) {
    if (l.error) {
      lines.push(`sandbox ${l.sandbox}: not answering (${l.error.split('\n')[0]})`);
      continue;
    }
    if (l.pending.length === 0) {
      lines.push(`sandbox ${l.sandbox}: no pending approvals`);
      continue;
    }
    any = true;
    lines.push(`sandbox ${l.sandbox}: ${l.pending.length} pending`);
    const rows = l.pending.map((p) => [
      p.id,
      dest(p.host, p.port) + (p.method ? ` (${p.method} ${p.path ?? '/'})` : ''),
      p.via,
      String(p.requests),
      `${Math.max(0, Math.round((Date.parse(p.expiresAt) - now) / 1000))}s`,
    ]);
    const table = [['ID', 'DESTINATION', 'VIA', 'REQUESTS', 'EXPIRES IN'], ...rows];
    const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => (r[i] as string).length)));
    for (const r of table) lines.push('  ' + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] as number))).join('  '));
  }
  if (any) lines.push('approve with `clawjail approve ID [--always]`, refuse with `clawjail deny ID`');
  return lines.join('\n') + '\n';
}

function formatDecision(sandbox: string, r: DecideResult): string {
  const d = dest(r.host, r.port);
  if (r.verdict === 'deny') return `denied ${r.id}: ${d} (sandbox ${sandbox})\n`;
  if (r.verdict === 'allow') return `approved ${r.id} once: ${d} (sandbox ${sandbox})\n`;
  return r.persistedTo
    ? `approved ${r.id}: ${d} (sandbox ${sandbox}); rule added to ${r.persistedTo}\n`
    : `approved ${r.id}: ${d} (sandbox ${sandbox}) for this run only\n`;
}
