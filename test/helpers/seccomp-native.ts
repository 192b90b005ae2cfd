// Builds the tiny C programs the seccomp tests and benchmark run (try-syscall, seccomp-exec)
// into a private, world-readable temp dir, and runs commands under a compiled filter in a
// child process. The test runner itself never installs a filter.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { SeccompArch } from '../../src/plan/seccomp/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));

export function hostSeccompArch(): SeccompArch | undefined {
  return process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : undefined;
}

/** Why filters cannot be tried on this host, or undefined when they can. */
export function seccompUnsupportedReason(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (!hostSeccompArch()) return `no syscall table for ${process.arch}`;
  if (spawnSync('cc', ['--version']).status !== 0) return 'no C compiler (cc) to build the test helpers';
  const status = readFileSync('/proc/self/status', 'utf8');
  if (!/^Seccomp:/m.test(status)) return 'kernel without CONFIG_SECCOMP';
  if (!existsSync('/proc/sys/kernel/seccomp/actions_avail')) return 'kernel without seccomp filter support';
  return undefined;
}

export interface SeccompTools {
  dir: string;
  trySyscall: string;
  seccompExec: string;
  /** Writes a program as a 0644 file in the tools dir and returns its path. */
  writeFilter(name: string, program: Buffer): string;
  /** Compiles extra C source into the tools dir (0755) and returns the binary's path. */
  compile(name: string, source: string): string;
  cleanup(): void;
}

export function buildSeccompTools(): SeccompTools {
  const dir = mkdtempSync(join(tmpdir(), 'clawjail-seccomp-'));
  // Readable and searchable by everyone: the unprivileged-user tests exec from here.
  chmodSync(dir, 0o755);
  const build = (name: string, srcPath: string) => {
    const out = join(dir, name);
    const r = spawnSync('cc', ['-O2', '-Wall', '-o', out, srcPath], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cc ${srcPath} failed:\n${r.stderr}`);
    chmodSync(out, 0o755);
    return out;
  };
  return {
    dir,
    trySyscall: build('try-syscall', join(here, 'try-syscall.c')),
    seccompExec: build('seccomp-exec', join(here, 'seccomp-exec.c')),
    writeFilter(name, program) {
      const path = join(dir, name);
      writeFileSync(path, program, { mode: 0o644 });
      return path;
    },
    compile(name, source) {
      const src = join(dir, `${name}.c`);
      writeFileSync(src, source, { mode: 0o644 });
      return build(name, src);
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RunOptions {
  /** Run as this uid/gid (via setpriv when we are root). */
  asNobody?: boolean;
  input?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs argv under `filter` (a path, or 'none' for a no_new_privs-only control run). */
export function runUnder(tools: SeccompTools, filter: string, argv: string[], opts: RunOptions = {}): SpawnSyncReturns<string> {
  let cmd = [tools.seccompExec, filter, ...argv];
  if (opts.asNobody && process.getuid?.() === 0) {
    cmd = ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', ...cmd];
  }
  return spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 60_000, input: opts.input, env: opts.env ?? { PATH: '/usr/bin:/bin', HOME: tools.dir } });
}
