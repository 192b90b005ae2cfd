import { describe, expect, it } from 'vitest';
import { buildLandlockRequest, downgradeLandlock, FS, fsRightsOf, NET, RESTRICT, SCOPE } from '../../src/plan/landlock.js';

const want = buildLandlockRequest({
  readOnly: ['/proc', '/etc'],
  readExec: ['/usr'],
  readWrite: ['/sandbox', '/tmp'],
  devices: ['/dev/null'],
  connectPorts: [3128, 3129],
  bindPorts: [18789],
  logDenials: true,
});

const all13 = (1 << 13) - 1;

// One row per ABI: what is handled, what survives, what is reported missing.
const TABLE: [number, { status: string; fs: number; net: number; scoped: number; flags: number; netRules: number; missing: string[] }][] = [
  [0, { status: 'unavailable', fs: 0, net: 0, scoped: 0, flags: 0, netRules: 0, missing: ['landlock'] }],
  [1, { status: 'partial', fs: all13, net: 0, scoped: 0, flags: 0, netRules: 0, missing: ['fs.refer (ABI 2)', 'fs.truncate (ABI 3)', 'net.bind_tcp (ABI 4)', 'net.connect_tcp (ABI 4)', 'fs.ioctl_dev (ABI 5)', 'scope.abstract_unix_socket (ABI 6)', 'scope.signal (ABI 6)'] }],
  [2, { status: 'partial', fs: all13 | FS.REFER, net: 0, scoped: 0, flags: 0, netRules: 0, missing: ['fs.truncate (ABI 3)', 'net.bind_tcp (ABI 4)', 'net.connect_tcp (ABI 4)', 'fs.ioctl_dev (ABI 5)', 'scope.abstract_unix_socket (ABI 6)', 'scope.signal (ABI 6)'] }],
  [3, { status: 'partial', fs: all13 | FS.REFER | FS.TRUNCATE, net: 0, scoped: 0, flags: 0, netRules: 0, missing: ['net.bind_tcp (ABI 4)', 'net.connect_tcp (ABI 4)', 'fs.ioctl_dev (ABI 5)', 'scope.abstract_unix_socket (ABI 6)', 'scope.signal (ABI 6)'] }],
  [4, { status: 'partial', fs: all13 | FS.REFER | FS.TRUNCATE, net: NET.BIND_TCP | NET.CONNECT_TCP, scoped: 0, flags: 0, netRules: 3, missing: ['fs.ioctl_dev (ABI 5)', 'scope.abstract_unix_socket (ABI 6)', 'scope.signal (ABI 6)'] }],
  [5, { status: 'partial', fs: fsRightsOf(5), net: 3, scoped: 0, flags: 0, netRules: 3, missing: ['scope.abstract_unix_socket (ABI 6)', 'scope.signal (ABI 6)'] }],
  [6, { status: 'enforced', fs: fsRightsOf(5), net: 3, scoped: SCOPE.ABSTRACT_UNIX_SOCKET | SCOPE.SIGNAL, flags: 0, netRules: 3, missing: [] }],
  [7, { status: 'enforced', fs: fsRightsOf(5), net: 3, scoped: 3, flags: RESTRICT.LOG_NEW_EXEC_ON, netRules: 3, missing: [] }],
  [8, { status: 'enforced', fs: fsRightsOf(5), net: 3, scoped: 3, flags: RESTRICT.LOG_NEW_EXEC_ON, netRules: 3, missing: [] }],
  [9, { status: 'enforced', fs: fsRightsOf(5), net: 3, scoped: 3, flags: RESTRICT.LOG_NEW_EXEC_ON, netRules: 3, missing: [] }],
];

describe('file rules', () => {
  it('keeps only file rights on a single-file bind (directory rights would be EINVAL)', () => {
    const r = buildLandlockRequest({ files: ['/sandbox/AGENTS.md'], readOnly: [], readExec: ['/sandbox/AGENTS.md'], readWrite: [], devices: [], connectPorts: [], bindPorts: [], logDenials: false });
    expect(r.rules.find((x) => x.path === '/sandbox/AGENTS.md')!.access).toBe(FS.READ_FILE | FS.EXECUTE);
  });
});

describe('downgradeLandlock', () => {
  it.each(TABLE)('ABI %i', (abi, expected) => {
    const d = downgradeLandlock(abi, want);
    expect(d.status).toBe(expected.status);
    expect(d.missing).toEqual(expected.missing);
    if (abi === 0) {
      expect(d.ruleset).toBeNull();
      return;
    }
    const rs = d.ruleset!;
    expect(rs.abi).toBe(abi);
    expect(rs.handledFs).toBe(expected.fs);
    expect(rs.handledNet).toBe(expected.net);
    expect(rs.scoped).toBe(expected.scoped);
    expect(rs.restrictFlags).toBe(expected.flags);
    expect(rs.netRules.length).toBe(expected.netRules);
    // No rule grants a right the ruleset does not handle (the kernel would reject it with EINVAL).
    for (const r of rs.rules) expect(r.access & ~rs.handledFs).toBe(0);
    for (const r of rs.netRules) expect(r.access & ~rs.handledNet).toBe(0);
  });

  it('grants writes only beneath the writable trees, read+exec beneath the system, read-only on /proc and /etc', () => {
    const byPath = Object.fromEntries(want.rules.map((r) => [r.path, r.access]));
    expect(byPath['/']).toBe(FS.READ_DIR);
    expect(byPath['/proc']).toBe(FS.READ_FILE | FS.READ_DIR);
    expect(byPath['/usr']! & FS.WRITE_FILE).toBe(0);
    expect(byPath['/usr']! & FS.EXECUTE).toBe(FS.EXECUTE);
    expect(byPath['/sandbox']! & (FS.WRITE_FILE | FS.MAKE_REG | FS.REMOVE_FILE)).toBe(FS.WRITE_FILE | FS.MAKE_REG | FS.REMOVE_FILE);
    expect(byPath['/sandbox']! & (FS.MAKE_CHAR | FS.MAKE_BLOCK)).toBe(0);
    expect(byPath['/dev/null']).toBe(FS.READ_FILE | FS.WRITE_FILE | FS.TRUNCATE | FS.IOCTL_DEV);
    expect(want.netRules).toEqual([
      { port: 3128, access: NET.CONNECT_TCP },
      { port: 3129, access: NET.CONNECT_TCP },
      { port: 18789, access: NET.BIND_TCP },
    ]);
  });
});
