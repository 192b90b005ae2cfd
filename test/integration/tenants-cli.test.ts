import { execa } from 'execa';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { clawjail, IS_ROOT, packageRootFor, ROOT, UNPRIV, USERS } from '../helpers/cli.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function workdir(user: 'root' | 'unprivileged'): string {
  const d = mkdtempSync(join(tmpdir(), 'cj-tcli-'));
  chmodSync(d, 0o755);
  if (user === 'unprivileged' && IS_ROOT) chownSync(d, UNPRIV.uid, UNPRIV.gid);
  dirs.push(d);
  return d;
}

const noStack = (text: string) => expect(text).not.toMatch(/^\s+at /m);

describe('clawjail tenants: bad input is a clear error, never a stack trace', () => {
  it('malformed tenants.yaml names the line and column', async () => {
    const d = workdir('root');
    writeFileSync(join(d, 't.yaml'), 'tenants:\n  - name: a\n    command: [sh, -c\n');
    const r = await clawjail(['tenants', 'serve', '--config', join(d, 't.yaml')]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/t\.yaml is not valid YAML \(line \d+, column \d+\)/);
    noStack(r.stderr);
  });

  it('duplicate tenant names and a shared key are refused before anything starts', async () => {
    const d = workdir('root');
    writeFileSync(join(d, 'dup.yaml'), 'tenants:\n  - { name: a, command: [sh] }\n  - { name: a, command: [sh] }\n');
    const r = await clawjail(['tenants', 'serve', '--config', join(d, 'dup.yaml')]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain('tenant name a is used twice');
    noStack(r.stderr);
    writeFileSync(join(d, 'uid.yaml'), 'uids: { first: 70000, count: 10 }\ntenants:\n  - { name: a, uid: 70001, command: [sh] }\n  - { name: b, uid: 70001, command: [sh] }\n');
    const u = await clawjail(['tenants', 'k8s', '--config', join(d, 'uid.yaml')]);
    expect(u.exitCode).toBe(125);
    expect(u.stderr).toContain('tenants a and b share the uid 70001');
  });

  it('an unknown option or subcommand names itself', async () => {
    const a = await clawjail(['tenants', 'ls', '--bogus']);
    expect(a.exitCode).toBe(125);
    expect(a.stderr).toContain("Unknown option '--bogus'");
    const b = await clawjail(['tenants', 'frobnicate']);
    expect(b.exitCode).toBe(125);
    expect(b.stderr).toContain("unknown tenants subcommand 'frobnicate'");
    const c = await clawjail(['tenants', 'rm', '--json', 'x']);
    expect(c.stderr).toContain('tenants rm: --json does not apply here');
  });

  it('add: a missing spec file, no command, a bad --gateway are named before anything is sent', async () => {
    const d = workdir('root');
    const a = await clawjail(['tenants', 'add', 'x', '--spec', join(d, 'missing.yaml')]);
    expect(a.exitCode).toBe(125);
    expect(a.stderr).toContain(`cannot read the tenant spec ${join(d, 'missing.yaml')}: ENOENT`);
    const b = await clawjail(['tenants', 'add', 'x']);
    expect(b.stderr).toContain('tenants add x: give the command after --, or a --spec file with one');
    const c = await clawjail(['tenants', 'add', 'x', '--gateway', '80:99999', '--', 'true']);
    expect(c.stderr).toContain('--gateway 80:99999: expected PORT or PORT:HOSTPORT');
    writeFileSync(join(d, 'list.yaml'), '- a\n- b\n');
    const e = await clawjail(['tenants', 'add', 'x', '--spec', join(d, 'list.yaml')]);
    expect(e.stderr).toContain('must hold one tenant entry (a mapping)');
    for (const r of [a, b, c, e]) noStack(r.stderr);
  });

  it('ls without a running orchestrator says how to start one', async () => {
    const d = workdir('root');
    const r = await clawjail(['tenants', 'ls', '--socket', join(d, 'none.sock')]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain(`no tenants orchestrator is listening on ${join(d, 'none.sock')} (ENOENT)`);
    expect(r.stderr).toContain('clawjail tenants serve --config tenants.yaml');
  });
});

describe('the pod\'s tenants.yaml from `tenants k8s`', () => {
  it('runs under `tenants serve` as a non-root user: the tenant is ready and the edge answers with its token only', async () => {
    const user = USERS.includes('unprivileged') ? 'unprivileged' : 'root';
    const d = workdir(user);
    const run = join(d, 'run');
    mkdirSync(run, { mode: 0o700 });
    if (user === 'unprivileged' && IS_ROOT) chownSync(run, UNPRIV.uid, UNPRIV.gid);
    const out = join(d, 'k8s');
    const gen = await clawjail(['tenants', 'k8s', '--config', join(ROOT, 'deploy/kubernetes/tenants.example.yaml'), '--out', out]);
    expect(gen.exitCode).toBe(0);
    const { parseAllDocuments, parse: parseYaml, stringify } = await import('yaml');
    const configMap = parseAllDocuments(readFileSync(join(out, 'acme.yaml'), 'utf8')).map((x) => x.toJS()).find((x) => x.kind === 'ConfigMap');
    const podConfig = parseYaml(configMap.data['tenants.yaml']);
    // The pod's paths and port, moved to this machine: state in a temp dir, the edge on a free port.
    podConfig.stateRoot = join(d, 'state');
    podConfig.edge = { port: 0, host: '127.0.0.1' };
    const cfg = join(d, 'pod-tenants.yaml');
    writeFileSync(cfg, stringify(podConfig));
    chmodSync(cfg, 0o644);
    const root = packageRootFor(user);
    const argv = [process.execPath, join(root, 'bin', 'clawjail.js'), 'tenants', 'serve', '--config', cfg];
    const common = { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CLAWJAIL_RUNTIME_DIR: run, ACME_EDGE_TOKEN: 'edge-acme', ACME_OPENAI_KEY: 'sk-acme' }, extendEnv: false, reject: false, stdin: 'ignore' as const };
    const serve = user === 'unprivileged' && IS_ROOT ? execa('setpriv', ['--reuid', String(UNPRIV.uid), '--regid', String(UNPRIV.gid), '--clear-groups', ...argv], common) : execa(argv[0]!, argv.slice(1), common);
    let err = '';
    try {
      await new Promise<void>((resolve, reject) => {
        serve.stderr!.on('data', (c: Buffer) => {
          err += c.toString();
          if (err.includes('acme: ready') && err.includes('edge on')) resolve();
        });
        serve.on('exit', () => reject(new Error(`serve exited: ${err}`)));
      });
      const port = Number(/edge on http:\/\/127\.0\.0\.1:(\d+)\//.exec(err)![1]);
      const ok = await fetch(`http://127.0.0.1:${port}/t/acme/`, { headers: { authorization: 'Bearer edge-acme' } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('Directory listing');
      expect((await fetch(`http://127.0.0.1:${port}/t/acme/`, { headers: { authorization: 'Bearer sk-acme' } })).status).toBe(401);
    } finally {
      serve.kill('SIGTERM');
      await serve;
    }
  });
});

describe.each(USERS)('clawjail tenants serve, as %s', (user) => {
  it('serve holds the socket; ls, add, logs, restart and rm talk to it; a second serve is refused; SIGTERM stops all within 5 s', async () => {
    const d = workdir(user);
    const run = join(d, 'run');
    const state = join(d, 'state');
    mkdirSync(run, { mode: 0o700 });
    if (user === 'unprivileged' && IS_ROOT) chownSync(run, UNPRIV.uid, UNPRIV.gid);
    const cfg = join(d, 'tenants.yaml');
    writeFileSync(cfg, `stateRoot: ${state}\nuids: { first: 73600, count: 10 }\nedge: { port: 0 }\ntenants:\n  - name: web\n    command: [python3, -m, http.server, "8080", --bind, 127.0.0.1]\n    gateway: { port: 8080, health: / }\n    edge: { token: { env: WEB_EDGE_TOKEN } }\n`);
    chmodSync(cfg, 0o644);
    const env = { CLAWJAIL_RUNTIME_DIR: run };
    const root = packageRootFor(user);
    const argv = [process.execPath, join(root, 'bin', 'clawjail.js'), 'tenants', 'serve', '--config', cfg];
    const common = { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', WEB_EDGE_TOKEN: 'edge-web', ...env }, extendEnv: false, reject: false, stdin: 'ignore' as const };
    const serve = user === 'unprivileged' && IS_ROOT ? execa('setpriv', ['--reuid', String(UNPRIV.uid), '--regid', String(UNPRIV.gid), '--clear-groups', ...argv], common) : execa(argv[0]!, argv.slice(1), common);
    let err = '';
    await new Promise<void>((resolve, reject) => {
      serve.stderr!.on('data', (c: Buffer) => {
        err += c.toString();
        if (err.includes('serving 1 tenant(s)') && err.includes('web: ready') && err.includes('edge on')) resolve();
      });
      serve.on('exit', () => reject(new Error(`serve exited: ${err}`)));
    });
    try {
      const ls = await clawjail(['tenants', 'ls', '--json'], { as: user, env });
      expect(ls.exitCode).toBe(0);
      const listed = JSON.parse(ls.stdout).tenants;
      expect(listed).toEqual([expect.objectContaining({ name: 'web', state: 'ready', uid: user === 'root' ? 73600 : UNPRIV.uid, stateDir: join(state, 'web') })]);
      expect(listed[0].rssBytes).toBeGreaterThan(0);

      // The edge serve opened: the tenant's token reaches its gateway; no token is refused.
      const edgePort = Number(/edge on http:\/\/127\.0\.0\.1:(\d+)\//.exec(err)![1]);
      const viaEdge = await fetch(`http://127.0.0.1:${edgePort}/t/web/`, { headers: { authorization: 'Bearer edge-web' } });
      expect(viaEdge.status).toBe(200);
      expect(await viaEdge.text()).toContain('Directory listing');
      expect((await fetch(`http://127.0.0.1:${edgePort}/t/web/`)).status).toBe(401);

      const again = await clawjail(['tenants', 'serve', '--config', cfg], { as: user, env });
      expect(again.exitCode).toBe(125);
      expect(again.stderr).toContain('another `clawjail tenants serve` is running');

      const add = await clawjail(['tenants', 'add', 'two', '--', 'sh', '-c', 'echo hello-from-two; exec sleep 100'], { as: user, env });
      expect(add.stdout).toContain(`added two: ready, uid ${user === 'root' ? 73601 : UNPRIV.uid}`);
      const dupe = await clawjail(['tenants', 'add', 'two', '--', 'true'], { as: user, env });
      expect(dupe.exitCode).toBe(125);
      expect(dupe.stderr).toContain('a tenant named two already exists');
      // logs: the output arrives asynchronously; ask until it is there (bounded).
      let logs = '';
      for (let i = 0; i < 50 && !logs.includes('hello-from-two'); i++) logs = (await clawjail(['tenants', 'logs', 'two'], { as: user, env })).stdout;
      expect(logs).toBe('hello-from-two'); // execa strips the final newline
      const before = JSON.parse((await clawjail(['tenants', 'ls', '--json'], { as: user, env })).stdout).tenants.find((t: { name: string }) => t.name === 'two');
      const restarted = await clawjail(['tenants', 'restart', 'two'], { as: user, env });
      expect(restarted.exitCode).toBe(0);
      expect(restarted.stdout).toMatch(/^restarted two: pid \d+$/);
      expect(restarted.stdout).not.toBe(`restarted two: pid ${before.pid}`);
      const rm = await clawjail(['tenants', 'rm', 'two'], { as: user, env });
      expect(rm.stdout).toBe(`removed two; its state stays in ${join(state, 'two')}`);
      const gone = await clawjail(['tenants', 'logs', 'two'], { as: user, env });
      expect(gone.exitCode).toBe(125);
      expect(gone.stderr).toContain('no tenant named two');

      const webPid = listed[0].pid as number;
      const t0 = Date.now();
      serve.kill('SIGTERM');
      const r = await serve;
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(r.exitCode).toBe(0);
      expect(err).toContain('SIGTERM: stopping 1 tenant(s)');
      expect(() => process.kill(webPid, 0)).toThrow();
      expect(() => readFileSync(join(run, 'tenants.sock'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    } finally {
      serve.kill('SIGKILL');
    }
  });
});
