import { execa } from 'execa';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROC_MASKED, PROC_READ_ONLY } from '../../src/plan/mounts.js';
import { clawjail, IS_ROOT, packageRootFor, py, ROOT, USERS } from '../helpers/cli.js';

// What the sandbox can learn about the host it runs on, tried from inside: each test reads or
// writes the place a workload would look, and checks the exact answer.

/** Prints one JSON line: for each path, what reading/listing and writing/creating it gives. */
const PROBE = `
import errno, json, os
def attempt(f):
    try:
        return f()
    except OSError as e:
        return errno.errorcode[e.errno]
def write(p):
    with open(p, "w"):
        return "OK"
paths = json.loads(os.environ["PATHS"]) if "PATHS" in os.environ else []
out = {}
for p in paths:
    if os.path.isdir(p):
        out[p] = {"list": attempt(lambda: sorted(os.listdir(p))), "create": attempt(lambda: write(p + "/x"))}
    elif os.path.lexists(p):
        out[p] = {"read": attempt(lambda: open(p, "rb").read().decode()), "write": attempt(lambda: write(p))}
    else:
        out[p] = None
mounts = {}
for line in open("/proc/self/mountinfo"):
    f = line.split()
    mounts[f[4]] = {"root": f[3], "options": f[5].split(",")}
print(json.dumps({"paths": out, "mounts": mounts, "cmdline1": attempt(lambda: open("/proc/1/cmdline", "rb").read().decode()),
    "exe1": attempt(lambda: os.readlink("/proc/1/exe")), "environ1": attempt(lambda: open("/proc/1/environ", "rb").read().decode()),
    "maps1": attempt(lambda: open("/proc/1/maps").read()), "fd1": attempt(lambda: os.listdir("/proc/1/fd")),
    "mem1": attempt(lambda: open("/proc/1/mem", "rb").read(1))}))
`;

interface Probe {
  paths: Record<string, { list?: string[] | string; create?: string; read?: string; write?: string } | null>;
  mounts: Record<string, { root: string; options: string[] }>;
  cmdline1: string;
  exe1: string;
  environ1: string;
  maps1: string;
  fd1: string | string[];
  mem1: string;
}

const hostKind = (p: string): 'dir' | 'file' | 'missing' => {
  try {
    return statSync(p).isDirectory() ? 'dir' : 'file';
  } catch {
    return 'missing';
  }
};

describe.each(USERS)('what the sandbox sees of its host, as %s', (as) => {
  const probe = async (args: string[], paths: string[] = []): Promise<Probe> => {
    // PATHS reaches the workload through --env; the script itself stays one fixed string.
    const r = await clawjail(['run', '--env', 'PATHS', ...args, '--', ...py(PROBE)], { as, env: { PATHS: JSON.stringify(paths) } });
    expect(r.stderr).not.toMatch(/Traceback/);
    expect(r.exitCode).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Probe;
  };

  it('PID 1 shows the name clawjail-init, not where it is installed; its exe, environ, maps, fds and memory are closed (EACCES), landlock on or off', async () => {
    for (const landlock of ['best-effort', 'off']) {
      const p = await probe(['--landlock', landlock]);
      expect(p.cmdline1).toBe('clawjail-init\0');
      // landlock off: what protects init is its own non-dumpable flag and its capabilities.
      expect([p.exe1, p.environ1, p.maps1, p.fd1, p.mem1]).toEqual(['EACCES', 'EACCES', 'EACCES', 'EACCES', 'EACCES']);
      // The install's host path appears nowhere a workload can read it from.
      const text = JSON.stringify(p);
      for (const installed of new Set([ROOT, packageRootFor(as)])) expect(text).not.toContain(installed);
    }
  });

  it('the temporary /sandbox is named at random: mountinfo shows neither the supervisor pid nor the sandbox name', async () => {
    // Unnamed: the default sandbox name is clawjail-<supervisor pid>-<n>, which used to be in the path.
    const unnamed = await probe([]);
    const root = unnamed.mounts['/sandbox']!.root;
    expect(root.split('/').pop()).toMatch(/^clawjail-sbx-[A-Za-z0-9]{6}$/);
    const name = `tenant-${Date.now().toString(36)}`;
    const named = await probe(['--name', name]);
    expect(named.mounts['/sandbox']!.root.split('/').pop()).toMatch(/^clawjail-sbx-[A-Za-z0-9]{6}$/);
    expect(JSON.stringify(named.mounts)).not.toContain(name);
  });

  it('/proc/cmdline and the kernel-debug files read empty and cannot be written; masked directories are empty and read-only (EROFS)', async () => {
    // The host's own /proc says which of these this kernel has, and that they are not empty here.
    expect(readFileSync('/proc/cmdline', 'utf8').length).toBeGreaterThan(0);
    const present = PROC_MASKED.filter((p) => hostKind(p) !== 'missing');
    expect(present).toContain('/proc/cmdline');
    for (const landlock of ['best-effort', 'off']) {
      const p = await probe(['--landlock', landlock], [...PROC_MASKED]);
      for (const path of PROC_MASKED) {
        const kind = hostKind(path);
        if (kind === 'missing') expect(p.paths[path], path).toBeNull();
        else if (kind === 'dir') expect(p.paths[path], path).toEqual({ list: [], create: 'EROFS' });
        else expect(p.paths[path], path).toEqual({ read: '', write: 'EROFS' });
        if (kind !== 'missing') expect(p.mounts[path]?.options[0], path).toBe('ro');
      }
    }
  });

  it('/proc/sys, /proc/irq, /proc/bus, /proc/fs, /proc/sysrq-trigger are read-only mounts; /proc itself and the rest of it stay readable', async () => {
    const p = await probe(['--landlock', 'off'], ['/proc/self/status']);
    for (const path of PROC_READ_ONLY) {
      if (hostKind(path) === 'missing') expect(p.mounts[path], path).toBeUndefined();
      else expect(p.mounts[path]?.options[0], path).toBe('ro');
    }
    expect(p.mounts['/proc']!.options[0]).toBe('rw');
    expect(p.paths['/proc/self/status']!.read).toMatch(/^Name:\tpython3\n/);
  });

  it.skipIf(!existsSync('/proc/sys/kernel/ns_last_pid'))(
    'a world-writable sysctl (/proc/sys/kernel/ns_last_pid, mode 0666) cannot be opened for writing: EROFS (skipped on kernels without CONFIG_CHECKPOINT_RESTORE)',
    async () => {
      expect(statSync('/proc/sys/kernel/ns_last_pid').mode & 0o777).toBe(0o666);
      // landlock off, so that only the read-only mount stands in the way of the open
      const p = await probe(['--landlock', 'off'], ['/proc/sys/kernel/ns_last_pid']);
      expect(p.paths['/proc/sys/kernel/ns_last_pid']).toMatchObject({ write: 'EROFS' });
      expect(p.paths['/proc/sys/kernel/ns_last_pid']!.read).toMatch(/^\d+\n$/);
    },
  );
});

// A uid that is neither nobody (the kernel's overflow uid, which is what a root-owned /proc file
// shows as inside) nor in /etc/passwd, with no HOME: what containers running arbitrary uids do.
const STRANGER = 4242;
describe.skipIf(!IS_ROOT)(`init as seen by an unprivileged caller whose uid (${STRANGER}) is not the overflow uid (skipped: needs root to switch uid)`, () => {
  it('init is non-dumpable: its /proc files belong to root of the host (the overflow uid inside), not to the shared uid', async () => {
    const overflow = Number(readFileSync('/proc/sys/kernel/overflowuid', 'utf8'));
    expect(overflow).not.toBe(STRANGER);
    const cli = join(packageRootFor('unprivileged'), 'bin', 'clawjail.js');
    const r = await execa('setpriv', ['--reuid', String(STRANGER), '--regid', String(STRANGER), '--clear-groups', process.execPath, cli, 'run', '--landlock', 'off', '--', ...py('import os\nprint(os.getuid(), os.stat("/proc/self/environ").st_uid, os.stat("/proc/1/environ").st_uid)')], {
      reject: false,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      extendEnv: false,
      cwd: tmpdir(),
      stdin: 'ignore',
      timeout: 30_000,
    });
    expect(r.stderr).toBe('');
    // The workload and init share uid 4242; a dumpable init's files would be 4242's too.
    expect(r.stdout.trim()).toBe(`${STRANGER} ${STRANGER} ${overflow}`);
  });
});
