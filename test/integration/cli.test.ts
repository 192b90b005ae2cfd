import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { clawjail, IS_ROOT } from '../helpers/cli.js';

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
    const r = await clawjail(['run', '--profile', 'strict', '--status-json', '-', '--', 'sh', '-c', 'test -z "$HTTPS_PROXY" && python3 -c "import resource; print(resource.getrlimit(resource.RLIMIT_NPROC)[0])"']);
    const st = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { report: { layers: { layer: string; status: string; mode?: string; detail: string }[] } };
    expect(r.stdout.split('\n')[0]).toBe('256');
    expect(st.report.layers.find((l) => l.layer === 'network')!.detail).toContain('no egress');
    expect(st.report.layers.find((l) => l.layer === 'landlock')!.mode).toBe('required');
  });

  it('--help and --version answer without running anything', async () => {
    const h = await clawjail(['run', '--help']);
    expect(h.exitCode).toBe(0);
    expect(h.stdout).toContain('Usage: clawjail run [options] -- COMMAND');
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
    const r = await execa('script', ['-qec', `${process.execPath} ${process.cwd()}/bin/clawjail.js run --tty -- sh -c 'test -t 0 && echo interactive; cut -d" " -f7 /proc/self/stat'`, '/dev/null'], { reject: false, timeout: 20_000 });
    const [interactive, ttyNr] = r.stdout.trim().split(/\r?\n/);
    expect(interactive).toBe('interactive');
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
