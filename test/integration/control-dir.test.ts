import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, lchownSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clawjail, IS_ROOT, UNPRIV } from '../helpers/cli.js';

// The control socket answers approvals: whoever can swap a directory on the way to it can collect
// them. Without XDG_RUNTIME_DIR a non-root caller's sockets are under $TMPDIR/clawjail-<uid>/, a
// name any local user can create first. The victim here is the unprivileged test user; the
// attacker is another uid that owns what it pre-created.
const ATTACKER = 1001;

describe.skipIf(!IS_ROOT)('control directory of a non-root caller (needs root to act as two users)', () => {
  let tmp: string;
  let base: string;
  const env = () => ({ TMPDIR: tmp });
  const asVictim = (args: string[]) => clawjail(args, { as: 'unprivileged', env: env() });

  beforeEach(() => {
    // A shared temp dir like /tmp: root's, world-writable, sticky.
    tmp = mkdtempSync(join(tmpdir(), 'clawjail-ctl-'));
    chmodSync(tmp, 0o1777);
    base = join(tmp, `clawjail-${UNPRIV.uid}`);
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  /** The attacker's socket where the victim's would be; counts who connects. */
  async function plantSocket(dir: string): Promise<{ connections: () => number; close: () => Promise<void> }> {
    mkdirSync(dir, { recursive: true, mode: 0o777 });
    let n = 0;
    const server = net.createServer((s) => {
      n++;
      s.destroy();
    });
    const path = join(dir, 'control.sock');
    await new Promise<void>((r) => server.listen(path, r));
    chmodSync(path, 0o777);
    chownSync(dir, ATTACKER, ATTACKER);
    lchownSync(path, ATTACKER, ATTACKER);
    return { connections: () => n, close: () => new Promise((r) => server.close(() => r())) };
  }

  it('a base directory pre-created by another user (0777) is refused by approvals, approve and run', async () => {
    mkdirSync(base, { mode: 0o777 });
    chmodSync(base, 0o777);
    chownSync(base, ATTACKER, ATTACKER);
    const evil = await plantSocket(join(base, 'victim'));
    try {
      for (const args of [['approvals'], ['approvals', '--name', 'victim'], ['approve', 'abcd', '--name', 'victim']]) {
        const r = await asVictim(args);
        expect(r.exitCode, args.join(' ')).toBe(125);
        expect(r.stderr).toContain(`refusing to use the control socket under ${base}`);
        expect(r.stderr).toContain(`${base} is owned by uid ${ATTACKER}, not by you (uid ${UNPRIV.uid})`);
      }
      const run = await asVictim(['run', '--approvals', '--name', 'victim', '--', 'true']);
      expect(run.exitCode).toBe(125);
      expect(run.stderr).toContain(`${base} is owned by uid ${ATTACKER}, not by you (uid ${UNPRIV.uid})`);
      expect(evil.connections()).toBe(0);
    } finally {
      await evil.close();
    }
  });

  it('an attacker-owned sandbox directory inside the victim\'s own base is refused', async () => {
    mkdirSync(base, { mode: 0o700 });
    chownSync(base, UNPRIV.uid, UNPRIV.gid);
    // Planted while the base was briefly open (or by root's mistake): the socket dir is not ours.
    const evil = await plantSocket(join(base, 'victim'));
    try {
      const r = await asVictim(['approvals', '--name', 'victim']);
      expect(r.exitCode).toBe(125);
      expect(r.stderr).toContain(`${join(base, 'victim')} is owned by uid ${ATTACKER}, not by you (uid ${UNPRIV.uid})`);
      expect(evil.connections()).toBe(0);
    } finally {
      await evil.close();
    }
  });

  it('the victim\'s own base with a loose mode is refused, not silently used', async () => {
    mkdirSync(base, { mode: 0o777 });
    chmodSync(base, 0o777);
    chownSync(base, UNPRIV.uid, UNPRIV.gid);
    const r = await asVictim(['approvals']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain(`${base} has mode 777, not 700`);
  });

  it('a base that is another user\'s symlink to a directory of the victim is refused', async () => {
    const real = join(tmp, 'victim-real');
    mkdirSync(real, { mode: 0o700 });
    chownSync(real, UNPRIV.uid, UNPRIV.gid);
    symlinkSync(real, base);
    lchownSync(base, ATTACKER, ATTACKER);
    const r = await asVictim(['approvals']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain(`${base} is a symlink owned by uid ${ATTACKER}`);
  });

  it('a temp directory writable by all and not sticky is refused as a parent', async () => {
    chmodSync(tmp, 0o777);
    const r = await asVictim(['run', '--approvals', '--name', 'x', '--', 'true']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain(`${tmp} is writable by others (mode 777) and not sticky`);
  });

  it('with nothing planted, run creates the base and sandbox dir as the victim\'s, mode 700, and approvals finds no sandbox', async () => {
    const r = await asVictim(['run', '--approvals', '--name', 'mine', '--', 'true']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    for (const d of [base]) {
      const st = statSync(d);
      expect([st.uid, st.mode & 0o7777]).toEqual([UNPRIV.uid, 0o700]);
    }
    const a = await asVictim(['approvals']);
    expect(a.exitCode).toBe(125);
    expect(a.stderr).toContain(`no running sandbox: no control socket under ${base}`);
  });
});
