import { execa } from 'execa';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clawjail, IS_ROOT, runWithStatus, USERS } from '../helpers/cli.js';

describe('clawjail CLI', () => {
  it('--dry-run prints the launch plan as JSON and runs nothing', async () => {
    const r = await clawjail(['run', '--dry-run', '--name', 'dry', '--env', 'A=1', '--ro', '/usr/share:/data', '--', 'sh', '-c', 'touch /sandbox/should-not-exist']);
    expect(r.exitCode).toBe(0);
    const plan = JSON.parse(r.stdout) as {
      name: string;
      sandboxDir: { host: string; ephemeral: boolean };
      native: { supervisorPid: number; mounts: { op: string; dest: string }[]; workload: { argv: string[]; env: string[]; cwd: string }; namespaces: string[]; identity: { uid: number; hostUid: number } };
      report: { layers: { layer: string }[] };
    };
    expect(plan.name).toBe('dry');
    expect(plan.sandboxDir).toEqual({ host: '<temporary directory>', ephemeral: true });
    expect(plan.native.supervisorPid).toBe(0);
    expect(plan.native.namespaces).toEqual(['user', 'mount', 'pid', 'net', 'ipc', 'uts', 'cgroup']);
    expect(plan.native.identity.hostUid).not.toBe(0);
    expect(plan.native.workload.argv).toEqual(['sh', '-c', 'touch /sandbox/should-not-exist']);
    expect(plan.native.workload.cwd).toBe('/sandbox');
    expect(plan.native.workload.env).toContain('A=1');
    expect(plan.native.mounts.map((m) => `${m.op} ${m.dest}`)).toMatchSnapshot();
    expect(plan.report.layers.map((l) => l.layer)).toEqual(['namespaces', 'identity', 'filesystem', 'network', 'inference', 'landlock', 'seccomp', 'rlimits', 'cgroup']);
  });

  it('--dry-run never shows an inference credential', async () => {
    const r = await clawjail(['run', '--dry-run', '--route', 'main=http://127.0.0.1:9/v1', '--route-credential-env', 'main=MY_KEY', '--', 'true'], { env: { MY_KEY: 'sk-live-very-secret' } });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).not.toContain('sk-live-very-secret');
    expect(r.stdout).toContain('CLAWJAIL_INFERENCE_URL');
    // What the services will enforce is in the plan: the route with its key's source, the egress policy.
    const plan = JSON.parse(r.stdout) as { inference: { routes: { name: string; credential?: unknown }[] }; egress: { mode: string; allow: unknown[] } };
    expect(plan.inference.routes.map((x) => [x.name, x.credential])).toEqual([['main', { env: 'MY_KEY' }]]);
    expect(plan.egress).toMatchObject({ mode: 'proxy', allow: [] });
  });

  it('doctor prints each layer with its status, and --json the host facts', async () => {
    const r = await clawjail(['doctor']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^user namespaces: available$/m);
    expect(r.stdout).toMatch(/^landlock +(enforced|partial|unavailable)/m);
    expect(r.stdout).toMatch(/^seccomp +enforced/m);
    const j = await clawjail(['doctor', '--json']);
    const facts = JSON.parse(j.stdout) as { host: { userns: { available: boolean }; landlock: { abi: number } }; layers: { layer: string; status: string }[] };
    expect(facts.host.userns.available).toBe(true);
    expect(facts.layers.find((l) => l.layer === 'namespaces')!.status).toBe('enforced');
  });

  it('rejects bad usage with 125 and a hint, never a stack trace', async () => {
    for (const args of [['run'], ['run', '--publish', 'x:1', '--', 'true'], ['run', '--allow-host', 'a:99999', '--', 'true'], ['run', '--landlock', 'sometimes', '--', 'true'], ['frobnicate']]) {
      const r = await clawjail(args);
      expect(r.exitCode, args.join(' ')).toBe(125);
      expect(r.stderr, args.join(' ')).toMatch(/^clawjail: .+\n  hint: /);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('--profile strict: no network at all, landlock required, tight limits', async () => {
    const { r, status: st } = await runWithStatus<{ report: { layers: { layer: string; status: string; mode?: string; detail: string }[] } }>(['--profile', 'strict', '--', 'sh', '-c', 'test -z "$HTTPS_PROXY" && python3 -c "import resource; print(resource.getrlimit(resource.RLIMIT_NPROC)[0])"']);
    // The workload's output is its own: the report went to fd 3.
    expect(r.stdout).toBe('256');
    expect(st.report.layers.find((l) => l.layer === 'network')!.detail).toContain('no egress');
    expect(st.report.layers.find((l) => l.layer === 'landlock')!.mode).toBe('required');
  });

  it('--help and --version answer without running anything', async () => {
    const h = await clawjail(['run', '--help']);
    expect(h.exitCode).toBe(0);
    expect(h.stdout).toContain('Usage: clawjail run [options] [--] COMMAND');
    const v = await clawjail(['--version']);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('profile schema describes every field', async () => {
    const r = await clawjail(['profile', 'schema']);
    const schema = JSON.parse(r.stdout) as { properties: Record<string, { properties?: Record<string, { description?: string }> }> };
    const missing: string[] = [];
    for (const [section, s] of Object.entries(schema.properties)) {
      for (const [field, f] of Object.entries(s.properties ?? {})) if (!f.description) missing.push(`${section}.${field}`);
    }
    expect(missing).toEqual([]);
  });

  it.skipIf(!existsSync('/usr/bin/script'))('--tty keeps the terminal: the workload sees a tty as its controlling terminal (skipped without util-linux script)', async () => {
    const r = await execa('script', ['-qec', `${process.execPath} ${process.cwd()}/bin/clawjail.js run --tty -- sh -c 'test -t 0 && echo interactive; cut -d" " -f7 /proc/self/stat; tty'`, '/dev/null'], { reject: false, timeout: 20_000 });
    const [interactive, ttyNr, ttyName] = r.stdout.trim().split(/\r?\n/);
    expect(interactive).toBe('interactive');
    // ttyname() finds the terminal: the host's pty is bound at /dev/console.
    expect(ttyName).toBe('/dev/console');
    // A non-zero tty_nr: the terminal is the workload's controlling terminal.
    expect(Number(ttyNr)).toBeGreaterThan(0);
    const noTty = await execa('script', ['-qec', `${process.execPath} ${process.cwd()}/bin/clawjail.js run -- sh -c 'cut -d" " -f7 /proc/self/stat'`, '/dev/null'], { reject: false, timeout: 20_000 });
    // Without --tty the workload has no controlling terminal (tty_nr 0): it cannot inject input.
    expect(noTty.stdout.trim().split('\n').pop()!.trim()).toBe('0');
  });

  it.skipIf(!IS_ROOT)('as root, the sandbox runs as the dedicated uid and a --sandbox-dir owned by another uid is refused', async () => {
    const r = await clawjail(['run', '--sandbox-dir', '/tmp', '--', 'true']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain('is owned by uid 0, but the sandbox runs as host uid 61000');
  });
});

describe.each(USERS)('command line as a new user types it, as %s', (as) => {
  it('options after the command are the command\'s: run ls -la /sandbox', async () => {
    const r = await clawjail(['run', 'ls', '-la', '/sandbox'], { as });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^total \d+/);
    const e = await clawjail(['run', '--env', 'A=1', 'sh', '-c', 'echo $A "$@"', 'sh', '--tty', '-p'], { as });
    expect(e.stdout).toBe('1 --tty -p');
  });

  it.each([
    [['--sandbox-dir', 'rel'], '--sandbox-dir (filesystem.sandboxDir): sandboxDir must be an absolute host path'],
    [['--ro', 'rel'], '--ro (filesystem.ro[0].src): bind source must be an absolute host path'],
    [['--tmp-size', 'lots'], '--tmp-size (filesystem.tmpSize): expected a size like 512m'],
    [['--name', 'a/b'], '--name (name): use letters, digits'],
    [['--route', 'bad=notaurl'], '--route (inference.routes[0].upstream): upstream "notaurl" is not a URL'],
  ])('a bad flag value names the flag, not the default profile: %j', async (flags, message) => {
    const r = await clawjail(['run', ...flags, '--', 'true'], { as });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain(`clawjail: ${message}`);
    expect(r.stderr).not.toContain('default.yaml');
    expect(r.stderr).not.toContain('name: name:');
  });

  it('--status-json - is refused before anything runs; /dev/fd/3 keeps the report off the workload\'s stdout', async () => {
    const refused = await clawjail(['run', '--status-json', '-', '--', 'echo', 'ran'], { as });
    expect(refused.exitCode).toBe(125);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain("--status-json -: standard output is the workload's");
    expect(refused.stderr).toContain('--status-json /dev/fd/3');
    const { r, status } = await runWithStatus<{ exit: { code: number } }>(['--', 'echo', 'only-this'], { as });
    expect(r.stdout).toBe('only-this');
    expect(status.exit.code).toBe(0);
  });

  it('a YAML alias bomb is a named profile error (125), not an internal error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cj-bomb-'));
    try {
      const levels = 'abcdefghi'.split('');
      const text = levels.map((l, i) => `${l}: &${l} [${i === 0 ? Array(9).fill('"x"').join(',') : Array(9).fill(`*${levels[i - 1]}`).join(',')}]`).join('\n');
      writeFileSync(join(dir, 'bomb.yaml'), text + '\n');
      chmodSync(dir, 0o755);
      const r = await clawjail(['run', '--profile', join(dir, 'bomb.yaml'), '--', 'true'], { as });
      expect(r.exitCode).toBe(125);
      expect(r.stderr).toContain('its YAML aliases (*name) expand to more than 100 copies');
      expect(r.stderr).not.toContain('internal error');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('stderr off a terminal is all JSON or all text', () => {
  it('JSON (the default off a terminal): a warning and the error are each one JSON line', async () => {
    const r = await clawjail(['run', '--rw', '/usr/share/doc:/d', '--sandbox-dir', '/no/such/parent/../x', '--', 'true'], { env: { CLAWJAIL_LOG_FORMAT: '' } });
    expect(r.exitCode).toBe(125);
    const lines = r.stderr.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    const records = lines.map((l) => JSON.parse(l) as { level: number; name: string; msg: string; code?: string });
    const last = records[records.length - 1]!;
    expect(last).toMatchObject({ level: 50, name: 'clawjail', code: 'ERR_CLAWJAIL_USAGE' });
    expect(last.msg).toContain('--sandbox-dir');
  });

  it('JSON: an unknown command and an internal-looking failure are JSON too', async () => {
    const r = await clawjail(['frobnicate'], { env: { CLAWJAIL_LOG_FORMAT: 'json' } });
    expect(r.exitCode).toBe(125);
    expect(JSON.parse(r.stderr.trim())).toMatchObject({ level: 50, code: 'ERR_CLAWJAIL_USAGE', msg: expect.stringContaining("unknown command 'frobnicate'") });
  });

  it('text: the warning and the error are text lines', async () => {
    const r = await clawjail(['run', '--rw', '/usr/share/doc:/d', '--', 'sh', '-c', 'exit 3'], { env: { CLAWJAIL_LOG_FORMAT: 'text' } });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain('WARN');
    expect(r.stderr).toContain('cannot write to /usr/share/doc');
    expect(r.stderr).not.toMatch(/^\{/m);
  });
});
