// Container conditions built on this machine, no image or registry: clawjail run under
//  - `bwrap --unshare-user --disable-userns`: a user-namespaced container that forbids nested user
//    namespaces (clone then fails with ENOSPC); only the caller's uid is mapped in it, so root there
//    is "root in a rootless container" with no other uid to drop to;
//  - container-sim: a Docker-like seccomp filter (namespace flags of clone/unshare and mount →
//    EPERM, clone3 → ENOSYS) in the initial user namespace, where every uid exists;
//  - container-sim --podman: user namespaces allowed but sethostname refused (EPERM), as podman's
//    default profile does, which a probe that only creates a user namespace does not predict;
//  - masked-proc: a bwrap-built root whose only /proc has files masked as Docker masks them
//    (bind-mounted /dev/null): the kernel then refuses a fresh procfs in a new user namespace.
import { execa, type Result } from 'execa';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IS_ROOT, packageRootFor, UNPRIV } from './cli.js';

export type ContainerKind = 'bwrap' | 'seccomp' | 'podman' | 'masked-proc';
export type As = 'root' | 'unprivileged';

const here = dirname(fileURLToPath(import.meta.url));

/** Why container conditions cannot be built here, or undefined when they can. */
export function containerUnsupportedReason(kind: ContainerKind): string | undefined {
  if (kind === 'masked-proc') {
    if (spawnSync('bwrap', ['--version']).status !== 0) return 'bubblewrap (bwrap) is not installed (apt-get install bubblewrap)';
    if (spawnSync('unshare', ['--user', 'true']).status !== 0) return 'this host refuses user namespaces';
    if (MASKED.filter((p) => existsSync(p)).length === 0) return `none of ${MASKED.join(', ')} exists to mask`;
    return undefined;
  }
  if (kind === 'bwrap') {
    if (spawnSync('bwrap', ['--version']).status !== 0) return 'bubblewrap (bwrap) is not installed (apt-get install bubblewrap)';
    const r = spawnSync('bwrap', ['--unshare-user', '--disable-userns', '--dev-bind', '/', '/', '--', 'true']);
    if (r.status !== 0) return `bwrap --disable-userns does not work here: ${r.stderr?.toString().trim()}`;
    return undefined;
  }
  if (spawnSync('cc', ['--version']).status !== 0) return 'no C compiler (cc) to build container-sim';
  // The podman stand-in lets namespaces be created and refuses only sethostname: that needs a
  // host that allows user namespaces in the first place.
  if (kind === 'podman' && spawnSync('unshare', ['--user', 'true']).status !== 0) return 'this host refuses user namespaces, so a container that allows them cannot be simulated';
  return undefined;
}

let tools: { dir: string; sim: string } | undefined;

/** Builds container-sim into a world-readable temp dir (the unprivileged runs exec it). */
export function containerSim(): string {
  if (tools) return tools.sim;
  const dir = mkdtempSync(join(tmpdir(), 'clawjail-csim-'));
  chmodSync(dir, 0o755);
  const sim = join(dir, 'container-sim');
  const r = spawnSync('cc', ['-O2', '-Wall', '-o', sim, join(here, 'container-sim.c')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cc container-sim.c failed:\n${r.stderr}`);
  chmodSync(sim, 0o755);
  tools = { dir, sim };
  return sim;
}

export function removeContainerSim(): void {
  if (tools) rmSync(tools.dir, { recursive: true, force: true });
  tools = undefined;
}

const MASKED = ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug'];

/** The argv prefix that puts a command "in the container", as `as`. */
export function containerPrefix(kind: ContainerKind, as: As, extra: { pidNamespace?: boolean } = {}): string[] {
  const user = as === 'unprivileged' && IS_ROOT ? ['setpriv', '--reuid', String(UNPRIV.uid), '--regid', String(UNPRIV.gid), '--clear-groups'] : [];
  if (kind === 'masked-proc') {
    const links = ['bin', 'sbin', 'lib', 'lib32', 'lib64'].flatMap((d) => {
      try {
        return [['--symlink', readlinkSync(`/${d}`), `/${d}`]];
      } catch {
        return existsSync(`/${d}`) ? [['--ro-bind', `/${d}`, `/${d}`]] : [];
      }
    });
    const pkg = packageRootFor(as);
    // node_modules may be a link to elsewhere (a worktree sharing one): bind where it really is
    const modules = realpathSync(join(pkg, 'node_modules'));
    const extra = modules.startsWith(pkg + '/') ? [] : ['--ro-bind', modules, modules];
    return [
      ...user, 'bwrap', '--unshare-user', '--unshare-pid', '--ro-bind', '/usr', '/usr', ...links.flat(), '--ro-bind', '/etc', '/etc',
      '--ro-bind', pkg, pkg, ...extra, '--bind', '/tmp', '/tmp', '--dev', '/dev', '--proc', '/proc',
      ...MASKED.filter((p) => existsSync(p)).flatMap((p) => ['--ro-bind', '/dev/null', p]), '--',
    ];
  }
  if (kind === 'bwrap') {
    // --die-with-parent: a test that fails half-way must not leave a pid namespace running
    const pid = extra.pidNamespace ? ['--unshare-pid', '--as-pid-1', '--die-with-parent', '--proc', '/proc'] : [];
    return [...user, 'bwrap', '--unshare-user', '--disable-userns', '--dev-bind', '/', '/', ...pid, '--'];
  }
  return [...user, containerSim(), ...(kind === 'podman' ? ['--podman'] : [])];
}

/** `clawjail ARGS…` inside the container stand-in. */
export function clawjailIn(kind: ContainerKind, as: As, args: string[], options: { env?: Record<string, string>; pidNamespace?: boolean } = {}) {
  const cli = join(packageRootFor(as), 'bin', 'clawjail.js');
  const argv = [...containerPrefix(kind, as, options), process.execPath, cli, ...args];
  return execa(argv[0]!, argv.slice(1), {
    reject: false,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CLAWJAIL_LOG_FORMAT: 'json', ...options.env },
    extendEnv: false,
    timeout: 30_000,
    cwd: tmpdir(),
    stdin: 'ignore',
  });
}

export type RunResult = Result;

/** Log records (JSON lines) clawjail wrote to stderr. */
export function logRecords(stderr: string): { level: number; msg: string; mode?: string }[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string; mode?: string });
}
