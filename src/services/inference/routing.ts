import { defaultRouteName, type InferenceApi, type InferenceConfig, type InferenceRoute } from '../../profile/inference.js';

/**
 * Which route and API path a caller's request line maps to. Pure: the router acts on the answer.
 * Paths are matched exactly against a fixed table, so nothing the caller writes (`..`, `%2e`,
 * doubled slashes) can reach an upstream path the table does not name.
 */

/** Method allowed for each API path. Only these paths are ever forwarded. */
export const API_PATHS: Readonly<Record<InferenceApi, ReadonlyMap<string, 'GET' | 'POST'>>> = {
  openai: new Map([
    ['/v1/chat/completions', 'POST'],
    ['/v1/completions', 'POST'],
    ['/v1/responses', 'POST'],
    ['/v1/embeddings', 'POST'],
    ['/v1/models', 'GET'],
  ]),
  anthropic: new Map([
    ['/v1/messages', 'POST'],
    ['/v1/messages/count_tokens', 'POST'],
    ['/v1/models', 'GET'],
  ]),
};

export type RouteDecision =
  | { kind: 'forward'; route: InferenceRoute; apiPath: string; query: string }
  | { kind: 'refuse'; status: 404 | 405; code: 'route_not_found' | 'path_not_found' | 'method_not_allowed'; route?: InferenceRoute; allow?: string; message: string };

/** Splits a request target (origin-form, or absolute-form when it comes through a proxy) into path and query. */
export function splitTarget(target: string): { path: string; query: string } {
  let rest = target;
  if (!rest.startsWith('/')) {
    // Absolute form: http://inference.local/v1/models. Everything up to the path is dropped.
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(rest);
    rest = m ? rest.slice(m[0].length) || '/' : '/' + rest;
  }
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  const q = rest.indexOf('?');
  return q < 0 ? { path: rest, query: '' } : { path: rest.slice(0, q), query: rest.slice(q) };
}

export function resolveRoute(config: InferenceConfig, method: string, target: string): RouteDecision {
  const { path, query } = splitTarget(target);
  let route: InferenceRoute | undefined;
  let apiPath: string;
  if (path === '/v1' || path.startsWith('/v1/')) {
    const name = defaultRouteName(config);
    route = config.routes.find((r) => r.name === name);
    apiPath = path;
    if (!route) {
      return { kind: 'refuse', status: 404, code: 'route_not_found', message: `no inference route is configured, so ${path} has nowhere to go. Add a route to the profile's inference.routes or pass --route NAME=URL.` };
    }
  } else {
    const slash = path.indexOf('/', 1);
    const name = slash < 0 ? path.slice(1) : path.slice(1, slash);
    route = config.routes.find((r) => r.name === name);
    apiPath = slash < 0 ? '' : path.slice(slash);
    if (!route) {
      return { kind: 'refuse', status: 404, code: 'route_not_found', message: `no inference route matches ${clip(path)}. ${describeRoutes(config)}` };
    }
  }
  const allowed = API_PATHS[route.api].get(apiPath);
  if (!allowed) {
    const paths = [...API_PATHS[route.api].keys()].join(', ');
    return { kind: 'refuse', status: 404, code: 'path_not_found', route, message: `route "${route.name}" (${route.api}) does not serve ${clip(apiPath || path)}; it serves ${paths}.` };
  }
  if (method !== allowed) {
    return { kind: 'refuse', status: 405, code: 'method_not_allowed', route, allow: allowed, message: `route "${route.name}": ${apiPath} takes ${allowed}, not ${clip(method)}.` };
  }
  return { kind: 'forward', route, apiPath, query };
}

const ID = /^[A-Za-z0-9_.:-]{1,200}$/;

/**
 * Query parameters forwarded per API path, with the values each may take; every other parameter
 * is dropped. The query is not part of the model policy, so it must not carry anything an
 * upstream could read as one (`?model=…`), nor any switch the route's owner has not seen.
 */
export const QUERY_PARAMS: Readonly<Record<InferenceApi, Readonly<Record<string, Readonly<Record<string, RegExp>>>>>> = {
  openai: {},
  anthropic: {
    // The Anthropic SDKs add ?beta=true to beta endpoints.
    '/v1/messages': { beta: /^(true|false)$/ },
    '/v1/messages/count_tokens': { beta: /^(true|false)$/ },
    '/v1/models': { limit: /^[0-9]{1,4}$/, before_id: ID, after_id: ID },
  },
};

/**
 * The query string to forward (`?a=b`, or '' for none), rebuilt from the parameters
 * QUERY_PARAMS allows for this path; the names of the dropped ones (a repeated allowed name
 * keeps its first value). Pure.
 */
export function filterQuery(api: InferenceApi, apiPath: string, query: string): { query: string; dropped: string[] } {
  if (query === '' || query === '?') return { query: '', dropped: [] };
  const allowed = QUERY_PARAMS[api][apiPath] ?? {};
  const kept = new URLSearchParams();
  const dropped: string[] = [];
  for (const [name, value] of new URLSearchParams(query.slice(1))) {
    const rule = Object.hasOwn(allowed, name) ? allowed[name] : undefined;
    if (rule && rule.test(value) && !kept.has(name)) kept.append(name, value);
    else dropped.push(clip(name, 40));
  }
  const text = kept.toString();
  return { query: text ? `?${text}` : '', dropped };
}

/** The prefix a route answers at, e.g. /claude/v1; the default route also answers at /v1. */
export function routePrefix(route: InferenceRoute): string {
  return `/${route.name}/v1`;
}

function describeRoutes(config: InferenceConfig): string {
  if (config.routes.length === 0) return 'No routes are configured; add one to inference.routes or pass --route NAME=URL.';
  const def = defaultRouteName(config);
  const list = config.routes.map((r) => `${routePrefix(r)} (${r.api}${r.name === def ? ', also at /v1' : ''})`).join(', ');
  return `Routes: ${list}.`;
}

/** Caller-supplied text echoed in errors is clipped so a huge path cannot bloat a response or log. */
export function clip(s: string, max = 200): string {
  return s.length <= max ? s : `${s.slice(0, max)}…`;
}
