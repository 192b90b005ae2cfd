import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpUpstream, viaProxy, type Upstream } from '../helpers/egress-harness.js';

/*
 * In the sandbox, init creates the listening socket inside the network namespace and hands the
 * fd to the supervisor, which serves it with `listen({ fd })`. Here a parent process creates the
 * listening socket and a separate Node process inherits it as fd 3, as the supervisor will.
 * The child runs the proxy compiled from src/ (only the egress module and what it imports).
 */

const repo = join(import.meta.dirname, '..', '..');
let out: string;
let web: Upstream;

const childScript = `
import pino from 'pino';
import { createAuditSink } from './log.js';
import { NetworkSchema } from './profile/network.js';
import { createEgressProxy } from './services/egress/proxy.js';
const audit = createAuditSink({ log: pino({ level: 'silent' }), listener: (e) => process.stdout.write(JSON.stringify(e) + '\\n') });
const proxy = createEgressProxy({ sandbox: 'fd', policy: NetworkSchema.parse(JSON.parse(process.env.POLICY)), audit });
await proxy.listen({ fd: 3 });
process.stdout.write('ready\\n');
process.on('SIGTERM', () => proxy.close().then(() => process.exit(0)));
`;

beforeAll(async () => {
  // Under node_modules so that the compiled files resolve zod, yaml and pino.
  await mkdir(join(repo, 'node_modules', '.cache'), { recursive: true });
  out = await mkdtemp(join(repo, 'node_modules', '.cache', 'clawjail-egress-fd-'));
  await execa(join(repo, 'node_modules', '.bin', 'tsc'), [
    '--ignoreConfig', join(repo, 'src/services/egress/proxy.ts'), '--outDir', out, '--rootDir', join(repo, 'src'),
    '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', '--types', 'node', '--strict',
  ], { cwd: repo });
  // Node stops looking for a package scope at node_modules: declare ESM here.
  await writeFile(join(out, 'package.json'), '{"type":"module"}\n');
  await writeFile(join(out, 'child.mjs'), childScript);
  web = await startHttpUpstream();
}, 60_000);

afterAll(async () => {
  await web?.close();
  if (out) await rm(out, { recursive: true, force: true });
});

describe('listen({ fd })', () => {
  it('serves a listening socket inherited as fd 3', async () => {
    const listener = net.createServer();
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    const { port } = listener.address() as net.AddressInfo;
    const fd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
    expect(fd).toBeGreaterThan(2);
    const child: ResultPromise = execa(process.execPath, [join(out, 'child.mjs')], {
      cwd: out,
      env: { POLICY: JSON.stringify({ allow: [{ host: '127.0.0.1', ports: [web.port] }] }) },
      stdio: ['ignore', 'pipe', 'inherit', fd],
      reject: false,
    });
    // The child holds its own copy now; the parent's must go so that only the child accepts.
    await new Promise<void>((r) => listener.close(() => r()));
    let output = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (c: Buffer) => {
        output += c.toString();
        if (output.includes('ready\n')) resolve();
      });
      child.catch(reject);
      setTimeout(() => reject(new Error(`child not ready: ${output}`)), 10_000);
    });
    try {
      const ok = await viaProxy(port, `http://127.0.0.1:${web.port}/via-fd`);
      expect(ok.status).toBe(200);
      expect(web.seen.map((s) => s.url)).toEqual(['/via-fd']);
      const refused = await viaProxy(port, 'http://example.test/');
      expect({ status: refused.status, reason: refused.headers['x-clawjail-reason'] }).toEqual({ status: 403, reason: 'not-allowlisted' });
      // Audit lines come over a pipe that may lag behind the HTTP answers.
      const decisions = () =>
        output
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as { kind: string; sandbox: string; decision?: string })
          .filter((e) => e.kind === 'egress.decision');
      for (let i = 0; i < 200 && decisions().length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect(decisions().map((e) => [e.sandbox, e.decision])).toEqual([
        ['fd', 'allow'],
        ['fd', 'deny'],
      ]);
    } finally {
      child.kill('SIGTERM');
      await child;
    }
  });
});
