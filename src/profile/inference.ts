import { z } from 'zod';

/**
 * The inference section: which model APIs the workload may reach through the router, where each
 * route goes, and where its credential comes from. The profile names a credential's source (an
 * environment variable or a file of the supervisor); the secret itself is read at launch by
 * `resolveCredentials()` and never appears in a profile, a plan or a log.
 */

// A route name becomes the first path segment (`/<name>/v1/...`), so it must be one plain segment.
// `v1` is taken by the default route's own prefix.
const ROUTE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const RESERVED_ROUTE_NAMES = new Set(['v1']);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const InferenceApiSchema = z
  .enum(['openai', 'anthropic'])
  .describe('Wire protocol of the upstream: openai (chat/completions, responses, embeddings, models) or anthropic (messages, count_tokens, models). Decides the allowed paths, how the credential is sent and the shape of error bodies.');

export const CredentialSchema = z
  .union([
    z
      .object({
        env: z
          .string()
          .regex(ENV_NAME, 'an environment variable name such as OPENAI_API_KEY (letters, digits, underscore; not starting with a digit)')
          .describe('Name of a variable in the environment of the clawjail process that holds the key. The variable is never passed into the sandbox.'),
      })
      .strict(),
    z
      .object({
        file: z
          .string()
          .refine((p) => p.startsWith('/'), 'an absolute path such as /run/secrets/openai-key')
          .describe('Absolute path of a file (on the host, read by the supervisor) whose content is the key; surrounding whitespace is trimmed.'),
      })
      .strict(),
  ])
  .describe('Where the supervisor reads the route\'s API key at launch: {env: NAME} or {file: PATH}. The key is injected into forwarded requests and never enters the sandbox.');

export const InferenceRouteSchema = z
  .object({
    name: z
      .string()
      .superRefine((name, ctx) => {
        if (ROUTE_NAME.test(name) && !RESERVED_ROUTE_NAMES.has(name)) return;
        ctx.addIssue({
          code: 'custom',
          message: `route name "${name}" cannot be used as a URL path segment: use lower-case letters, digits, "-" and "_" (at most 63, starting with a letter or digit), and not "v1", which is the default route's prefix. Example: "claude".`,
        });
      })
      .describe('Route name; non-default routes answer at /<name>/v1/... inside the sandbox. Lower-case letters, digits, "-" and "_", at most 63 characters, not "v1".'),
    api: InferenceApiSchema,
    upstream: z
      .string()
      .superRefine((upstream, ctx) => {
        const problem = upstreamProblem(upstream);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .describe('Upstream base URL that stands in for the caller\'s /v1: the part after /v1 is appended to it. Examples: https://api.openai.com/v1, https://api.anthropic.com/v1, http://127.0.0.1:11434/v1, https://generativelanguage.googleapis.com/v1beta/openai.'),
    credential: CredentialSchema.optional().describe('Source of the API key. Omit for an upstream that needs none (a local model server).'),
    models: z
      .array(z.string().min(1))
      .min(1, 'list at least one model id, or omit `models` to allow any model')
      .optional()
      .describe('Model ids the workload may request on this route; any other model is refused with 403. Omit to allow any model.'),
    rewriteModel: z
      .string()
      .min(1)
      .optional()
      .describe('Model id sent upstream in place of the one the workload asked for (after the `models` check).'),
    timeoutMs: z
      .number()
      .int()
      .positive()
      .max(3_600_000)
      .default(600_000)
      .describe('Longest wait, in milliseconds, for the upstream\'s response headers and between two pieces of its body; past it the caller gets 504 (or the stream ends with an error event). Connecting is limited to min(timeoutMs, 10000).'),
    optional: z
      .boolean()
      .default(false)
      .describe('When true, a missing credential does not stop the launch; the route then answers 503 naming the missing variable or file.'),
  })
  .strict()
  .describe('One model route: an upstream API, its credential and the models the workload may use.');

export const InferenceSchema = z
  .object({
    routes: z.array(InferenceRouteSchema).default([]).describe('Model routes served by the inference router. Several are allowed (one sandbox may use two providers).'),
    default: z
      .string()
      .optional()
      .describe('Name of the route that also answers at /v1/... (without a route prefix). Defaults to the first route.'),
    auditBodies: z
      .boolean()
      .default(false)
      .describe('Include request and response bodies (prompt text, completions) in inference audit events. Off by default: audit events carry route, model, status, timings, tokens and sizes only.'),
  })
  .strict()
  .superRefine((inference, ctx) => {
    const seen = new Set<string>();
    inference.routes.forEach((route, i) => {
      if (seen.has(route.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'name'],
          message: `route name "${route.name}" is used twice; each route answers at its own /<name>/v1 prefix, so names must be unique. Rename one of them.`,
        });
      }
      seen.add(route.name);
    });
    if (inference.default !== undefined && !seen.has(inference.default)) {
      const names = [...seen].map((n) => `"${n}"`).join(', ') || 'none';
      ctx.addIssue({
        code: 'custom',
        path: ['default'],
        message: `default route "${inference.default}" is not one of the routes (${names}); name an existing route or omit \`default\` to use the first one.`,
      });
    }
  })
  .describe('Model inference routing; credentials stay in the supervisor.');

export type InferenceApi = z.infer<typeof InferenceApiSchema>;
export type InferenceCredential = z.infer<typeof CredentialSchema>;
export type InferenceRoute = z.infer<typeof InferenceRouteSchema>;
export type InferenceConfig = z.infer<typeof InferenceSchema>;

/** The route that also answers at /v1 without a prefix. */
export { defaultRouteName } from './route-default.js';

/** Why a URL cannot be a route's upstream, or undefined when it can. Pure; also used for CLI flags. */
export function upstreamProblem(upstream: string): string | undefined {
  let url: URL;
  try {
    url = new URL(upstream);
  } catch {
    return `upstream "${upstream}" is not a URL; write a base URL such as https://api.openai.com/v1.`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `upstream "${upstream}" must use http: or https:, not ${url.protocol}`;
  }
  if (url.username || url.password) {
    return `upstream "${url.protocol}//${url.host}${url.pathname}" carries user:password; put the secret in \`credential\` ({env: NAME} or {file: PATH}) so it stays out of the profile and logs.`;
  }
  if (url.search || url.hash || upstream.includes('?') || upstream.includes('#')) {
    return `upstream "${url.origin}${url.pathname}" must not have a query or fragment; the router builds the query from the caller's allowlisted parameters and injects the credential as a header.`;
  }
  if (url.pathname === '/') {
    return `upstream "${upstream}" has no path; the part of the caller's URL after /v1 (e.g. /chat/completions) is appended to upstream, so include the version prefix: ${url.origin}/v1.`;
  }
  return undefined;
}
