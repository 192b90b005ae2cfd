import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ClawjailError } from '../errors.js';
import type { FindOptions } from '../openclaw/install.js';
import type { TenantSpec } from './config.js';

/**
 * A tenant without a `command` is an OpenClaw gateway: its state dir is an OpenClaw sandbox
 * (`clawjail openclaw init`, done on first start with the tenant as owner), run with the same
 * mounts, pinned bootstrap files and read-only config as `clawjail openclaw -- gateway run`.
 * The host-side records (bootstrap pin, moved keys) live in STATEROOT/.openclaw-host/NAME, which no
 * tenant can reach.
 */
export interface OpenClawTenant {
  overrides: Record<string, unknown>;
  command: string[];
  gatewayToken: string;
  gateway: { port: number; hostPort: number; health: string };
}

export async function prepareOpenClawTenant(spec: TenantSpec, ctx: { uid: number; isRoot: boolean; stateRoot: string; find?: FindOptions }): Promise<OpenClawTenant> {
  const { findOpenClaw } = await import('../openclaw/install.js');
  const { sandboxPaths, GATEWAY_PORT } = await import('../openclaw/paths.js');
  const { initOpenClawSandbox, readSandboxRecord } = await import('../openclaw/init.js');
  const { verifyBootstrap } = await import('../openclaw/bootstrap.js');
  const { buildOpenClawLaunch } = await import('../openclaw/command.js');
  const { parseConfigText } = await import('../openclaw/config.js');
  const install = await findOpenClaw(ctx.find ?? {}).catch((e: unknown) => {
    throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `tenant ${spec.name} has no command, so it runs OpenClaw, but no OpenClaw install was found: ${(e as Error).message.split('\n')[0]}`, {
      hint: 'run `clawjail openclaw install` as the orchestrator\'s user, or give the tenant a command',
    });
  });
  const paths = sandboxPaths({ name: spec.name, stateHome: ctx.stateRoot, hostHome: join(ctx.stateRoot, '.openclaw-host') });
  let record = await readSandboxRecord(paths.record);
  if (!record) {
    await initOpenClawSandbox({
      name: spec.name,
      stateHome: ctx.stateRoot,
      hostHome: join(ctx.stateRoot, '.openclaw-host'),
      openclawEntry: install.openclawEntry,
      ...(ctx.isRoot ? { owner: { uid: ctx.uid, gid: ctx.uid } } : {}),
    });
    record = await readSandboxRecord(paths.record);
  }
  const config = parseConfigText(await readFile(paths.config, 'utf8'), undefined, paths.config) as { gateway?: { auth?: { token?: unknown } } };
  const token = config.gateway?.auth?.token;
  if (typeof token !== 'string' || !token) {
    throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `tenant ${spec.name}: ${paths.config} has no gateway.auth.token`, { hint: 'run `clawjail openclaw audit --fix` on it, or remove the tenant\'s state to start afresh' });
  }
  const hostPort = spec.gateway?.hostPort ?? 0;
  const { overrides, command } = buildOpenClawLaunch({
    name: spec.name,
    install,
    paths,
    bootstrap: await verifyBootstrap(paths.workspace, paths.manifest),
    routes: [...(record?.routes ?? []), ...spec.routes],
    flags: { gatewayHostPort: hostPort },
    args: ['gateway', 'run', '--port', String(GATEWAY_PORT)],
  });
  return {
    overrides: overrides as unknown as Record<string, unknown>,
    command,
    gatewayToken: token,
    gateway: { port: GATEWAY_PORT, hostPort, health: spec.gateway?.health ?? '/readyz' },
  };
}
