import { readFileSync } from 'node:fs';
import { ClawjailError } from '../../errors.js';
import { defaultRouteName, type InferenceConfig, type InferenceRoute } from '../../profile/inference.js';
import { MAX_KEY_BACKSLASHES } from './scrub.js';

/**
 * Reads every route's key from the supervisor's environment or files, once, at launch. The keys
 * live only in the returned map (route name → key), which is handed to the router and nowhere else.
 */
export function resolveCredentials(
  config: InferenceConfig,
  env: NodeJS.ProcessEnv = process.env,
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): Map<string, string> {
  const keys = new Map<string, string>();
  const problems: { route: InferenceRoute; why: string; fix: string }[] = [];
  for (const route of config.routes) {
    const c = route.credential;
    if (!c) continue;
    let value: string | undefined;
    let why: string;
    let fix: string;
    if ('env' in c) {
      value = env[c.env]?.trim();
      why = `environment variable ${c.env} is ${env[c.env] === undefined ? 'not set' : 'empty'}`;
      fix = `export ${c.env}=<key> in the environment that starts clawjail`;
    } else {
      try {
        value = readFile(c.file).trim();
        why = `file ${c.file} is empty`;
      } catch (e) {
        why = `file ${c.file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
      }
      fix = `put the key in ${c.file}, readable by the user running clawjail`;
    }
    if (value && !/^[\x21-\x7e]+$/.test(value)) {
      why = `${'env' in c ? `environment variable ${c.env}` : `file ${c.file}`} holds characters that cannot be sent in an HTTP header (spaces, newlines or non-ASCII)`;
      fix = 'store the bare key, nothing else';
      value = undefined;
    } else if (value && value.split('\\').length - 1 > MAX_KEY_BACKSLASHES) {
      why = `${'env' in c ? `environment variable ${c.env}` : `file ${c.file}`} holds a key with more than ${MAX_KEY_BACKSLASHES} backslashes, which the router cannot search its answers for in bounded time`;
      fix = 'check the key: provider keys hold no backslashes';
      value = undefined;
    }
    if (value) keys.set(route.name, value);
    else if (!route.optional) problems.push({ route, why, fix });
  }
  if (problems.length > 0) {
    const lines = problems.map((p) => `inference route "${p.route.name}" has no API key: ${p.why}`);
    const fixes = problems.map((p) => p.fix);
    throw new ClawjailError('ERR_CLAWJAIL_CREDENTIAL_MISSING', lines.join('; '), {
      exitCode: 125,
      hint: `${fixes.join('; ')}; or mark the route \`optional: true\` to start without it (the route then answers 503).`,
    });
  }
  return keys;
}

/** Why an optional route has no key, in words for its 503 answer. Never the key itself. */
export function missingCredentialReason(route: InferenceRoute): string {
  const c = route.credential;
  if (!c) return 'no credential is configured';
  return 'env' in c ? `environment variable ${c.env} was not set when clawjail started` : `file ${c.file} could not be read when clawjail started`;
}

/**
 * The inference section as it may be printed (--dry-run, logs, `clawjail doctor`): where each key
 * comes from and, given the resolved map, whether it was found. Never a key.
 */
export function redactInference(config: InferenceConfig, credentials?: ReadonlyMap<string, string>): unknown {
  const def = defaultRouteName(config);
  return {
    default: def ?? null,
    auditBodies: config.auditBodies,
    routes: config.routes.map((r) => ({
      name: r.name,
      api: r.api,
      upstream: safeUrl(r.upstream),
      credential: r.credential === undefined ? null : { ...('env' in r.credential ? { env: r.credential.env } : { file: r.credential.file }), ...(credentials ? { found: credentials.has(r.name) } : {}) },
      ...(r.models ? { models: [...r.models] } : {}),
      ...(r.rewriteModel !== undefined ? { rewriteModel: r.rewriteModel } : {}),
      timeoutMs: r.timeoutMs,
      optional: r.optional,
    })),
  };
}

/** A URL without user:password, query or fragment; the schema refuses those, this is the belt to its braces. */
function safeUrl(u: string): string {
  try {
    const url = new URL(u);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return '<invalid URL>';
  }
}
