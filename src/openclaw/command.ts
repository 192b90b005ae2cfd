import path from 'node:path';
import { ClawjailError } from '../errors.js';
import { bootstrapRefusal, type BootstrapVerdict } from './bootstrap.js';
import type { RouteSpec } from './config.js';
import type { OpenClawInstall } from './install.js';
import { GATEWAY_PORT, INSIDE } from './paths.js';

export interface OpenClawLaunchFlags {
  /** `--writable-bootstrap`: no read-only binds over the bootstrap files, no pin check. */
  writableBootstrap?: boolean;
  /** `--writable-config`: the config is not bound read-only. */
  writableConfig?: boolean;
  /** Host loopback port for the gateway (default 18789; 0 picks a free one). */
  gatewayHostPort?: number;
  /** Skip publishing the gateway port (one-shot commands such as `agent exec`). */
  noPublish?: boolean;
}

export interface OpenClawLaunchInput {
  name: string;
  install: Pick<OpenClawInstall, 'nodeBin' | 'openclawEntry' | 'openclawRoot'>;
  /** Host paths of the sandbox (from `sandboxPaths`). */
  paths: { sandboxDir: string; openclawDir: string; config: string; workspace: string };
  /** `verifyBootstrap()`'s result; ignored with --writable-bootstrap. */
  bootstrap?: BootstrapVerdict;
  routes: RouteSpec[];
  flags?: OpenClawLaunchFlags;
  /** OpenClaw's own argv (`gateway run …`, `agent exec "…" --json`). */
  args: string[];
}

export interface Bind {
  src: string;
  dest: string;
}

/** Raw profile fragments the launcher merges over `profiles/openclaw.yaml`. */
export interface OpenClawOverrides {
  name: string;
  filesystem: { sandboxDir: string; ro: Bind[]; rw: Bind[] };
  process: { cwd: string };
  env: { set: Record<string, string> };
  publish: { hostPort: number; port: number }[];
  inference: { routes: RouteSpec[] };
}

export interface OpenClawLaunch {
  overrides: OpenClawOverrides;
  /** argv inside the sandbox. */
  command: string[];
}

/**
 * Turns a found install, a prepared sandbox and the user's flags into launcher input. The mounts,
 * in the order the launcher lays them (parents first):
 *  - Node at /opt/clawjail/node/bin/node and OpenClaw at /opt/clawjail/openclaw, read-only, so the
 *    agent cannot patch the runtime that enforces its own tool policy;
 *  - `.openclaw/` and `workspace/` bound read-write onto themselves: as mount points they cannot
 *    be renamed away and replaced by directories holding a forged config or bootstrap files;
 *  - the config and the pinned bootstrap files read-only on top.
 * Refuses (exit 125) when the bootstrap files differ from their pin, unless --writable-bootstrap.
 */
export function buildOpenClawLaunch(input: OpenClawLaunchInput): OpenClawLaunch {
  const flags = input.flags ?? {};
  const { paths, install } = input;
  for (const [what, p] of [['sandbox dir', paths.sandboxDir], ['node', install.nodeBin], ['openclaw', install.openclawEntry], ['openclaw root', install.openclawRoot]] as const) {
    if (!path.isAbsolute(p)) throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `${what} path must be absolute: ${p}`);
  }
  const entryRel = path.relative(install.openclawRoot, install.openclawEntry);
  if (entryRel.startsWith('..') || path.isAbsolute(entryRel)) {
    throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `the OpenClaw entry ${install.openclawEntry} is outside its mount root ${install.openclawRoot}`);
  }
  const insideEntry = path.posix.join(INSIDE.openclawDir, ...entryRel.split(path.sep));
  for (const [what, p] of [['state dir', paths.openclawDir], ['config', paths.config], ['workspace', paths.workspace]] as const) {
    const rel = path.relative(paths.sandboxDir, p);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `${what} ${p} is not inside the sandbox dir ${paths.sandboxDir}`);
  }

  const ro: Bind[] = [
    { src: install.nodeBin, dest: INSIDE.nodeBin },
    { src: install.openclawRoot, dest: INSIDE.openclawDir },
  ];
  const rw: Bind[] = [
    { src: paths.openclawDir, dest: INSIDE.stateDir },
    { src: paths.workspace, dest: INSIDE.workspace },
  ];
  if (!flags.writableConfig) ro.push({ src: paths.config, dest: INSIDE.config });
  if (!flags.writableBootstrap) {
    const refusal = bootstrapRefusal(input.bootstrap ?? { pinned: false }, input.name);
    if (refusal) throw refusal;
    if (input.bootstrap?.pinned) ro.push(...input.bootstrap.binds);
  }

  const pathDirs = [path.posix.dirname(INSIDE.nodeBin)];
  if (entryRel.split(path.sep)[0] === 'node_modules') pathDirs.push(path.posix.join(INSIDE.openclawDir, 'node_modules', '.bin'));
  pathDirs.push('/usr/local/bin', '/usr/bin', '/bin');

  return {
    overrides: {
      name: input.name,
      filesystem: { sandboxDir: paths.sandboxDir, ro, rw },
      // `agent exec` takes its cwd as the workspace: start there so it reads the pinned files.
      process: { cwd: INSIDE.workspace },
      env: { set: { PATH: pathDirs.join(':') } },
      publish: flags.noPublish ? [] : [{ hostPort: flags.gatewayHostPort ?? GATEWAY_PORT, port: GATEWAY_PORT }],
      inference: { routes: input.routes },
    },
    command: [INSIDE.nodeBin, insideEntry, ...input.args],
  };
}
