import { describe, expect, it } from 'vitest';
import { closeAll, launch, runningSandboxes, type Sandbox } from '../../src/index.js';
import type { AuditEvent } from '../../src/log.js';
import { IS_ROOT } from '../helpers/cli.js';

/** Resolves with the first stdout line of the workload that contains `word`. */
function line(sb: Sandbox, word: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    sb.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const l = buf.split('\n').find((x) => x.includes(word));
      if (l !== undefined) resolve(l);
    });
    sb.stdout!.on('end', () => reject(new Error(`stdout ended without "${word}": ${buf}`)));
  });
}

describe('launch() for many tenants: parallel start and the handle API', () => {
  it('N launches started at once do not wait for each other: the first resolves before all N were planned', async () => {
    const N = 60;
    // Each launch logs its enforcement report (info) once its plan is built; count them.
    let planned = 0;
    let plannedAtFirst = -1;
    const logger = {
      level: 'info',
      isLevelEnabled: () => true,
      child: () => logger,
      info: (_o: unknown, msg?: string) => void (msg === 'enforcement report' && planned++),
      warn: () => {},
      error: () => {},
      debug: () => {},
      trace: () => {},
      fatal: () => {},
    };
    const launches = Array.from({ length: N }, (_, i) =>
      launch({
        command: ['sleep', '60'],
        stdio: 'ignore',
        name: `par-${i}`,
        // Distinct overrides per launch, as tenants have: no launch reuses another's cache entry.
        overrides: [{ identity: { uid: 64000 + i, gid: 64000 + i }, env: { set: { TENANT: `t${i}` } } }],
        logger: logger as never,
      }).then((sb) => {
        if (plannedAtFirst < 0) plannedAtFirst = planned;
        return sb;
      }),
    );
    const sbs = await Promise.all(launches);
    try {
      expect(plannedAtFirst).toBeGreaterThan(0);
      // Before the fix every plan was built (N) before any launch could read its sandbox's "ready".
      expect(plannedAtFirst).toBeLessThan(N);
      expect(new Set(sbs.map((s) => s.pid)).size).toBe(N);
    } finally {
      await Promise.all(sbs.map((s) => s.close(1000)));
    }
  });

  it('the launch audit event reaches a listener attached after launch() resolved', async () => {
    const sb = await launch({ command: ['sleep', '60'], stdio: 'ignore', name: 'audit-replay' });
    const events: AuditEvent[] = [];
    sb.on('audit', (e: AuditEvent) => events.push(e));
    const exitEvent = new Promise<void>((r) => sb.on('audit', (e: AuditEvent) => e.kind === 'exit' && r()));
    sb.kill('SIGKILL');
    await exitEvent;
    expect(events.map((e) => e.kind)).toEqual(['launch', 'exit']);
    expect(events[0]).toMatchObject({ kind: 'launch', sandbox: 'audit-replay', command: ['sleep', '60'] });
  });

  it('status() and stats() describe the running sandbox; close() escalates to SIGKILL when SIGTERM is ignored', async () => {
    const sb = await launch({
      stdio: ['ignore', 'pipe', 'inherit'],
      name: 'stats',
      command: ['python3', '-c', 'import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nb = bytearray(64 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint("ready", flush=True)\ntime.sleep(60)'],
    });
    await line(sb, 'ready');
    expect(sb.status()).toMatchObject({ name: 'stats', state: 'running', pid: sb.pid });
    const st = sb.stats();
    // monitor, init, python
    expect(st.processes).toBeGreaterThanOrEqual(3);
    expect(st.rssBytes).toBeGreaterThan(64 << 20);
    expect(st.cpuMs).toBeGreaterThanOrEqual(0);
    const exit = await sb.close(300);
    expect(exit).toEqual({ code: null, signal: 'SIGKILL', status: 137 });
    expect(sb.status()).toMatchObject({ state: 'exited', exit: { status: 137 } });
    expect(sb.stats()).toEqual({ processes: 0, rssBytes: 0, cpuMs: 0 });
  });

  it('closeAll() stops every running sandbox of the process', async () => {
    const a = await launch({ command: ['sleep', '60'], stdio: 'ignore', name: 'close-a' });
    const b = await launch({ command: ['sleep', '60'], stdio: 'ignore', name: 'close-b' });
    expect(runningSandboxes()).toEqual(expect.arrayContaining([a, b]));
    const statuses = await closeAll(2000);
    expect(statuses.length).toBeGreaterThanOrEqual(2);
    expect((await a.exited).signal).toBe('SIGTERM');
    expect((await b.exited).signal).toBe('SIGTERM');
    expect(runningSandboxes()).not.toContain(a);
    // The monitor is gone: signal 0 to its pid fails with ESRCH (the pid was reaped).
    expect(() => process.kill(a.pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  });

  it.skipIf(!IS_ROOT)('as root, a second running sandbox on the same host uid is warned about, naming both', async () => {
    const warnings: string[] = [];
    const logger = { level: 'warn', isLevelEnabled: () => true, child: () => logger, info: () => {}, warn: (_o: unknown, m?: string) => void warnings.push(String(m)), error: () => {}, debug: () => {}, trace: () => {}, fatal: () => {} };
    const opts = (name: string, uid: number) => ({ command: ['sleep', '60'], stdio: 'ignore' as const, name, overrides: [{ identity: { uid, gid: uid } }], logger: logger as never });
    const a = await launch(opts('uid-a', 64200));
    const b = await launch(opts('uid-b', 64201));
    const c = await launch(opts('uid-c', 64200));
    try {
      expect(warnings.filter((w) => w.includes('host uid'))).toEqual([
        'sandbox uid-c runs as host uid 64200, like the running sandbox uid-a: give each tenant its own identity.uid (createOrchestrator allocates them)',
      ]);
    } finally {
      await Promise.all([a, b, c].map((s) => s.close(500)));
    }
  });

  it.skipIf(!IS_ROOT)('as root, a missing sandbox dir is created owned by the sandbox uid (no manual chown)', async () => {
    const { mkdtempSync, statSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const base = mkdtempSync(`${tmpdir()}/cj-owner-`);
    const dir = `${base}/t1/state`;
    try {
      const sb = await launch({ command: ['sh', '-c', 'echo x > /sandbox/f'], stdio: 'ignore', overrides: [{ identity: { uid: 64100, gid: 64100 }, filesystem: { sandboxDir: dir } }] });
      expect((await sb.exited).status).toBe(0);
      expect(statSync(dir)).toMatchObject({ uid: 64100, gid: 64100 });
      expect(statSync(`${dir}/f`).uid).toBe(64100);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
