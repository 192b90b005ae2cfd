import { constants as osConstants } from 'node:os';
import { ClawjailError } from '../errors.js';
import { addon, HELPER_ARGV0, helperPath } from '../native.js';
import type { LaunchPlan } from '../plan/plan.js';
import { InitChannel } from '../services/channel.js';
import type { ExitStatus } from '../sandbox.js';
import { oomKills } from './cgroup.js';
import type { Stdio } from './stdio.js';
import type { Cleanup } from './teardown.js';

/** The running helper (its monitor process): what the Sandbox handle and the start wait hold. */
export interface Helper {
  pid: number;
  /** Signals the monitor, which forwards to the workload; false once it has exited. */
  kill(signal: NodeJS.Signals | number): boolean;
  exited: Promise<ExitStatus>;
}

/**
 * The channel to clawjail-init: our end, closed at teardown, and the helper's end (its fd 4), which
 * startHelper closes once the helper holds it.
 */
export function openChannel(cleanups: Cleanup[]): { channel: InitChannel; theirs: number } {
  const [ours, theirs] = addon().socketpair();
  const channel = new InitChannel(ours);
  cleanups.push(() => channel.close());
  return { channel, theirs };
}

/**
 * Starts clawjail-init with a clean environment: the workload's stdio on fds 0–2, the plan on fd 3,
 * the channel on fd 4. Whatever happens, the supervisor's copies of what the helper inherits are
 * closed, and the launch's turn ends (the CPU-bound half is done).
 */
export function startHelper(plan: LaunchPlan, how: { stdio: Pick<Stdio, 'childFds' | 'closeChildEnds'>; channelFd: number; setsid: boolean; endTurn: () => void }): Helper {
  const { stdio, channelFd: theirs, endTurn } = how;
  const planFd = addon().planPipe(Buffer.from(JSON.stringify(plan.native)));
  let spawned: { pid: number; pidfd: number };
  try {
    spawned = addon().spawnHelper({ path: helperPath(), argv0: HELPER_ARGV0, fds: [...stdio.childFds, planFd, theirs], setsid: how.setsid });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ClawjailError('ERR_CLAWJAIL_NATIVE', `cannot start clawjail-init (${helperPath()}): ${err.message}`, {
      hint: 'run `npm run build:native` in the clawjail package',
      ...(typeof err.errno === 'number' ? { errno: err.errno } : {}),
      cause: e,
    });
  } finally {
    addon().closeFd(planFd);
    addon().closeFd(theirs);
    stdio.closeChildEnds();
    endTurn();
  }
  const pid = spawned.pid;
  let alive = true;
  const kill = (signal: NodeJS.Signals | number): boolean => {
    if (!alive) return false;
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  };
  const exited = new Promise<ExitStatus>((resolve) => {
    addon().watchExit(pid, spawned.pidfd, (code, signum) => {
      alive = false;
      const signal = signum === null ? null : ((Object.entries(osSignals).find(([, n]) => n === signum)?.[0] ?? null) as NodeJS.Signals | null);
      const status = code ?? 128 + (signum ?? 0);
      const oom = plan.cgroup ? oomKills(plan.cgroup.dir) : 0;
      resolve({ code, signal, status, ...(oom > 0 ? { oomKilled: true } : {}) });
    });
  });
  return { pid, kill, exited };
}

const osSignals = osConstants.signals as Record<string, number>;
