import { z } from 'zod';
import { ClawjailError } from '../errors.js';
import { TLS_PORTS } from '../policy/addresses.js';
import { parseHostPattern } from '../policy/host.js';

/*
 * Egress policy. The sandbox has no route out; the allowlist proxy inside it is the only way out.
 *
 * CONNECT rule or plain-HTTP rule: a rule WITHOUT `methods`/`paths` matches both CONNECT tunnels
 * (HTTPS, or any TCP protocol) and plain-HTTP requests the proxy forwards (`GET http://host/…`)
 * to its host and ports. A rule WITH `methods` or `paths` is a plain-HTTP rule: it matches only
 * forwarded `http://` requests, whose method and path the proxy can see, and never a CONNECT
 * tunnel, whose content is TLS the proxy does not decrypt. Such a rule may therefore not list a
 * TLS port (443, 8443, 465, 993, … — see TLS_PORTS), including the default [443].
 */

const HostSchema = z
  .string()
  .superRefine((value, ctx) => {
    const parsed = parseHostPattern(value);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.message });
  })
  .describe(
    'Destination: an exact name (api.github.com); "*.suffix" for any name under suffix, not suffix itself (*.github.com); or an IP / CIDR (127.0.0.1, 10.0.0.0/8, fd00::/8), matched against the address the proxy connects to. Only an IP/CIDR rule lets traffic reach loopback, private, link-local, CGNAT or cloud-metadata addresses, also when an allowed name resolves to one.',
  );

const PortSchema = z.number().int().min(1).max(65535).describe('TCP port, 1-65535.');

const MethodSchema = z
  .string()
  .regex(/^[A-Z][A-Z-]*$/, 'HTTP methods are upper-case tokens such as GET, HEAD, POST')
  .refine((m) => m !== 'CONNECT', 'CONNECT is how clients open tunnels; a rule without methods/paths already allows tunnels to its host and ports')
  .describe('An HTTP method, upper case (GET, POST, …).');

const PathSchema = z
  .string()
  .refine((p) => p.startsWith('/'), 'paths start with "/"')
  .refine((p) => !p.includes('*') || p.indexOf('*') === p.length - 1, '"*" is only allowed at the end of a path, as a prefix match (/v1/*)')
  .refine((p) => !p.includes('?') && !p.includes('#'), 'paths are matched without the query string; leave out "?…"')
  .describe('A URL path: exact ("/v1/models"), or a prefix ending in "*" ("/v1/*"). Matched against the normalized path ("." and ".." resolved), without the query string.');

export const AllowRuleSchema = z
  .object({
    host: HostSchema,
    ports: z.array(PortSchema).min(1).default([443]).describe('Ports this rule allows. Default [443].'),
    methods: z
      .array(MethodSchema)
      .min(1)
      .optional()
      .describe('Plain HTTP only: allowed methods. Makes this a plain-HTTP rule that never matches a CONNECT tunnel.'),
    paths: z
      .array(PathSchema)
      .min(1)
      .optional()
      .describe('Plain HTTP only: allowed paths. Makes this a plain-HTTP rule that never matches a CONNECT tunnel.'),
    allowMissingSni: z
      .boolean()
      .default(false)
      .describe(
        'Let a CONNECT tunnel to this host through when its TLS ClientHello carries no server name (or, on a TLS port, when the client does not speak TLS). An SNI that is present must still equal the host.',
      ),
  })
  .strict()
  .superRefine((rule, ctx) => {
    if (!rule.methods && !rule.paths) return;
    const tls = rule.ports.filter((p) => TLS_PORTS.has(p));
    if (tls.length === 0) return;
    const field = rule.methods ? 'methods' : 'paths';
    ctx.addIssue({
      code: 'custom',
      path: ['ports'],
      message:
        `${field} can only be enforced on plain-HTTP requests (http://…) that the proxy forwards itself, but this rule's ports include ${tls.join(', ')}, which carry TLS. ` +
        'TLS travels through a CONNECT tunnel that clawjail does not decrypt (no TLS interception), so no method or path is ever visible there. ' +
        `Either list the plain-HTTP port(s), e.g. ports: [80]${rule.ports.length === 1 && rule.ports[0] === 443 ? ' (ports defaults to [443] when omitted)' : ''}, or drop ${field} to allow the whole host over HTTPS.`,
    });
  })
  .describe('A destination the workload may reach through the proxy.');

export const DenyRuleSchema = z
  .object({
    host: HostSchema,
    ports: z.array(PortSchema).min(1).optional().describe('Ports this rule denies. Omitted: every port.'),
  })
  .strict()
  .describe('A destination refused even when an allow rule or an approval would let it through.');

export const ApprovalsSchema = z
  .object({
    enabled: z
      .boolean()
      .default(false)
      .describe('Hold requests to destinations no rule allows until an operator approves them (`clawjail approve ID [--always]`) or the timeout denies them. Off: they are refused at once, so scripts never hang.'),
    timeoutMs: z
      .number()
      .int()
      .min(100)
      .max(3_600_000)
      .default(30_000)
      .describe('How long a held request waits for an answer before it is denied (reason approval-timeout).'),
  })
  .strict()
  .describe('Interactive approval of unknown destinations.');

export const ProxyLimitsSchema = z
  .object({
    maxConnections: z
      .number()
      .int()
      .min(1)
      .max(65_536)
      .default(256)
      .describe(
        'Connections the sandbox may hold open through the egress proxy at once (requests being sent, held for approval or forwarded, and open tunnels). One more is answered 503 with X-Clawjail-Reason: too-many-connections and closed; the audit log gets one egress.limit event when the cap is reached and one when there is room again.',
      ),
    headersTimeoutMs: z
      .number()
      .int()
      .min(50)
      .max(600_000)
      .default(10_000)
      .describe(
        'A client must send its complete request line and headers within this many milliseconds of connecting (and of the previous response, on a kept-alive connection), or it gets 408 with X-Clawjail-Reason: header-timeout and is closed. This is what stops a slowloris client.',
      ),
    idleTimeoutMs: z
      .number()
      .int()
      .min(50)
      .max(86_400_000)
      .default(600_000)
      .describe('A client connection, tunnel or forwarded request with no traffic either way for this many milliseconds is closed. Time spent waiting for an approval does not count.'),
  })
  .strict()
  .describe('Limits the egress proxy enforces on the sandbox\'s connections, so that a workload cannot hold the proxy\'s (and the supervisor\'s) sockets.');

export const NetworkSchema = z
  .object({
    mode: z
      .enum(['proxy', 'none'])
      .default('proxy')
      .describe('proxy: the only way out is the allowlist proxy inside the sandbox; none: no egress at all (the proxy is not started).'),
    allow: z.array(AllowRuleSchema).default([]).describe('Allowed destinations. Nothing is reachable unless listed here or approved.'),
    deny: z.array(DenyRuleSchema).default([]).describe('Refused destinations. A deny rule wins over every allow rule and approval.'),
    approvals: ApprovalsSchema.prefault({}).describe('Interactive approval of unknown destinations (off by default).'),
    limits: ProxyLimitsSchema.prefault({}).describe('Connection cap and timeouts of the egress proxy.'),
    auditLog: z.string().min(1).optional().describe('Also write every egress decision to this file as JSON lines (appended, mode 0600).'),
  })
  .strict()
  .describe('Egress policy.');

export type NetworkConfig = z.infer<typeof NetworkSchema>;
export type NetworkConfigInput = z.input<typeof NetworkSchema>;
export type AllowRule = z.infer<typeof AllowRuleSchema>;
export type DenyRule = z.infer<typeof DenyRuleSchema>;

/**
 * `--allow-host HOST[:PORT]` as an allow rule: `example.com`, `example.com:8443`,
 * `*.example.com`, `10.0.0.5:5432`, `[::1]:8080`, `fd00::/8`. Without a port, 443.
 */
export function parseAllowHostFlag(value: string): AllowRule {
  let host = value;
  let port: string | undefined;
  const bracket = /^\[([^\]]+)\](?::([0-9]+))?$/.exec(value);
  if (bracket) {
    host = bracket[1] as string;
    port = bracket[2];
  } else if ((value.match(/:/g) ?? []).length === 1) {
    const at = value.lastIndexOf(':');
    host = value.slice(0, at);
    port = value.slice(at + 1);
  }
  if (port !== undefined && !/^[0-9]{1,5}$/.test(port)) {
    throw new ClawjailError('ERR_CLAWJAIL_USAGE', `--allow-host ${value}: ${JSON.stringify(port)} is not a port number`, {
      hint: 'write HOST or HOST:PORT, e.g. --allow-host api.github.com or --allow-host [::1]:8080',
    });
  }
  const parsed = AllowRuleSchema.safeParse(port === undefined ? { host } : { host, ports: [Number(port)] });
  if (!parsed.success) {
    const message = parsed.error.issues.map((i) => i.message).join('; ');
    throw new ClawjailError('ERR_CLAWJAIL_USAGE', `--allow-host ${value}: ${message}`, {
      hint: 'write HOST or HOST:PORT, e.g. --allow-host api.github.com or --allow-host "*.githubusercontent.com:443"',
    });
  }
  return parsed.data;
}
