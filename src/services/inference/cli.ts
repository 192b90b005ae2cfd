import { ClawjailError } from '../../errors.js';
import type { InferenceApi } from '../../profile/inference.js';

/**
 * Raw route objects for `--route NAME=[openai:|anthropic:]URL` and `--route-credential-env
 * NAME=VAR`, to be appended to the profile's routes and validated by InferenceSchema with them.
 * Without an `api:` prefix the API is anthropic for *.anthropic.com and openai otherwise.
 */
export function routeOverridesFromCli(routes: readonly string[], credentialEnvs: readonly string[]): Record<string, unknown>[] {
  const envs = new Map<string, string>();
  for (const flag of credentialEnvs) {
    const [name, variable] = splitPair(flag, '--route-credential-env', 'NAME=VAR, e.g. --route-credential-env openai=OPENAI_API_KEY');
    if (envs.has(name)) throw usage(`--route-credential-env names route "${name}" twice.`);
    envs.set(name, variable);
  }
  const out: Record<string, unknown>[] = [];
  const names = new Set<string>();
  for (const flag of routes) {
    const [name, spec] = splitPair(flag, '--route', 'NAME=URL, e.g. --route openai=https://api.openai.com/v1 (prefix the URL with anthropic: or openai: to choose the API)');
    if (names.has(name)) throw usage(`--route names route "${name}" twice.`);
    names.add(name);
    const { api, upstream } = parseSpec(spec);
    const route: Record<string, unknown> = { name, api, upstream };
    const variable = envs.get(name);
    if (variable !== undefined) route.credential = { env: variable };
    out.push(route);
  }
  for (const name of envs.keys()) {
    if (!names.has(name)) {
      throw usage(`--route-credential-env ${name}=… names no --route ${name}; give --route ${name}=URL as well (a profile route's credential is set in the profile).`);
    }
  }
  return out;
}

function parseSpec(spec: string): { api: InferenceApi; upstream: string } {
  const m = /^(openai|anthropic):(https?:\/\/.*)$/.exec(spec);
  if (m) return { api: m[1] as InferenceApi, upstream: m[2] as string };
  let host = '';
  try {
    host = new URL(spec).hostname;
  } catch {
    // Left to the schema, which explains what a valid upstream looks like.
  }
  return { api: host === 'anthropic.com' || host.endsWith('.anthropic.com') ? 'anthropic' : 'openai', upstream: spec };
}

function splitPair(flag: string, option: string, form: string): [string, string] {
  const eq = flag.indexOf('=');
  if (eq <= 0 || eq === flag.length - 1) throw usage(`${option} ${flag}: expected ${form}.`);
  return [flag.slice(0, eq), flag.slice(eq + 1)];
}

function usage(message: string): ClawjailError {
  return new ClawjailError('ERR_CLAWJAIL_USAGE', message, { exitCode: 125 });
}
