import { createRequire } from 'node:module';
import path from 'node:path';
import { ClawjailError } from '../errors.js';
import { GATEWAY_PORT, INSIDE, PLACEHOLDER_API_KEY, ROUTER_URL_INSIDE } from './paths.js';

/**
 * OpenClaw's config (`openclaw.json`, JSON5) as clawjail rewrites it for a sandbox: providers
 * re-pointed at the inference router with their keys moved out, and the settings that keep the
 * gateway local and quiet. Everything here is pure except {@link json5FromOpenClaw}.
 */

export type OpenClawConfig = Record<string, unknown>;
type Json = Record<string, unknown>;

export type RouteCredential = { env: string } | { file: string };

/** One inference route as the profile's `inference.routes[]` takes it. */
export interface RouteSpec {
  name: string;
  api: 'openai' | 'anthropic';
  upstream: string;
  credential?: RouteCredential;
  models?: string[];
}

/** An API key taken out of the config; the caller writes `value` to `file` (mode 0600). */
export interface MovedSecret {
  route: string;
  provider: string;
  file: string;
  value: string;
}

export interface ProviderRewrite {
  providers: Json;
  routes: RouteSpec[];
  secrets: MovedSecret[];
  warnings: string[];
}

export type Json5Parse = (text: string) => unknown;

/**
 * Parses a config file. Files clawjail writes are strict JSON; a user's file may use JSON5
 * (comments, trailing commas, unquoted keys), which needs `parseJson5`. clawjail has no JSON5
 * dependency of its own: {@link json5FromOpenClaw} borrows the parser OpenClaw itself uses.
 */
export function parseConfigText(text: string, parseJson5?: Json5Parse, source = 'openclaw.json'): OpenClawConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (strictError) {
    if (!parseJson5) {
      throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `${source} is not strict JSON (${(strictError as Error).message}) and no JSON5 parser is available`, {
        hint: 'install OpenClaw (`clawjail openclaw install`) so its JSON5 parser can be used, or rewrite the file as plain JSON',
      });
    }
    try {
      value = parseJson5(text);
    } catch (e) {
      throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `${source} is not valid JSON5: ${(e as Error).message}`, { hint: 'run `openclaw config validate` on the host', cause: e });
    }
  }
  if (!isObject(value)) throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `${source} must hold a JSON object`);
  return value;
}

/** The `json5` parser from an OpenClaw install (a dependency of `openclaw`), or undefined. */
export function json5FromOpenClaw(openclawEntry: string): Json5Parse | undefined {
  try {
    const mod = createRequire(path.join(path.dirname(openclawEntry), 'package.json'))('json5') as { parse?: Json5Parse; default?: { parse?: Json5Parse } };
    return mod.parse ?? mod.default?.parse;
  } catch {
    return undefined;
  }
}

const API_OF: Readonly<Record<string, RouteSpec['api']>> = {
  'openai-completions': 'openai',
  'openai-responses': 'openai',
  'anthropic-messages': 'anthropic',
};

/** Built-in providers that work with no `api`/`baseUrl` and read a conventional variable. */
const BUILTIN: Readonly<Record<string, { api: RouteSpec['api']; upstream: string; env: string }>> = {
  openai: { api: 'openai', upstream: 'https://api.openai.com/v1', env: 'OPENAI_API_KEY' },
  anthropic: { api: 'anthropic', upstream: 'https://api.anthropic.com/v1', env: 'ANTHROPIC_API_KEY' },
};

const AUTH_HEADER_RE = /^(authorization|proxy-authorization|x-api-key|api-key|cookie|x-goog-api-key)$/i;
const ENV_REF_RE = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

/** A route name from a provider id: one lower-case URL segment, unique, never `v1`. */
export function routeNameFor(providerId: string, taken: ReadonlySet<string>): string {
  let base = providerId.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^[^a-z0-9]+/, '').slice(0, 60) || 'provider';
  if (base === 'v1') base = 'v1-provider';
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}-${i}`;
  return name;
}

/**
 * Re-points every model provider at the router (`<router>/<route>/v1`) and turns it into a route
 * whose credential stays on the host: `${VAR}` and `{source: "env"}` keys become `{env}`, literal
 * keys are returned as secrets to be written to `<keysDir>/<route>.key` and referenced as
 * `{file}`. Providers the router cannot speak for (other wire APIs) are dropped with a warning:
 * they could not work without egress anyway, and their keys must not stay in the copy.
 */
export function rewriteProviders(providers: unknown, options: { keysDir: string; routerUrl?: string }): ProviderRewrite {
  const routerUrl = (options.routerUrl ?? ROUTER_URL_INSIDE).replace(/\/+$/, '');
  const out: ProviderRewrite = { providers: {}, routes: [], secrets: [], warnings: [] };
  if (providers === undefined) return out;
  if (!isObject(providers)) {
    out.warnings.push('models.providers is not an object; dropped');
    return out;
  }
  const taken = new Set<string>();
  for (const [id, raw] of Object.entries(providers)) {
    if (!isObject(raw)) {
      out.warnings.push(`provider "${id}": not an object; dropped`);
      continue;
    }
    const builtin = BUILTIN[id];
    const apiName = typeof raw.api === 'string' ? raw.api : undefined;
    const api = apiName ? API_OF[apiName] : builtin?.api;
    if (!api) {
      out.warnings.push(`provider "${id}": api ${apiName ? `"${apiName}"` : '(unset)'} is not one the inference router speaks (openai-completions, openai-responses, anthropic-messages); dropped from the sandbox's config`);
      continue;
    }
    const upstream = upstreamFor(api, typeof raw.baseUrl === 'string' ? raw.baseUrl : builtin?.upstream);
    if (!upstream) {
      out.warnings.push(`provider "${id}": no usable baseUrl (${JSON.stringify(raw.baseUrl)}); dropped`);
      continue;
    }
    const name = routeNameFor(id, taken);
    taken.add(name);
    const route: RouteSpec = { name, api, upstream };

    const key = raw.apiKey;
    if (key === undefined || key === '') {
      if (builtin) route.credential = { env: builtin.env };
    } else if (typeof key === 'string') {
      const ref = ENV_REF_RE.exec(key);
      if (ref) route.credential = { env: ref[1] as string };
      else if (key.includes('${')) out.warnings.push(`provider "${id}": apiKey mixes text and \${…} substitution; not moved, set the route's credential by hand`);
      else {
        const file = path.join(options.keysDir, `${name}.key`);
        out.secrets.push({ route: name, provider: id, file, value: key });
        route.credential = { file };
      }
    } else if (isObject(key) && key.source === 'env' && typeof key.id === 'string') {
      route.credential = { env: key.id };
    } else {
      const source = isObject(key) ? String(key.source) : typeof key;
      out.warnings.push(`provider "${id}": apiKey is a "${source}" secret reference clawjail cannot resolve; give route "${name}" a credential ({env} or {file}) by hand`);
    }

    const models = Array.isArray(raw.models) ? raw.models.map((m) => (isObject(m) && typeof m.id === 'string' ? m.id : undefined)).filter((m): m is string => !!m) : [];
    if (models.length > 0) route.models = models;

    const rewritten: Json = { ...raw, baseUrl: `${routerUrl}/${name}/v1`, apiKey: PLACEHOLDER_API_KEY };
    if (isObject(raw.headers)) {
      const headers: Json = {};
      for (const [h, v] of Object.entries(raw.headers)) {
        if (AUTH_HEADER_RE.test(h) || typeof v !== 'string' || v.includes('${')) {
          out.warnings.push(`provider "${id}": header "${h}" removed (credentials are injected by the router; secrets do not enter the sandbox)`);
          continue;
        }
        headers[h] = v;
      }
      rewritten.headers = headers;
    }
    out.providers[id] = rewritten;
    out.routes.push(route);
  }
  return out;
}

/**
 * The router takes a base that stands in for the caller's `/v1`. OpenAI clients append
 * `/chat/completions` to baseUrl as given; OpenClaw's Anthropic client adds `/v1` when baseUrl
 * lacks it (observed with 2026.9.6), so the Anthropic upstream always ends in `/v1`.
 */
export function upstreamFor(api: RouteSpec['api'], baseUrl: string | undefined): string | undefined {
  if (!baseUrl) return undefined;
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username || url.password || url.search || url.hash) return undefined;
  let p = url.pathname.replace(/\/+$/, '');
  if (api === 'anthropic' && !p.endsWith('/v1')) p += '/v1';
  if (p === '') return undefined;
  return `${url.origin}${p}`;
}

/**
 * Settings clawjail always sets in a sandbox's config. Each one closes a door the sandbox would
 * otherwise have to hold shut from the outside: update checks, telemetry and the model catalog
 * refresh call home at start; the gateway must stay on loopback with a token so that only the
 * published port reaches it; logs and the workspace must land in the persistent state dir.
 */
export function hardenConfig(config: OpenClawConfig, options: { gatewayToken: string }): { config: OpenClawConfig; warnings: string[] } {
  const c = structuredClone(config);
  const warnings: string[] = [];
  const gateway = objectAt(c, 'gateway');
  gateway.mode = 'local';
  gateway.bind = 'loopback';
  gateway.port = GATEWAY_PORT;
  if (gateway.customBindHost !== undefined) delete gateway.customBindHost;
  gateway.auth = { mode: 'token', token: options.gatewayToken };
  if (isObject(gateway.tailscale) && gateway.tailscale.mode !== undefined && gateway.tailscale.mode !== 'off') {
    warnings.push(`gateway.tailscale.mode "${String(gateway.tailscale.mode)}" set to "off": the sandbox has no network of its own`);
    gateway.tailscale.mode = 'off';
  }
  const update = objectAt(c, 'update');
  update.checkOnStart = false;
  objectAt(update, 'auto').enabled = false;
  objectAt(c, 'telemetry').enabled = false;
  objectAt(objectAt(c, 'models'), 'catalogRefresh').enabled = false;
  objectAt(objectAt(c, 'nodeHost'), 'autoUpdate').enabled = false;
  objectAt(c, 'logging').file = INSIDE.logFile;
  objectAt(objectAt(c, 'agents'), 'defaults').workspace = INSIDE.workspace;
  return { config: c, warnings };
}

export interface SandboxConfig {
  config: OpenClawConfig;
  routes: RouteSpec[];
  secrets: MovedSecret[];
  warnings: string[];
}

/**
 * The user's config made fit for a sandbox: includes refused (their files would not be there),
 * providers moved to routes, hardening applied, and warnings for what still needs a hand
 * (`${VAR}` references elsewhere, models whose provider lives only in OpenClaw's auth store).
 */
export function prepareSandboxConfig(source: OpenClawConfig, options: { gatewayToken: string; keysDir: string; routerUrl?: string }): SandboxConfig {
  const includes = findKeyPaths(source, '$include');
  if (includes.length > 0) {
    throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `the config uses $include (${includes.join(', ')}); clawjail copies one file and cannot rewrite providers in included files`, {
      hint: 'inline the included files into openclaw.json, then run `clawjail openclaw init` again',
    });
  }
  const models = isObject(source.models) ? source.models : {};
  const rewrite = rewriteProviders(models.providers, options);
  const withProviders: OpenClawConfig = { ...source, models: { ...models, ...(models.mode === undefined ? { mode: 'merge' } : {}), providers: rewrite.providers } };
  const hardened = hardenConfig(withProviders, { gatewayToken: options.gatewayToken });
  const warnings = [...rewrite.warnings, ...hardened.warnings];

  const primary = modelRefs(source);
  for (const ref of primary) {
    const provider = ref.split('/')[0];
    if (provider && ref.includes('/') && !(provider in rewrite.providers) && !(isObject(models.providers) && provider in models.providers)) {
      warnings.push(`model "${ref}" uses provider "${provider}", which has no models.providers entry (its key would be in OpenClaw's auth store, which is not copied); add a provider pointing at a route`);
    }
  }
  const envRefs = findEnvRefs({ ...hardened.config, models: { ...(hardened.config.models as Json), providers: {} } });
  if (envRefs.length > 0) warnings.push(`\${VAR} references outside model providers will be unset inside unless passed in (env.pass): ${envRefs.join(', ')}`);
  return { config: hardened.config, routes: rewrite.routes, secrets: rewrite.secrets, warnings };
}

function modelRefs(config: OpenClawConfig): string[] {
  const agents = isObject(config.agents) ? config.agents : {};
  const defaults = isObject(agents.defaults) ? agents.defaults : {};
  const model = defaults.model;
  const refs: string[] = [];
  if (typeof model === 'string') refs.push(model);
  else if (isObject(model)) {
    if (typeof model.primary === 'string') refs.push(model.primary);
    if (Array.isArray(model.fallbacks)) for (const f of model.fallbacks) if (typeof f === 'string') refs.push(f);
  }
  return refs;
}

/** Dotted paths of every object key named `key`. */
export function findKeyPaths(value: unknown, key: string, at = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => findKeyPaths(v, key, `${at}[${i}]`));
  if (!isObject(value)) return [];
  return Object.entries(value).flatMap(([k, v]) => {
    const here = at ? `${at}.${k}` : k;
    return [...(k === key ? [here] : []), ...findKeyPaths(v, key, here)];
  });
}

/** Variable names referenced as `${NAME}` anywhere in string values, sorted, unique. */
export function findEnvRefs(value: unknown): string[] {
  const found = new Set<string>();
  const walk = (v: unknown) => {
    if (typeof v === 'string') for (const m of v.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) found.add(m[1] as string);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (isObject(v)) Object.values(v).forEach(walk);
  };
  walk(value);
  return [...found].sort();
}

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function objectAt(parent: Json, key: string): Json {
  const v = parent[key];
  if (isObject(v)) return v;
  const fresh: Json = {};
  parent[key] = fresh;
  return fresh;
}
