import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { ClawjailError } from '../errors.js';
import { AllowRuleSchema } from '../profile/network.js';
import { CredentialSchema, InferenceRouteSchema } from '../profile/inference.js';
import { DEFAULT_RESTART } from './backoff.js';

/**
 * tenants.yaml: one entry per tenant. Everything a tenant owns is named here (uid, state dir,
 * allowlist, routes and the sources of their keys, gateway port, edge token); the orchestrator
 * refuses a set of tenants that would share any of them.
 */

const TENANT_NAME = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;

export const TenantNameSchema = z
  .string()
  .regex(TENANT_NAME, 'a tenant name is 1-40 lower-case letters, digits and "-", starting and ending with a letter or digit (it becomes a sandbox name, a Kubernetes object name and a host name label)')
  .describe('Tenant name: sandbox name, state directory name, edge host label, Kubernetes object name.');

export const GatewaySchema = z
  .object({
    port: z.number().int().min(1).max(65535).default(18789).describe('Port the gateway listens on inside the sandbox (127.0.0.1).'),
    hostPort: z.number().int().min(0).max(65535).default(0).describe('Host loopback port it is published on (0: a free one, reported by `tenants ls`).'),
    socket: z
      .string()
      .refine((p) => p.startsWith('/'), 'an absolute path such as /run/clawjail/gateways/acme.sock')
      .optional()
      .describe('Also serve the gateway on this host unix socket (mode 0600, the orchestrator\'s user), for a front proxy on the same host.'),
    health: z
      .string()
      .regex(/^\/[\x21-\x7e]*$/, 'an absolute request path such as /readyz')
      .optional()
      .describe('HTTP path answering 200 when the gateway is ready (OpenClaw: /readyz). Without it, a tenant is ready once its sandbox started.'),
    healthIntervalMs: z.number().int().min(50).max(3_600_000).default(10_000).describe('How often a ready gateway\'s health path is asked; three failures in a row make the tenant unready until it answers 200 again.'),
    token: CredentialSchema.optional().describe('Where the gateway\'s bearer token is read on the host; the edge adds it to requests it forwards. Never needed by clients.'),
  })
  .strict()
  .describe('The tenant\'s gateway: the one port of its sandbox reachable from the host.');

export const TenantSchema = z
  .object({
    name: TenantNameSchema,
    command: z.array(z.string().min(1)).min(1).optional().describe('Command run in the sandbox. Omit for an OpenClaw gateway (`openclaw gateway run`).'),
    uid: z.number().int().optional().describe('Host uid (root orchestrators): must be inside `uids`, unique. Default: the lowest free uid of the range.'),
    allow: z.array(AllowRuleSchema).default([]).describe('The tenant\'s egress allowlist (network.allow of its profile).'),
    routes: z.array(InferenceRouteSchema).default([]).describe('The tenant\'s inference routes. Their credentials are read for this tenant\'s router only.'),
    gateway: GatewaySchema.optional(),
    edge: z
      .object({
        host: z.string().regex(/^[a-z0-9.-]+$/, 'a host name in lower case').optional().describe('Host header routed to this tenant (default: NAME.<anything>).'),
        token: CredentialSchema.describe('Where the token clients must present to the edge (Authorization: Bearer) is read.'),
      })
      .strict()
      .optional()
      .describe('How clients reach this tenant through the edge.'),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}).describe('Variables set inside the sandbox.'),
    profile: z.record(z.string(), z.unknown()).optional().describe('Raw profile fragment layered over the shared profile for this tenant only.'),
  })
  .strict();

export const RestartSchema = z
  .object({
    initialMs: z.number().int().min(0).default(DEFAULT_RESTART.initialMs),
    maxMs: z.number().int().min(0).default(DEFAULT_RESTART.maxMs),
    factor: z.number().min(1).max(10).default(DEFAULT_RESTART.factor),
    resetAfterMs: z.number().int().min(0).default(DEFAULT_RESTART.resetAfterMs),
    maxAttempts: z.number().int().min(0).default(DEFAULT_RESTART.maxAttempts),
  })
  .strict()
  .describe('Restart with exponential backoff when a tenant\'s sandbox exits on its own.');

export const TenantsConfigSchema = z
  .object({
    profile: z.string().optional().describe('Profile every tenant starts from (built-in name or file). Default: openclaw for OpenClaw tenants, default otherwise.'),
    stateRoot: z.string().refine((p) => p.startsWith('/'), 'an absolute path').optional().describe('Where tenants\' state directories are created (STATEROOT/NAME, mounted at /sandbox).'),
    uids: z
      .object({
        first: z.number().int().min(1000).describe('First host uid of the range.'),
        count: z.number().int().min(1).max(1_000_000).describe('How many uids.'),
      })
      .strict()
      .refine((r) => !(r.first <= 65534 && r.first + r.count - 1 >= 65534), 'the range must not contain 65534 (nobody)')
      .default({ first: 70000, count: 10000 })
      .describe('Host uids tenants run as when the orchestrator runs as root.'),
    mode: z
      .enum(['namespaces', 'in-place'])
      .optional()
      .describe('How sandboxes are built: namespaces (default), or in-place where the host (a Kubernetes pod) forbids user namespaces; passed to launch() as its mode.'),
    restart: RestartSchema.prefault({}),
    edge: z
      .object({
        port: z.number().int().min(0).max(65535).describe('The one host port clients connect to (0: a free one).'),
        host: z.string().default('127.0.0.1').describe('Address it listens on.'),
      })
      .strict()
      .optional()
      .describe('Optional front door routing Host / path to tenants.'),
    tenants: z.array(TenantSchema).default([]),
  })
  .strict();

export type TenantSpec = z.infer<typeof TenantSchema>;
export type TenantSpecInput = z.input<typeof TenantSchema>;
export type TenantsConfig = z.infer<typeof TenantsConfigSchema>;
export type TenantsConfigInput = z.input<typeof TenantsConfigSchema>;

function issues(error: z.ZodError, where: string): ClawjailError {
  const lines = error.issues.map((i) => `  ${i.path.length ? i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(top level)'}: ${i.message}`);
  return new ClawjailError('ERR_CLAWJAIL_TENANT_CONFIG', `invalid ${where}:\n${lines.join('\n')}`, {
    hint: 'fix the fields named above; see deploy/README or `clawjail tenants --help` for the format',
  });
}

export function parseTenantSpec(raw: unknown): TenantSpec {
  const r = TenantSchema.safeParse(raw);
  if (!r.success) throw issues(r.error, 'tenant');
  return r.data;
}

/** Validates a whole config: each tenant, then what tenants must not share. */
export function parseTenantsConfig(raw: unknown, where = 'tenants config'): TenantsConfig {
  const r = TenantsConfigSchema.safeParse(raw ?? {});
  if (!r.success) throw issues(r.error, where);
  checkTenantSet(r.data.tenants);
  return r.data;
}

export function loadTenantsConfig(path: string): TenantsConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ClawjailError('ERR_CLAWJAIL_TENANT_CONFIG', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: 'give the path of a tenants.yaml', path, cause: e });
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    const first = doc.errors[0]!;
    const at = first.linePos?.[0] ? `line ${first.linePos[0].line}, column ${first.linePos[0].col}` : 'unknown position';
    throw new ClawjailError('ERR_CLAWJAIL_TENANT_CONFIG', `${path} is not valid YAML (${at}): ${first.message.split('\n')[0]}`, { hint: 'fix the syntax at the position named', path });
  }
  return parseTenantsConfig(doc.toJS(), path);
}

/** A credential source, as a comparable string. */
const sourceOf = (c: { env: string } | { file: string }): string => ('env' in c ? `env ${c.env}` : `file ${c.file}`);

/** What each tenant owns alone; the first clash found is an error naming both tenants. */
export function tenantClaims(t: TenantSpec): { what: string; key: string }[] {
  const claims = [{ what: 'name', key: t.name }];
  if (t.uid !== undefined) claims.push({ what: 'uid', key: String(t.uid) });
  if (t.gateway && t.gateway.hostPort !== 0) claims.push({ what: 'gateway host port', key: String(t.gateway.hostPort) });
  if (t.gateway?.socket) claims.push({ what: 'gateway socket', key: t.gateway.socket });
  for (const r of t.routes) if (r.credential) claims.push({ what: 'credential source', key: sourceOf(r.credential) });
  if (t.gateway?.token) claims.push({ what: 'credential source', key: sourceOf(t.gateway.token) });
  if (t.edge) {
    claims.push({ what: 'credential source', key: sourceOf(t.edge.token) });
    if (t.edge.host) claims.push({ what: 'edge host', key: t.edge.host });
  }
  return claims;
}

export function checkTenantSet(tenants: readonly TenantSpec[]): void {
  const owners = new Map<string, string>();
  for (const t of tenants) {
    const own = new Set<string>();
    for (const c of tenantClaims(t)) {
      const k = `${c.what}\0${c.key}`;
      const owner = owners.get(k);
      if (owner !== undefined && !own.has(k)) {
        throw new ClawjailError(
          'ERR_CLAWJAIL_TENANT_CONFIG',
          c.what === 'name' ? `tenant name ${t.name} is used twice` : `tenants ${owner} and ${t.name} share the ${c.what} ${c.key}`,
          { hint: c.what === 'credential source' ? 'give each tenant its own key (its own environment variable or file): a key is never shared between tenants' : `give each tenant its own ${c.what}` },
        );
      }
      owners.set(k, t.name);
      own.add(k);
    }
  }
}
