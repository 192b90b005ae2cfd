import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { degradeCgroup } from '../plan/cgroup.js';
import type { LaunchPlan } from '../plan/plan.js';
import type { Cleanup } from './teardown.js';

/** oom_kill count from the sandbox cgroup's memory.events (0 when absent). */
export function oomKills(dir: string): number {
  try {
    const m = /^oom_kill (\d+)$/m.exec(readFileSync(join(dir, 'memory.events'), 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * Creates the sandbox's cgroup under the supervisor's own and writes its limits. cgroup v2 lets a
 * parent hand controllers to children only while it holds no processes itself ("no internal
 * processes"), so when the supervisor's cgroup has them off, the supervisor first moves into a
 * leaf of its own (`supervisor/`) and then enables the controllers — as container runtimes do.
 * Returns the plan to launch with: the same one, or, when this fails, what degradeCgroup decides.
 */
export function prepareCgroup(plan: LaunchPlan, cleanups: Cleanup[]): LaunchPlan {
  if (!plan.cgroup) return plan;
  const { dir, settings } = plan.cgroup;
  const parent = posix.dirname(dir);
  try {
    const wanted = [...new Set(Object.keys(settings).map((k) => k.split('.')[0]!))];
    const enabled = readFileSync(join(parent, 'cgroup.subtree_control'), 'utf8').split(/\s+/);
    const missing = wanted.filter((c) => !enabled.includes(c));
    if (missing.length) {
      const procs = readFileSync(join(parent, 'cgroup.procs'), 'utf8').trim();
      if (procs) {
        const leaf = join(parent, 'supervisor');
        mkdirSync(leaf, { recursive: true });
        writeFileSync(join(leaf, 'cgroup.procs'), String(process.pid));
      }
      writeFileSync(join(parent, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '));
    }
    mkdirSync(dir);
    cleanups.push(() => {
      // Processes are gone once the helper exited; rmdir can race the kernel's release briefly.
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(dir);
          return;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EBUSY') return;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        }
      }
    });
    for (const [file, value] of Object.entries(settings)) writeFileSync(join(dir, file), value);
    return plan;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return degradeCgroup(plan, `cannot set up cgroup ${dir}: ${err.code ?? err.message}${err.path ? ` (${err.path})` : ''}`);
  }
}
