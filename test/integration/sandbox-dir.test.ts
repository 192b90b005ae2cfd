import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clawjail, IS_ROOT, py, sh, tryOp, UNPRIV, USERS } from '../helpers/cli.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cj-sbdir-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!IS_ROOT)('--sandbox-dir of a root caller (needs root)', () => {
  it('an existing directory of another owner is refused, naming both ways out', async () => {
    const work = join(dir, 'work');
    mkdirSync(work);
    const r = await clawjail(['run', '--sandbox-dir', work, '--', 'true']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain(`--sandbox-dir ${work} is owned by uid 0, but the sandbox runs as host uid 61000`);
    expect(r.stderr).toContain('pass --chown-sandbox-dir');
    expect(r.stderr).toContain('identity.uid');
  });

  it('--chown-sandbox-dir gives the tree to the sandbox uid without following symlinks out of it', async () => {
    const work = join(dir, 'work');
    mkdirSync(join(work, 'sub'), { recursive: true });
    writeFileSync(join(work, 'sub', 'f'), 'old\n');
    // A link to a host file: chown must change the link, never /etc/passwd.
    symlinkSync('/etc/passwd', join(work, 'passwd-link'));
    const r = await clawjail(['run', '--sandbox-dir', work, '--chown-sandbox-dir', '--', ...sh('echo new >> /sandbox/sub/f && touch /sandbox/created && cat /sandbox/sub/f')]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('old\nnew');
    expect(r.stderr).toContain(`--chown-sandbox-dir: ${work} and its contents now belong to uid 61000 (was 0)`);
    for (const p of [work, join(work, 'sub'), join(work, 'sub', 'f'), join(work, 'created')]) expect(statSync(p).uid, p).toBe(61000);
    expect(statSync('/etc/passwd').uid).toBe(0);
    expect(readFileSync(join(work, 'sub', 'f'), 'utf8')).toBe('old\nnew\n');
  });

  it('a directory clawjail creates gets the sandbox uid, and it says it created (and keeps) it', async () => {
    const work = join(dir, 'new', 'work');
    const r = await clawjail(['run', '--sandbox-dir', work, '--', ...sh('touch /sandbox/x')]);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain(`created --sandbox-dir ${work} for host uid 61000; it is kept after the run`);
    expect(statSync(work).uid).toBe(61000);
    expect(statSync(join(work, 'x')).uid).toBe(61000);
  });
});

describe.each(USERS)('--rw a directory the sandbox user cannot write, as %s', (as) => {
  it('warns, reports it as not writable, and the write fails with EACCES', async () => {
    const data = join(dir, 'data');
    mkdirSync(data, { mode: 0o755 });
    // The temp dir itself must be reachable by the unprivileged user.
    if (as === 'unprivileged') chownSync(dir, UNPRIV.uid, UNPRIV.gid);
    const status = join(dir, 'status.json');
    const r = await clawjail(['run', '--rw', `${data}:/data`, '--status-json', status, '--', ...py(tryOp('open("/data/x", "w")'))], { as });
    expect(r.stdout.trim()).toBe('EACCES');
    const uid = as === 'root' ? 61000 : UNPRIV.uid;
    expect(r.stderr).toContain(`--rw ${data}: the sandbox user (host uid ${uid}) cannot write to ${data} (owner uid 0, group 0, mode 755); /data is read-only in practice`);
    const report = JSON.parse(readFileSync(status, 'utf8')) as { report: { layers: { layer: string; detail: string }[] } };
    const fsLayer = report.report.layers.find((l) => l.layer === 'filesystem')!;
    expect(fsLayer.detail).toContain('bound read-write but not writable by the sandbox user: /data');
  });
});
