import { EventEmitter } from 'node:events';
import type net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { AuditEvent } from './log.js';
import type { LaunchPlan } from './plan/plan.js';
import type { EnforcementReport } from './plan/types.js';
import type { InitChannel } from './services/channel.js';
import { descendants, readProcessTable, residentBytes, USER_HZ } from './host/proc-stats.js';

/** What a sandbox is doing now. */
export interface SandboxStatus {
  name: string;
  state: 'running' | 'exited';
  /** Host pid of the monitor process. */
  pid: number;
  /** When launch() resolved (ISO time). */
  startedAt: string;
  exit?: ExitStatus;
}

/** Resources the sandbox's processes use now (monitor, init and the workload's tree). */
export interface SandboxStats {
  processes: number;
  rssBytes: number;
  cpuMs: number;
}

export interface ExitStatus {
  /** Exit code of the workload, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** One number, as a shell reports it: the code, or 128 + the signal number. */
  status: number;
  /** Set when the sandbox's cgroup reports the kernel OOM-killed a process in it. */
  oomKilled?: boolean;
}

/**
 * A running sandbox. Events: `audit` (AuditEvent), `exit` (ExitStatus), `warning` (string).
 * `pid` is the host pid of the sandbox's monitor process; signals sent with kill() reach the
 * workload.
 */
export class Sandbox extends EventEmitter {
  readonly name: string;
  readonly pid: number;
  readonly report: EnforcementReport;
  readonly plan: LaunchPlan;
  /** Host ports published into the sandbox (hostPort is the bound one when 0 was asked). */
  readonly published: { hostAddress: string; hostPort: number; port: number }[];
  /**
   * Resolves when the workload has exited. Piped output may still be in flight: read `stdout` /
   * `stderr` to their end to have all of it.
   */
  readonly exited: Promise<ExitStatus>;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Where the workload's /sandbox lives on the host (removed at exit when temporary). */
  readonly sandboxDir: string;
  readonly startedAt: Date;
  private readonly killer: (signal: NodeJS.Signals | number) => boolean;
  private readonly channel: InitChannel;
  private exitStatus: ExitStatus | undefined;
  private held: AuditEvent[] | undefined;

  /** @internal */
  constructor(init: {
    plan: LaunchPlan;
    pid: number;
    kill: (signal: NodeJS.Signals | number) => boolean;
    stdio: { stdin: Writable | null; stdout: Readable | null; stderr: Readable | null };
    channel: InitChannel;
    exited: Promise<ExitStatus>;
    published: { hostAddress: string; hostPort: number; port: number }[];
  }) {
    super();
    this.plan = init.plan;
    this.name = init.plan.name;
    this.report = init.plan.report;
    this.killer = init.kill;
    this.pid = init.pid;
    this.channel = init.channel;
    this.exited = init.exited;
    this.published = init.published;
    this.sandboxDir = init.plan.sandboxDir.host;
    this.stdin = init.stdio.stdin;
    this.stdout = init.stdio.stdout;
    this.stderr = init.stdio.stderr;
    this.startedAt = new Date();
    void this.exited.then((st) => (this.exitStatus = st));
  }

  status(): SandboxStatus {
    return {
      name: this.name,
      state: this.exitStatus ? 'exited' : 'running',
      pid: this.pid,
      startedAt: this.startedAt.toISOString(),
      ...(this.exitStatus ? { exit: this.exitStatus } : {}),
    };
  }

  /** Process count, resident memory and CPU time of the sandbox's processes, read from /proc. */
  stats(): SandboxStats {
    if (this.exitStatus) return { processes: 0, rssBytes: 0, cpuMs: 0 };
    const procs = descendants(this.pid, readProcessTable());
    return {
      processes: procs.length,
      rssBytes: procs.reduce((n, p) => n + residentBytes(p.pid), 0),
      cpuMs: procs.reduce((n, p) => n + (p.cpuTicks * 1000) / USER_HZ, 0),
    };
  }

  /**
   * Stops the sandbox: SIGTERM to the workload, SIGKILL after `graceMs` if it is still there.
   * Resolves with the exit status once everything is gone.
   */
  async close(graceMs = 5000): Promise<ExitStatus> {
    if (this.exitStatus) return this.exitStatus;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a signal to the workload (through the monitor and the sandbox's init). */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    return this.killer(signal);
  }

  /** A TCP connection to 127.0.0.1:port inside the sandbox. */
  connect(port: number): Promise<net.Socket> {
    return this.channel.connect(port);
  }

  /** @internal */
  emitAudit(event: AuditEvent): void {
    if (this.held) this.held.push(event);
    else this.emit('audit', event);
  }

  /**
   * @internal Events emitted while launch() was still running (the `launch` event among them)
   * are delivered on the next turn of the event loop, after the caller had the handle and could
   * attach its listener.
   */
  replayAudit(events: AuditEvent[]): void {
    this.held = [...events];
    setImmediate(() => {
      const held = this.held ?? [];
      this.held = undefined;
      for (const e of held) this.emit('audit', e);
    });
  }
}
