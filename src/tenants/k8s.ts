import { stringify } from 'yaml';
import type { TenantSpec, TenantsConfig } from './config.js';

/**
 * `clawjail tenants k8s`: the same tenant, one pod each. Per tenant: a ConfigMap holding a
 * one-tenant tenants.yaml, a Secret with one key per credential source it names (values to be
 * filled in), a PersistentVolumeClaim for its state, a Deployment (one replica, Recreate: the
 * state volume is ReadWriteOnce) whose container runs `clawjail tenants serve` with the edge on
 * the pod's port, a Service, and a NetworkPolicy.
 *
 * Modes: `namespaces` (the container may create user namespaces: hostUsers false, unmasked
 * /proc, the runtime's seccomp and AppArmor profiles off because clawjail installs its own) or
 * `in-place` (a locked-down pod: RuntimeDefault seccomp, read-only root, no capabilities;
 * clawjail then applies landlock, seccomp and rlimits to the workload in the container itself).
 *
 * NetworkPolicy cannot name hosts: egress is limited to DNS and to the ports the tenant's
 * allowlist and routes use, on public addresses (private, link-local and metadata ranges are
 * excluded unless a rule names them as an IP/CIDR). The proxy inside the pod enforces the host names.
 */

export interface KubernetesOptions {
  mode?: 'namespaces' | 'in-place';
  image?: string;
  namespace?: string;
  /** Port of the edge inside the pod (and of the Service). */
  port?: number;
  storage?: string;
}

export const DEFAULT_IMAGE = 'ghcr.io/clawjail/clawjail:latest';
const EDGE_PORT = 8080;
/** The volume is mounted one level up: its root belongs to root (group fsGroup), and the orchestrator wants a state root of its own user, which it creates. */
const VOLUME_DIR = '/var/lib/clawjail';
const STATE_DIR = `${VOLUME_DIR}/tenants`;
const CONFIG_DIR = '/etc/clawjail';
const SECRET_DIR = '/run/secrets/clawjail';

/** Addresses that are not "the internet": never reachable from a tenant pod unless a rule names them. */
const PRIVATE_CIDRS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16', '127.0.0.0/8', '0.0.0.0/8'];

/** Memory per tenant: measured in this repository (docs in deploy/kubernetes/README.md). */
export function tenantResources(spec: TenantSpec): { requests: Record<string, string>; limits: Record<string, string> } {
  const openclaw = spec.command === undefined;
  return openclaw
    ? { requests: { cpu: '250m', memory: '1280Mi' }, limits: { memory: '1536Mi' } }
    : { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '256Mi' } };
}

/**
 * The credential sources of a tenant, mapped into the pod: an env source stays an env variable
 * (filled from the Secret key of the same name), a file source becomes a file from the Secret.
 */
function credentialMapping(spec: TenantSpec) {
  const env: string[] = [];
  const files: string[] = [];
  const remap = new Map<string, { env: string } | { file: string }>();
  const sources = [...spec.routes.map((r) => r.credential), spec.gateway?.token, spec.edge?.token].filter((c): c is { env: string } | { file: string } => !!c);
  for (const c of sources) {
    if ('env' in c) {
      if (!env.includes(c.env)) env.push(c.env);
      continue;
    }
    const key = c.file.split('/').pop()!.replace(/[^A-Za-z0-9._-]/g, '_') || 'key';
    let unique = key;
    for (let n = 2; files.includes(unique) || env.includes(unique); n++) unique = `${key}-${n}`;
    if (!remap.has(JSON.stringify(c))) files.push(unique);
    remap.set(JSON.stringify(c), { file: `${SECRET_DIR}/${unique}` });
  }
  return { env, files, keys: [...env, ...files], remap: (c: { env: string } | { file: string }) => remap.get(JSON.stringify(c)) ?? c };
}

/** The tenants.yaml the pod's clawjail reads: this tenant only, with file sources moved to the Secret's mount. */
export function podTenantsConfig(config: TenantsConfig, spec: TenantSpec, options: KubernetesOptions = {}): Record<string, unknown> {
  const { remap } = credentialMapping(spec);
  const tenant: Record<string, unknown> = {
    ...spec,
    routes: spec.routes.map((r) => (r.credential ? { ...r, credential: remap(r.credential) } : r)),
    ...(spec.gateway ? { gateway: { ...spec.gateway, hostPort: 0, ...(spec.gateway.token ? { token: remap(spec.gateway.token) } : {}) } } : {}),
    ...(spec.edge ? { edge: { ...spec.edge, token: remap(spec.edge.token) } } : {}),
  };
  delete tenant.uid;
  return {
    ...(config.profile ? { profile: config.profile } : {}),
    ...(options.mode === 'in-place' ? { mode: 'in-place' } : {}),
    stateRoot: STATE_DIR,
    restart: config.restart,
    edge: { port: options.port ?? EDGE_PORT, host: '0.0.0.0' },
    tenants: [tenant],
  };
}

function egressRules(spec: TenantSpec): object[] {
  const dns = { to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] };
  const byName = new Set<number>();
  const byIp: { cidr: string; ports: number[] }[] = [];
  const isIp = (h: string) => /^[\d.]+(\/\d+)?$/.test(h) || h.includes(':');
  for (const rule of spec.allow) {
    if (isIp(rule.host)) byIp.push({ cidr: rule.host.includes('/') ? rule.host : rule.host.includes(':') ? `${rule.host}/128` : `${rule.host}/32`, ports: rule.ports });
    else rule.ports.forEach((p) => byName.add(p));
  }
  for (const route of spec.routes) {
    const u = new URL(route.upstream);
    const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    const host = u.hostname.replace(/^\[|\]$/g, '');
    if (isIp(host)) byIp.push({ cidr: host.includes(':') ? `${host}/128` : `${host}/32`, ports: [port] });
    else byName.add(port);
  }
  const rules: object[] = [dns];
  if (byName.size) {
    rules.push({
      to: [{ ipBlock: { cidr: '0.0.0.0/0', except: PRIVATE_CIDRS } }],
      ports: [...byName].sort((a, b) => a - b).map((port) => ({ protocol: 'TCP', port })),
    });
  }
  for (const r of byIp) rules.push({ to: [{ ipBlock: { cidr: r.cidr } }], ports: r.ports.map((port) => ({ protocol: 'TCP', port })) });
  return rules;
}

function securityFor(mode: 'namespaces' | 'in-place') {
  const common = { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001 };
  if (mode === 'in-place') {
    return { pod: { fsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } }, container: { ...common, capabilities: { drop: ['ALL'] } }, hostUsers: undefined };
  }
  return {
    // A user namespace for the pod makes an unmasked /proc safe to grant; clawjail then creates its own nested namespaces.
    hostUsers: false,
    pod: { fsGroup: 10001 },
    container: { ...common, capabilities: { drop: ['ALL'] }, procMount: 'Unmasked', seccompProfile: { type: 'Unconfined' }, appArmorProfile: { type: 'Unconfined' } },
  };
}

export function buildKubernetesManifests(config: TenantsConfig, options: KubernetesOptions = {}): object[] {
  const mode = options.mode ?? 'namespaces';
  const image = options.image ?? DEFAULT_IMAGE;
  const port = options.port ?? EDGE_PORT;
  const docs: object[] = [];
  for (const spec of config.tenants) {
    const name = `clawjail-${spec.name}`;
    const labels = { 'app.kubernetes.io/name': 'clawjail', 'app.kubernetes.io/instance': spec.name, 'clawjail.dev/tenant': spec.name };
    const meta = (n: string) => ({ name: n, ...(options.namespace ? { namespace: options.namespace } : {}), labels });
    const { keys } = credentialMapping(spec);
    const sec = securityFor(mode);
    docs.push({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: meta(name),
      data: { 'tenants.yaml': stringify(podTenantsConfig(config, spec, { ...options, mode })) },
    });
    docs.push({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { ...meta(name), annotations: { 'clawjail.dev/fill-in': `set ${keys.join(', ') || 'nothing'}: kubectl -n NS create secret generic ${name} --from-literal=KEY=VALUE... --dry-run=client -o yaml | kubectl apply -f -` } },
      type: 'Opaque',
      stringData: Object.fromEntries(keys.map((k) => [k, ''])),
    });
    docs.push({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: meta(`${name}-state`),
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: options.storage ?? '1Gi' } } },
    });
    const { env: envKeys, files: fileKeys } = credentialMapping(spec);
    docs.push({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta(name),
      spec: {
        replicas: 1,
        strategy: { type: 'Recreate' },
        selector: { matchLabels: { 'clawjail.dev/tenant': spec.name } },
        template: {
          metadata: { labels },
          spec: {
            ...(sec.hostUsers === false ? { hostUsers: false } : {}),
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            securityContext: sec.pod,
            terminationGracePeriodSeconds: 10,
            containers: [
              {
                name: 'clawjail',
                image,
                args: ['tenants', 'serve', '--config', `${CONFIG_DIR}/tenants.yaml`, '--socket', '/run/clawjail/tenants.sock'],
                env: [{ name: 'CLAWJAIL_RUNTIME_DIR', value: '/run/clawjail' }, ...envKeys.map((k) => ({ name: k, valueFrom: { secretKeyRef: { name, key: k } } }))],
                ports: [{ name: 'edge', containerPort: port, protocol: 'TCP' }],
                readinessProbe: { tcpSocket: { port: 'edge' }, periodSeconds: 5 },
                resources: tenantResources(spec),
                securityContext: sec.container,
                volumeMounts: [
                  { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
                  { name: 'state', mountPath: VOLUME_DIR },
                  { name: 'run', mountPath: '/run/clawjail' },
                  { name: 'tmp', mountPath: '/tmp' },
                  ...(fileKeys.length ? [{ name: 'secrets', mountPath: SECRET_DIR, readOnly: true }] : []),
                ],
              },
            ],
            volumes: [
              { name: 'config', configMap: { name } },
              { name: 'state', persistentVolumeClaim: { claimName: `${name}-state` } },
              { name: 'run', emptyDir: { medium: 'Memory' } },
              { name: 'tmp', emptyDir: {} },
              ...(fileKeys.length ? [{ name: 'secrets', secret: { secretName: name, items: fileKeys.map((k) => ({ key: k, path: k })) } }] : []),
            ],
          },
        },
      },
    });
    docs.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(name),
      spec: { selector: { 'clawjail.dev/tenant': spec.name }, ports: [{ name: 'edge', port, targetPort: 'edge', protocol: 'TCP' }] },
    });
    docs.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta(name),
      spec: {
        podSelector: { matchLabels: { 'clawjail.dev/tenant': spec.name } },
        policyTypes: ['Ingress', 'Egress'],
        // Clients reach the edge port only; the edge checks the tenant's token.
        ingress: [{ ports: [{ protocol: 'TCP', port }] }],
        egress: egressRules(spec),
      },
    });
  }
  return docs;
}

export function renderManifests(docs: object[]): string {
  return docs.map((d) => stringify(d, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
}
