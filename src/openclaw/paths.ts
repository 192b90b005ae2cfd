import { homedir } from 'node:os';
import path from 'node:path';
import { ClawjailError } from '../errors.js';
import { INFERENCE_PORT } from '../policy/addresses.js';

/**
 * Where things are inside the sandbox. The state dir lives under /sandbox so it persists with the
 * sandbox's host dir; Node and OpenClaw sit outside it, read-only, where the agent cannot patch
 * the code that enforces its own limits.
 */
export const INSIDE = {
  sandbox: '/sandbox',
  stateDir: '/sandbox/.openclaw',
  config: '/sandbox/.openclaw/openclaw.json',
  logFile: '/sandbox/.openclaw/logs/openclaw.log',
  workspace: '/sandbox/workspace',
  nodeDir: '/opt/clawjail/node',
  nodeBin: '/opt/clawjail/node/bin/node',
  openclawDir: '/opt/clawjail/openclaw',
} as const;

/** The inference router as OpenClaw reaches it inside the sandbox's network namespace. */
export const ROUTER_URL_INSIDE = `http://127.0.0.1:${INFERENCE_PORT}`;
export const GATEWAY_PORT = 18789;
/** What the sandbox's config holds in place of a provider key; the router replaces it. */
export const PLACEHOLDER_API_KEY = 'clawjail-router';

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/i;

export function validateSandboxName(name: string): string {
  if (!NAME_RE.test(name) || name.includes('..')) {
    throw new ClawjailError('ERR_CLAWJAIL_USAGE', `sandbox name ${JSON.stringify(name)} is not usable as a directory name`, {
      hint: 'use letters, digits, ".", "_" and "-" (at most 63, starting with a letter or digit), e.g. --name work',
    });
  }
  return name;
}

function xdg(env: NodeJS.ProcessEnv, key: string, fallback: string): string {
  const v = env[key];
  return v && path.isAbsolute(v) ? v : path.join(env.HOME || homedir(), fallback);
}

/** `$XDG_STATE_HOME/clawjail` (default `~/.local/state/clawjail`): one dir per sandbox, each mounted at /sandbox. */
export function resolveStateHome(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(xdg(env, 'XDG_STATE_HOME', '.local/state'), 'clawjail');
}

/**
 * `$XDG_CONFIG_HOME/clawjail/openclaw` (default `~/.config/...`): clawjail's host-side record of
 * each sandbox (bootstrap manifest, routes, moved API keys). It must never be under the sandbox
 * dir: an agent that could rewrite the manifest could approve its own edits.
 */
export function resolveHostHome(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(xdg(env, 'XDG_CONFIG_HOME', '.config'), 'clawjail', 'openclaw');
}

export interface SandboxPaths {
  name: string;
  /** Host dir mounted read-write at /sandbox. */
  sandboxDir: string;
  openclawDir: string;
  config: string;
  workspace: string;
  /** Host-side record dir, outside sandboxDir. */
  hostDir: string;
  manifest: string;
  record: string;
  keysDir: string;
}

export function sandboxPaths(options: { name: string; stateHome?: string; hostHome?: string; env?: NodeJS.ProcessEnv }): SandboxPaths {
  const env = options.env ?? process.env;
  const name = validateSandboxName(options.name);
  const sandboxDir = path.join(options.stateHome ?? resolveStateHome(env), name);
  const hostDir = path.join(options.hostHome ?? resolveHostHome(env), name);
  return {
    name,
    sandboxDir,
    openclawDir: path.join(sandboxDir, '.openclaw'),
    config: path.join(sandboxDir, '.openclaw', 'openclaw.json'),
    workspace: path.join(sandboxDir, 'workspace'),
    hostDir,
    manifest: path.join(hostDir, 'bootstrap-manifest.json'),
    record: path.join(hostDir, 'sandbox.json'),
    keysDir: path.join(hostDir, 'keys'),
  };
}
