import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadProfile } from '../../src/profile/load.js';
import { mergeProfiles } from '../../src/profile/merge.js';

const dir = mkdtempSync(join(tmpdir(), 'cj-profile-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const fail = (f: () => unknown): { code: string; message: string } => {
  try {
    f();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected an error');
};

describe('mergeProfiles', () => {
  it.each([
    ['objects merge key by key', { a: { x: 1, y: 2 } }, { a: { y: 3 } }, { a: { x: 1, y: 3 } }],
    ['lists are appended, duplicates dropped', { l: [1, 2] }, { l: [2, 3] }, { l: [1, 2, 3] }],
    ['lists of objects dedupe by value', { l: [{ h: 'a' }] }, { l: [{ h: 'a' }, { h: 'b' }] }, { l: [{ h: 'a' }, { h: 'b' }] }],
    ['scalars are replaced', { m: 'proxy' }, { m: 'none' }, { m: 'none' }],
    ['undefined keeps the lower value', { m: 'proxy' }, { m: undefined }, { m: 'proxy' }],
  ])('%s', (_label, lower, upper, expected) => {
    expect(mergeProfiles(lower, upper)).toEqual(expected);
  });
});

describe('loadProfile', () => {
  it('layers a file on the default profile and CLI overrides on top', () => {
    const p = file('a.yaml', 'filesystem:\n  tmpSize: 64m\n  ro: [{src: /opt}]\n');
    const { profile, sources } = loadProfile({ profile: p, overrides: [{ filesystem: { ro: [{ src: '/srv' }] } }] });
    expect(profile.filesystem.tmpSize).toBe('64m');
    expect(profile.filesystem.ro.map((b) => b.src)).toEqual(['/opt', '/srv']);
    expect(profile.filesystem.system).toContain('/usr');
    expect(sources.at(-1)).toBe(p);
    expect(sources[0]).toMatch(/profiles\/default\.yaml$/);
  });

  it('extends: none starts from nothing', () => {
    const p = file('none.yaml', 'extends: none\n');
    expect(loadProfile({ profile: p }).profile.filesystem.system).toEqual([]);
  });

  it('names every bad field with its path', () => {
    const p = file('bad.yaml', 'filesystem:\n  tmpSize: lots\n  ro: [{src: relative/path}]\nidentity:\n  uid: 0\nsurprise: 1\n');
    const e = fail(() => loadProfile({ profile: p }));
    expect(e.code).toBe('ERR_CLAWJAIL_PROFILE');
    expect(e.message).toContain('filesystem.tmpSize: expected a size like 512m');
    expect(e.message).toContain('filesystem.ro[0].src: bind source must be an absolute host path');
    expect(e.message).toContain('identity.uid: identity.uid must not be 0');
    expect(e.message).toMatch(/\(top level\): Unrecognized key.*surprise/);
  });

  it('reports YAML syntax errors with line and column', () => {
    const p = file('syntax.yaml', 'filesystem:\n  ro: [unclosed\n');
    const e = fail(() => loadProfile({ profile: p }));
    expect(e.code).toBe('ERR_CLAWJAIL_PROFILE');
    expect(e.message).toMatch(/not valid YAML\/JSON \(line \d+, column \d+\)/);
  });

  it('refuses duplicate keys instead of silently taking one', () => {
    const p = file('dup.yaml', 'name: a\nname: b\n');
    expect(fail(() => loadProfile({ profile: p })).code).toBe('ERR_CLAWJAIL_PROFILE');
  });

  it('suggests the field meant for a misspelt key, at any depth, and lists the known ones otherwise', () => {
    const p = file('typo.yaml', 'netwrok: {}\nnetwork:\n  alow: []\nfilesystem:\n  ro: [{src: /x, dst: /y}]\n  zzzzzz: 1\n');
    const e = fail(() => loadProfile({ profile: p }));
    expect(e.code).toBe('ERR_CLAWJAIL_PROFILE');
    expect(e.message).toContain(`(top level): Unrecognized key: "netwrok" ('netwrok': did you mean 'network'?)`);
    expect(e.message).toContain(`network: Unrecognized key: "alow" ('alow': did you mean 'allow'?)`);
    expect(e.message).toContain(`filesystem.ro[0]: Unrecognized key: "dst" ('dst': did you mean 'dest'?)`);
    expect(e.message).toMatch(/filesystem: Unrecognized key: "zzzzzz" \(known here: sandboxDir, .*tmpSize, ro, rw\)/);
  });

  it('refuses a YAML alias bomb with a named profile error, not an internal error', () => {
    const levels = 'abcdefghi'.split('');
    const text = levels.map((l, i) => (i === 0 ? `${l}: &${l} ["x","x","x","x","x","x","x","x","x"]` : `${l}: &${l} [${Array(9).fill(`*${levels[i - 1]}`).join(',')}]`)).join('\n');
    const p = file('bomb.yaml', text + '\n');
    const e = fail(() => loadProfile({ profile: p }));
    expect(e.code).toBe('ERR_CLAWJAIL_PROFILE');
    expect(e.message).toContain(`profile ${p}: its YAML aliases (*name) expand to more than 100 copies`);
    // A few aliases are fine.
    const ok = file('alias-ok.yaml', 'x-ports: &ports [8080]\nlandlock:\n  bindPorts: *ports\n  connectPorts: *ports\n');
    expect(fail(() => loadProfile({ profile: ok })).message).toContain('x-ports'); // unknown key, but parsed past the aliases
  });

  it('refuses a profile file over 1 MiB before parsing it', () => {
    const p = file('huge.yaml', '#'.repeat((1 << 20) + 1));
    const e = fail(() => loadProfile({ profile: p }));
    expect(e.code).toBe('ERR_CLAWJAIL_PROFILE');
    expect(e.message).toContain(`profile ${p} is ${(1 << 20) + 1} bytes, over the 1048576-byte limit`);
  });

  it('detects extends cycles and unknown profiles', () => {
    const a = join(dir, 'c1.yaml');
    const b = join(dir, 'c2.yaml');
    writeFileSync(a, `extends: ${b}\n`);
    writeFileSync(b, `extends: ${a}\n`);
    expect(fail(() => loadProfile({ profile: a })).message).toContain('cycle');
    const e = fail(() => loadProfile({ profile: 'no-such-profile' }));
    expect(e.message).toContain("profile 'no-such-profile' is neither a built-in profile nor an existing file");
  });

  it.each(['default', 'strict', 'openclaw'])('built-in profile %s loads and validates', (name) => {
    const { profile, sources } = loadProfile({ profile: name });
    expect(sources.at(-1)).toMatch(new RegExp(`profiles/${name}\\.yaml$`));
    expect(profile.filesystem.system).toContain('/usr');
  });

  it('strict has no network and requires landlock', () => {
    const { profile } = loadProfile({ profile: 'strict' });
    expect(profile.network.mode).toBe('none');
    expect(profile.landlock.mode).toBe('required');
  });

  it('reads JSON profiles too', () => {
    const p = file('j.json', '{"process": {"hostname": "agent1"}}');
    expect(loadProfile({ profile: p }).profile.process.hostname).toBe('agent1');
  });
});
