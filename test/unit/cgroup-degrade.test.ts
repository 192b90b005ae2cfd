import { describe, expect, it } from 'vitest';
import type { HostFacts } from '../../src/host/probe.js';
import { degradeCgroup } from '../../src/plan/cgroup.js';
import { buildPlan, type LaunchPlan } from '../../src/plan/plan.js';
import { loadProfile } from '../../src/profile/load.js';
import { hostFacts } from '../helpers/host-facts.js';

const host: HostFacts = hostFacts({ cgroup: { dir: '/sys/fs/cgroup/user', controllers: ['memory', 'pids', 'cpu'], writable: true } });

const DIR = '/sys/fs/cgroup/user/clawjail-sb';

function planWith(cgroup: Record<string, unknown>): LaunchPlan {
  return buildPlan({
    profile: loadProfile({ overrides: [{ limits: { cgroup } }] }).profile,
    host,
    pathFacts: { '/usr': { kind: 'dir', real: '/usr', realKind: 'dir' } },
    command: ['true'],
    name: 'sb',
    supervisorPid: 42,
    sandboxDir: { host: '/tmp/sbx', ephemeral: true },
    hostEnv: {},
    expand: (p) => p,
    cgroupDir: DIR,
    compileSeccomp: () => ({ program: Buffer.alloc(8), instructions: 1 }),
  });
}

const REASONS = [
  `cannot set up cgroup ${DIR}: EACCES (${DIR})`,
  `cannot set up cgroup ${DIR}: EBUSY (/sys/fs/cgroup/user/cgroup.subtree_control)`,
  `cannot set up cgroup ${DIR}: EROFS (${DIR}/memory.max)`,
];

type Outcome = 'refused' | 'degraded' | 'unchanged';
const TABLE: { mode: string; cgroup: Record<string, unknown>; outcome: Outcome }[] = [
  { mode: 'required', cgroup: { mode: 'required', memoryMax: '64M', pidsMax: 10 }, outcome: 'refused' },
  { mode: 'best-effort', cgroup: { mode: 'best-effort', memoryMax: '64M', pidsMax: 10 }, outcome: 'degraded' },
  { mode: 'off', cgroup: { mode: 'off', memoryMax: '64M' }, outcome: 'unchanged' },
  { mode: 'best-effort, no limit asked for', cgroup: { mode: 'best-effort' }, outcome: 'unchanged' },
];

describe('degradeCgroup', () => {
  for (const row of TABLE) {
    for (const reason of REASONS) {
      it(`${row.mode} × ${reason.split(': ')[1]}: ${row.outcome}`, () => {
        const plan = planWith(row.cgroup);
        const before = structuredClone(plan);
        const call = () => degradeCgroup(plan, reason);
        if (row.outcome === 'refused') {
          let err: unknown;
          try {
            call();
          } catch (e) {
            err = e;
          }
          expect(err).toMatchObject({ code: 'ERR_CLAWJAIL_LAYER_REQUIRED', path: DIR });
          expect((err as Error).message.split('\n')[0]).toBe(`cgroup limits are required but ${reason}`);
          expect((err as { hint: string }).hint).toContain('limits.cgroup.mode: best-effort');
        } else if (row.outcome === 'unchanged') {
          expect(plan.cgroup).toBeNull();
          expect(call()).toBe(plan);
        } else {
          expect(plan.cgroup).toMatchObject({ dir: DIR, mode: 'best-effort' });
          const out = call();
          expect(out.cgroup).toBeNull();
          expect(out.native.cgroupProcs).toBeNull();
          expect(out.report.layers.find((l) => l.layer === 'cgroup')).toEqual({ layer: 'cgroup', status: 'unavailable', mode: 'best-effort', detail: reason });
          expect(out.warnings).toEqual([...plan.warnings, reason]);
          // Everything else is the plan as built.
          expect({ ...out, cgroup: plan.cgroup, native: { ...out.native, cgroupProcs: plan.native.cgroupProcs }, report: plan.report, warnings: plan.warnings }).toEqual(plan);
        }
        // The plan given is never changed.
        expect(plan).toEqual(before);
      });
    }
  }
});
