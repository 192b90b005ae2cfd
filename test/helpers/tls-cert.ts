import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

export interface TestCert {
  cert: string;
  key: string;
}

/**
 * A throwaway self-signed certificate from the `openssl` CLI (Debian: `apt-get install openssl`),
 * valid one day for the given DNS names and IPs. Tests pass `cert` as the client's `ca`.
 */
export async function makeTestCert(names: string[], ips: string[] = []): Promise<TestCert> {
  const dir = await mkdtemp(join(tmpdir(), 'clawjail-cert-'));
  try {
    const san = [...names.map((n) => `DNS:${n}`), ...ips.map((i) => `IP:${i}`)].join(',');
    await execa('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1',
      '-subj', `/CN=${names[0] ?? ips[0] ?? 'clawjail-test'}`, '-addext', `subjectAltName=${san}`,
    ]);
    return { cert: await readFile(join(dir, 'cert.pem'), 'utf8'), key: await readFile(join(dir, 'key.pem'), 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
