import { chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clawjail, IS_ROOT, packageRootFor, sh, UNPRIV, USERS } from '../helpers/cli.js';

// A bind's source is judged after resolving symlinks, whatever its destination: each case tries
// the dangerous bind and checks that nothing ran (exit 125, the reason named).
describe.each(USERS)('bind sources as %s', (as) => {
  let dir: string;
  const run = (args: string[]) => clawjail(['run', ...args], { as });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cj-binds-'));
    if (as === 'unprivileged' && IS_ROOT) chownSync(dir, UNPRIV.uid, UNPRIV.gid);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('--rw /:/host is refused, and the workload never runs', async () => {
    const marker = join(dir, 'marker');
    const r = await run(['--rw', '/:/host', '--', ...sh(`touch /host${marker}`)]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain('--rw /: the host root is never bound read-write');
    expect(existsSync(marker)).toBe(false);
  });

  it('a symlink to / is resolved and refused the same way', async () => {
    symlinkSync('/', join(dir, 'root-link'));
    const r = await run(['--rw', `${join(dir, 'root-link')}:/x`, '--', 'true']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain(`--rw ${join(dir, 'root-link')} (/): the host root is never bound read-write`);
  });

  it.each([
    ['--rw', '/proc', "the host's /proc is never bound"],
    ['--ro', '/proc/self', "the host's /proc is never bound"],
    ['--rw', '/sys/kernel', '/sys is never bound read-write'],
    ['--rw', '/dev/shm', '/dev is never bound read-write'],
  ])('%s %s is refused', async (flag, src, why) => {
    const r = await run([flag, `${src}:/x`, '--', 'true']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain(why);
  });

  it('a parent of its own --sandbox-dir is refused read-write, allowed read-only', async () => {
    const work = join(dir, 'work');
    mkdirSync(work);
    if (as === 'unprivileged' && IS_ROOT) chownSync(work, UNPRIV.uid, UNPRIV.gid);
    if (as === 'root') chownSync(work, 61000, 61000);
    const r = await run(['--sandbox-dir', work, '--rw', `${dir}:/x`, '--', 'true']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain(`--rw ${dir}: it contains ${work}, the sandbox's sandbox directory`);
    const ro = await run(['--sandbox-dir', work, '--ro', `${dir}:/x`, '--', 'true']);
    expect(ro.stderr).toBe('');
    expect(ro.exitCode).toBe(0);
  });

  it('the directory of its own profile is refused read-write (the workload could rewrite its policy)', async () => {
    const profile = join(dir, 'p.yaml');
    writeFileSync(profile, 'network:\n  mode: none\n');
    const r = await run(['--profile', profile, '--rw', `${dir}:/x`, '--', 'true']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain(`it contains ${profile}, the sandbox's profile`);
  });

  it('clawjail\'s own installation is refused read-write', async () => {
    const pkg = packageRootFor(as);
    const r = await run(['--rw', `${pkg}:/x`, '--', 'true']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain("the sandbox's clawjail installation");
    expect(r.stderr).toContain('install clawjail outside the directories you bind read-write');
  });

  it('an ordinary directory is still bound read-write', async () => {
    const data = join(dir, 'data');
    mkdirSync(data);
    if (as === 'unprivileged' && IS_ROOT) chownSync(data, UNPRIV.uid, UNPRIV.gid);
    if (as === 'root') chownSync(data, 61000, 61000);
    const r = await run(['--rw', `${data}:/data`, '--', ...sh('echo hi > /data/f && cat /data/f')]);
    expect(r.stdout.trim()).toBe('hi');
    expect(r.exitCode).toBe(0);
  });
});
