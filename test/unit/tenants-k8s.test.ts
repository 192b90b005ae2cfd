import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ConfigMap, PersistentVolumeClaim, Secret, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { loadTenantsConfig, parseTenantsConfig } from '../../src/tenants/config.js';
import { buildKubernetesManifests, renderManifests } from '../../src/tenants/k8s.js';
import { ROOT } from '../helpers/cli.js';

const DIR = join(ROOT, 'deploy', 'kubernetes');
const config = loadTenantsConfig(join(DIR, 'tenants.example.yaml'));
const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  ConfigMap: ConfigMap as never,
  Secret: Secret as never,
  PersistentVolumeClaim: PersistentVolumeClaim as never,
  Deployment: Deployment as never,
  Service: Service as never,
  NetworkPolicy: NetworkPolicy as never,
};
type Doc = { kind: string; metadata: { name: string; labels: Record<string, string> }; [k: string]: any };
const of = (docs: Doc[], kind: string, tenant: string) => docs.find((d) => d.kind === kind && d.metadata.labels['clawjail.dev/tenant'] === tenant)!;

describe.each(['namespaces', 'in-place'] as const)('clawjail tenants k8s --mode %s', (mode) => {
  const docs = buildKubernetesManifests(config, { mode }) as Doc[];

  it('every object is valid against the Kubernetes schema (kubernetes-models)', () => {
    expect(docs.map((d) => d.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'NetworkPolicy', 'PersistentVolumeClaim', 'Secret', 'Service'].flatMap((k) => [k, k]).sort());
    for (const d of docs) expect(() => new MODELS[d.kind]!(d as never).validate(), `${d.kind} ${d.metadata.name}`).not.toThrow();
  });

  it('the validator does reject a broken object (so the check above can fail)', () => {
    const d = structuredClone(of(docs, 'Deployment', 'acme'));
    d.spec.template.spec.containers[0].ports[0].containerPort = 'edge';
    expect(() => new Deployment(d as never).validate()).toThrow(/containerPort must be integer/);
  });

  it('one pod per tenant runs clawjail as its entrypoint with the tenant\'s own config, which round-trips', () => {
    for (const t of config.tenants) {
      const dep = of(docs, 'Deployment', t.name);
      expect(dep.spec.replicas).toBe(1);
      expect(dep.spec.strategy.type).toBe('Recreate');
      const c = dep.spec.template.spec.containers[0];
      expect(c.args).toEqual(['tenants', 'serve', '--config', '/etc/clawjail/tenants.yaml', '--socket', '/run/clawjail/tenants.sock']);
      const podConfig = parseTenantsConfig(parse(of(docs, 'ConfigMap', t.name).data['tenants.yaml']));
      expect(podConfig.tenants.map((x) => x.name)).toEqual([t.name]);
      expect(podConfig.mode).toBe(mode === 'in-place' ? 'in-place' : undefined);
      expect(podConfig.edge).toEqual({ port: 8080, host: '0.0.0.0' });
      expect(dep.spec.template.spec.automountServiceAccountToken).toBe(false);
      expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
    }
  });

  it(mode === 'in-place' ? 'in-place: RuntimeDefault seccomp, no host-user change, /proc masked' : 'namespaces: a user-namespaced pod with an unmasked /proc and clawjail\'s own seccomp', () => {
    const spec = of(docs, 'Deployment', 'acme').spec.template.spec;
    if (mode === 'in-place') {
      expect(spec.hostUsers).toBeUndefined();
      expect(spec.securityContext.seccompProfile).toEqual({ type: 'RuntimeDefault' });
      expect(spec.containers[0].securityContext.procMount).toBeUndefined();
    } else {
      expect(spec.hostUsers).toBe(false);
      expect(spec.containers[0].securityContext).toMatchObject({ procMount: 'Unmasked', seccompProfile: { type: 'Unconfined' } });
    }
  });

  it('each tenant\'s Secret holds only its own credential keys; env keys reach only its container', () => {
    expect(Object.keys(of(docs, 'Secret', 'acme').stringData).sort()).toEqual(['ACME_EDGE_TOKEN', 'ACME_OPENAI_KEY']);
    expect(Object.keys(of(docs, 'Secret', 'globex').stringData).sort()).toEqual(['GLOBEX_EDGE_TOKEN', 'globex-anthropic']);
    for (const t of ['acme', 'globex']) {
      const c = of(docs, 'Deployment', t).spec.template.spec.containers[0];
      for (const e of c.env.filter((x: any) => x.valueFrom)) expect(e.valueFrom.secretKeyRef.name).toBe(`clawjail-${t}`);
    }
    // A file source is mounted from the Secret and the pod's config points at it.
    const globex = parseTenantsConfig(parse(of(docs, 'ConfigMap', 'globex').data['tenants.yaml']));
    expect(globex.tenants[0]!.routes[0]!.credential).toEqual({ file: '/run/secrets/clawjail/globex-anthropic' });
  });

  it('NetworkPolicy: egress only to DNS and the upstream ports, private ranges excluded unless named; ingress only on the edge port', () => {
    const acme = of(docs, 'NetworkPolicy', 'acme').spec;
    expect(acme.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(acme.ingress).toEqual([{ ports: [{ protocol: 'TCP', port: 8080 }] }]);
    expect(acme.egress).toHaveLength(2);
    expect(acme.egress[1]).toEqual({ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: expect.arrayContaining(['10.0.0.0/8', '169.254.0.0/16', '192.168.0.0/16']) } }], ports: [{ protocol: 'TCP', port: 443 }] });
    const globex = of(docs, 'NetworkPolicy', 'globex').spec;
    expect(globex.egress).toContainEqual({ to: [{ ipBlock: { cidr: '10.20.0.15/32' } }], ports: [{ protocol: 'TCP', port: 8080 }] });
  });

  it('the committed example manifests are what the generator writes', () => {
    const dir = join(DIR, mode === 'in-place' ? 'example-in-place' : 'example');
    for (const t of config.tenants) {
      const committed = readFileSync(join(dir, `${t.name}.yaml`), 'utf8');
      expect(committed).toBe(renderManifests(docs.filter((d) => d.metadata.labels['clawjail.dev/tenant'] === t.name)));
      expect(parseAllDocuments(committed).every((d) => d.errors.length === 0)).toBe(true);
    }
  });
});
