import { closeSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { beforeAll, describe, expect, it } from 'vitest';
import { planLaunch } from '../../src/launch.js';
import { addon, helperPath } from '../../src/native.js';
import type { NativePlan } from '../../src/plan/types.js';
import { InitChannel, type SetupFailure } from '../../src/services/channel.js';

const EINVAL = 22;
const ESRCH = 3;

/**
 * Starts clawjail-init with `plan` on fd 3, as launch() does, and returns the failure it reports
 * and its exit code. supervisorPid is 1 (not our pid), so a plan that decodes fails at the very
 * next step, monitor.parent (ESRCH), before anything is set up.
 */
async function startHelper(plan: unknown): Promise<{ failure: SetupFailure; code: number | null }> {
  const [ours, theirs] = addon().socketpair();
  const channel = new InitChannel(ours);
  const planFd = addon().planPipe(Buffer.from(JSON.stringify(plan)));
  const nul = openSync('/dev/null', 'r+');
  let spawned: { pid: number; pidfd: number };
  try {
    spawned = addon().spawnHelper({ path: helperPath(), fds: [nul, nul, nul, planFd, theirs], setsid: true });
  } finally {
    addon().closeFd(planFd);
    addon().closeFd(theirs);
    closeSync(nul);
  }
  try {
    const failure = new Promise<SetupFailure>((resolve) => channel.once('failure', resolve));
    const code = new Promise<number | null>((resolve) => addon().watchExit(spawned.pid, spawned.pidfd, (c) => resolve(c)));
    return { failure: await failure, code: await code };
  } finally {
    channel.close();
  }
}

type Json = Record<string, unknown>;
const clone = <T>(v: T): T => structuredClone(v);

// The strict decoder (native/init/plan.cc) fails closed on the fields the plan gained when the
// helper stopped deciding them: an unknown key, a missing one, or a value it does not take.
describe('clawjail-init decodes the plan strictly (fails closed)', () => {
  let namespaces: NativePlan;
  let inPlace: NativePlan;
  beforeAll(async () => {
    // A sandbox dir of its own, so the dry-run plan names a real path (it is never touched: the
    // helper stops at monitor.parent).
    const base = { command: ['true'], overrides: [{ seccomp: { mode: 'enforce' }, filesystem: { sandboxDir: tmpdir() } }] };
    namespaces = { ...(await planLaunch({ ...base, overrides: [...base.overrides, { mode: 'namespaces' }] })).plan.native, supervisorPid: 1 };
    inPlace = { ...(await planLaunch({ ...base, overrides: [...base.overrides, { mode: 'in-place' }] })).plan.native, supervisorPid: 1 };
  });

  const dev = (p: NativePlan): Json => p.mounts.find((m) => m.op === 'dev') as unknown as Json;

  it('takes the plans the planner makes, in both modes (control: they get past decoding)', async () => {
    expect(namespaces.forwardSignals.length).toBeGreaterThan(0);
    expect(namespaces.workload.seccomp?.tsync).toBe(true);
    expect(dev(namespaces)).toMatchObject({ pts: true, links: expect.any(Array) });
    for (const plan of [namespaces, inPlace]) {
      const r = await startHelper(plan);
      expect(r.failure).toMatchObject({ step: 'monitor.parent', errno: ESRCH });
      expect(r.code).toBe(125);
    }
  });

  const cases: [string, (p: Json) => void, string][] = [
    ['an unknown top-level key', (p) => (p.forwardSignal = ['SIGTERM']), 'plan field plan.forwardSignal: unknown field'],
    ['no forwardSignals', (p) => delete p.forwardSignals, 'plan field plan.forwardSignals: missing'],
    ['a signal that cannot be held (SIGKILL)', (p) => (p.forwardSignals = ['SIGTERM', 'SIGKILL']), "plan field plan.forwardSignals: not a signal the helper forwards: 'SIGKILL'"],
    ['SIGCHLD, the helper\'s own', (p) => (p.forwardSignals = ['SIGCHLD']), "not a signal the helper forwards: 'SIGCHLD'"],
    ['a number instead of a name', (p) => (p.forwardSignals = [15]), 'plan field plan.forwardSignals[0]: expected a string'],
    ['a signal twice', (p) => (p.forwardSignals = ['SIGTERM', 'SIGTERM']), "plan field plan.forwardSignals: 'SIGTERM' twice"],
    ['seccomp without tsync', (p) => delete (p.workload as { seccomp: Json }).seccomp.tsync, 'plan field plan.workload.seccomp.tsync: missing'],
    ['tsync not a boolean', (p) => ((p.workload as { seccomp: Json }).seccomp.tsync = 1), 'plan field plan.workload.seccomp.tsync: expected a boolean'],
    ['seccomp flags the plan does not define', (p) => ((p.workload as { seccomp: Json }).seccomp.flags = 8), 'plan field plan.workload.seccomp.flags: unknown field'],
    ['the removed keepFds', (p) => ((p.workload as Json).keepFds = []), 'plan field plan.workload.keepFds: unknown field'],
  ];
  const devCases: [string, (d: Json) => void, string][] = [
    ['an unknown dev key', (d) => (d.ptmx = true), '.ptmx: unknown field'],
    ['no pts', (d) => delete d.pts, '.pts: missing'],
    ['no shm (null means none)', (d) => delete d.shm, '.shm: missing'],
    ['no links', (d) => delete d.links, '.links: missing'],
    ['no size', (d) => delete d.size, '.size: missing'],
    ['an unknown shm key', (d) => (d.shm = { size: 1024, mode: 0o777 }), '.shm.mode: unknown field'],
    ['a link out of /dev', (d) => (d.links = [{ name: '../x', target: '/proc/self/fd' }]), "bad name in /dev '../x'"],
    ['a link over a device', (d) => (d.links = [{ name: 'null', target: '/proc/self/fd' }]), "'null' twice in /dev"],
    ['a link over pts', (d) => (d.links = [{ name: 'pts', target: '/tmp' }]), "'pts' twice in /dev"],
  ];

  it.each(cases)('refuses %s (plan.decode, EINVAL)', async (_label, change, detail) => {
    const plan = clone(namespaces) as unknown as Json;
    change(plan);
    const r = await startHelper(plan);
    expect(r.failure).toMatchObject({ step: 'plan.decode', errno: EINVAL });
    expect(r.failure.detail).toContain(detail);
    expect(r.code).toBe(125);
  });

  it.each(devCases)('refuses a dev op with %s (plan.decode, EINVAL)', async (_label, change, detail) => {
    const plan = clone(namespaces);
    change(dev(plan));
    const r = await startHelper(plan);
    expect(r.failure).toMatchObject({ step: 'plan.decode', errno: EINVAL });
    expect(r.failure.detail).toContain(detail);
  });

  it('refuses an in-place plan without forwardSignals too', async () => {
    const plan = clone(inPlace) as unknown as Json;
    delete plan.forwardSignals;
    const r = await startHelper(plan);
    expect(r.failure).toMatchObject({ step: 'plan.decode', errno: EINVAL, detail: 'plan field plan.forwardSignals: missing' });
  });
});
