import { describe, expect, it } from 'vitest';
import type { ClawjailError } from '../../src/errors.js';
import { parseIdMap, type HostFacts } from '../../src/host/probe.js';
import { buildInPlacePlan, inPlaceSeccomp, type InPlacePlanInput } from '../../src/plan/in-place.js';
import { FS, NET } from '../../src/plan/landlock.js';
import { chooseIdentity, chooseMode, isNamespacesRefusal } from '../../src/plan/mode.js';
import { compileSeccomp, syscallTable } from '../../src/plan/seccomp/index.js';
import { loadProfile } from '../../src/profile/load.js';
import { describeRet, runSeccompProgram } from '../helpers/bpf-interp.js';
import { hostFacts } from '../helpers/host-facts.js';

const profile = (raw: Record<string, unknown> = {}) => loadProfile({ overrides: [raw] }).profile;

// A likely container whose user-namespace support is not yet known.
const host = (over: Partial<HostFacts> = {}): HostFacts =>
  hostFacts({ userns: { available: 'unknown' }, seccomp: { available: true, alreadyFiltered: true }, container: { inContainer: true, evidence: ['/.dockerenv exists'] }, ...over });

function thrown(fn: () => unknown): ClawjailError {
  try {
    fn();
  } catch (e) {
    return e as ClawjailError;
  }
  throw new Error('expected a throw');
}

const REFUSED = { step: 'namespaces.clone', errno: 1, reason: "EPERM: the container's seccomp profile forbids creating namespaces" };

describe('chooseMode', () => {
  it.each([
    // mode, userns, refused attempt → mode (or the error code)
    ['auto', 'unknown', undefined, 'namespaces'],
    ['auto', true, undefined, 'namespaces'],
    ['auto', false, undefined, 'in-place'],
    ['auto', 'unknown', REFUSED, 'in-place'],
    ['in-place', true, undefined, 'in-place'],
    ['in-place', 'unknown', REFUSED, 'in-place'],
    ['namespaces', 'unknown', undefined, 'namespaces'],
    ['namespaces', true, undefined, 'namespaces'],
    ['namespaces', false, undefined, 'ERR_CLAWJAIL_LAYER_REQUIRED'],
    ['namespaces', 'unknown', REFUSED, 'ERR_CLAWJAIL_LAYER_REQUIRED'],
  ] as const)('mode %s, userns %s, refused %o → %s', (mode, available, refused, expected) => {
    const h = host({ userns: available === false ? { available, errno: 28, reason: 'ENOSPC: nested user namespaces are forbidden' } : { available } });
    const p = profile({ mode });
    if (expected.startsWith('ERR_')) {
      const e = thrown(() => chooseMode(p, h, refused));
      expect(e.code).toBe(expected);
      expect(e.exitCode).toBe(125);
      expect(e.message).toContain(refused ? 'EPERM' : 'ENOSPC');
      return;
    }
    const d = chooseMode(p, h, refused);
    expect(d.mode).toBe(expected);
    // auto never falls back silently; an explicit choice needs no warning
    expect(d.warning !== undefined).toBe(mode === 'auto' && expected === 'in-place');
    if (d.warning) expect(d.warning).toContain(refused ? 'EPERM' : 'ENOSPC');
  });

  it('defaults to auto in the profile', () => {
    expect(profile().mode).toBe('auto');
  });
});

describe('isNamespacesRefusal', () => {
  it.each([
    [{ step: 'namespaces.clone', errno: 1 }, true],
    [{ step: 'namespaces.clone', errno: 28 }, true],
    [{ step: 'uts.sethostname', errno: 1 }, true],
    [{ step: 'mount.proc', errno: 1 }, true],
    [{ step: 'userns.uid_map', errno: 1 }, true],
    [{ step: 'namespaces.clone', errno: 12 }, false], // ENOMEM is not a policy
    [{ step: 'mount.bind_source', errno: 2 }, false],
    [{ step: 'exec', errno: 2 }, false],
    [{ step: 'landlock.restrict_self', errno: 1 }, false],
    [{}, false],
  ])('%o → %s', (failure, expected) => {
    expect(isNamespacesRefusal(failure)).toBe(expected);
  });
});

describe('parseIdMap and chooseIdentity', () => {
  it('reads uid_map lines; the initial namespace\'s whole map is "no restriction"', () => {
    expect(parseIdMap('         0          0 4294967295\n')).toBeUndefined();
    expect(parseIdMap('         0       1000          1\n         1     100000      65536\n')).toEqual([
      { inside: 0, outside: 1000, count: 1 },
      { inside: 1, outside: 100000, count: 65536 },
    ]);
  });

  const rootless = { uid: parseIdMap('0 1000 1\n1 100000 65536')!, gid: parseIdMap('0 1000 1\n1 100000 65536')! };
  const onlyRoot = { uid: parseIdMap('0 0 1')!, gid: parseIdMap('0 0 1')! };
  const root = (idMap?: HostFacts['idMap']) => host({ isRoot: true, uid: 0, gid: 0, ...(idMap ? { idMap } : {}) });

  it.each([
    ['unprivileged caller keeps its ids', host(), {}, 'namespaces', { uid: 1000, gid: 1000, change: false }],
    ['root, every id mapped', root(), {}, 'in-place', { uid: 61000, gid: 61000, change: true }],
    ['root, rootless container mapping 1..65536', root(rootless), {}, 'namespaces', { uid: 61000, gid: 61000, change: true }],
    ['root, only uid 0 mapped, rootWorkload in-place', root(onlyRoot), { inPlace: { rootWorkload: true } }, 'in-place', { uid: 0, gid: 0, change: false }],
    ['root, identity outside the rootless range', root(rootless), { identity: { uid: 70000, gid: 70000 } }, 'in-place', 'ERR_CLAWJAIL_IDENTITY'],
    ['root, only uid 0 mapped', root(onlyRoot), {}, 'in-place', 'ERR_CLAWJAIL_IDENTITY'],
    ['root, only uid 0 mapped, rootWorkload does not apply to namespaces', root(onlyRoot), { inPlace: { rootWorkload: true } }, 'namespaces', 'ERR_CLAWJAIL_IDENTITY'],
  ] as const)('%s', (_label, h, raw, mode, expected) => {
    const p = profile(raw as Record<string, unknown>);
    if (typeof expected === 'string') {
      const e = thrown(() => chooseIdentity(p, h, mode));
      expect(e.code).toBe(expected);
      expect(e.step).toBe('identity');
      expect(e.hint).toMatch(/identity\.uid|map a range of uids/);
      return;
    }
    expect(chooseIdentity(p, h, mode)).toMatchObject(expected);
  });

  it('suggests a mapped uid', () => {
    const e = thrown(() => chooseIdentity(profile({ identity: { uid: 70000, gid: 70000 } }), root(rootless), 'namespaces'));
    expect(e.hint).toContain('such as 61000');
  });
});

const X86 = 0xc000003e;
const nr = (name: string) => syscallTable('x86_64').byName.get(name)!;

describe('inPlaceSeccomp', () => {
  const program = compileSeccomp(inPlaceSeccomp(profile().seccomp), 'x86_64').program;
  const call = (name: string, ...args: number[]) => describeRet(runSeccompProgram(program, { nr: nr(name), arch: X86, args: args.map(BigInt) }).ret);
  const SOCK_CLOEXEC = 0x80000;
  const SOCK_NONBLOCK = 0x800;

  it.each([
    ['TCP over IPv4', [2, 1, 0], 'allow'],
    ['TCP over IPv4, explicit protocol, CLOEXEC|NONBLOCK', [2, 1 | SOCK_CLOEXEC | SOCK_NONBLOCK, 6], 'allow'],
    ['TCP over IPv6', [10, 1, 0], 'allow'],
    ['unix stream', [1, 1, 0], 'allow'],
    ['unix datagram', [1, 2, 0], 'allow'],
    ['UDP over IPv4', [2, 2, 0], 'errno:1'],
    ['UDP over IPv6', [10, 2 | SOCK_CLOEXEC, 17], 'errno:1'],
    ['raw ICMP', [2, 3, 1], 'errno:1'],
    ['MPTCP (a stream landlock does not cover)', [2, 1, 262], 'errno:1'],
    ['SCTP stream', [2, 1, 132], 'errno:1'],
    ['netlink route', [16, 3, 0], 'errno:1'],
    ['packet', [17, 3, 0], 'errno:1'],
    ['high bits do not smuggle a family', [2 + 2 ** 32, 2, 0], 'errno:1'],
  ] as const)('socket: %s → %s', (_label, args, expected) => {
    expect(call('socket', ...args)).toBe(expected);
  });

  it('refuses TCP Fast Open sends (an implicit connect landlock does not check) with EOPNOTSUPP, and nothing else of send*', () => {
    const MSG_FASTOPEN = 0x20000000;
    const MSG_NOSIGNAL = 0x4000;
    expect(call('sendto', 3, 0, 10, MSG_FASTOPEN, 0, 16)).toBe('errno:95');
    expect(call('sendto', 3, 0, 10, MSG_FASTOPEN | MSG_NOSIGNAL, 0, 16)).toBe('errno:95');
    expect(call('sendmsg', 3, 0, MSG_FASTOPEN)).toBe('errno:95');
    expect(call('sendmmsg', 3, 0, 1, MSG_FASTOPEN)).toBe('errno:95');
    expect(call('sendto', 3, 0, 10, MSG_NOSIGNAL, 0, 0)).toBe('allow');
    expect(call('sendmsg', 3, 0, 0)).toBe('allow');
    expect(call('sendmmsg', 3, 0, 1, 0)).toBe('allow');
  });

  it('keeps the namespace and mount denials even when a profile allows them back', () => {
    const lax = inPlaceSeccomp(profile({ seccomp: { allow: [{ syscall: 'mount', reason: 'test' }, { syscall: 'setns', reason: 'test' }] } }).seccomp);
    const p = compileSeccomp(lax, 'x86_64').program;
    const run = (name: string, ...args: number[]) => describeRet(runSeccompProgram(p, { nr: nr(name), arch: X86, args: args.map(BigInt) }).ret);
    expect(run('mount')).toBe('errno:1');
    expect(run('setns')).toBe('errno:1');
    expect(run('unshare', 0x10000000)).toBe('errno:1'); // CLONE_NEWUSER
    expect(run('clone', 0x40000000 | 17)).toBe('errno:1'); // CLONE_NEWNET
    expect(run('clone', 0x3d0f00 | 17)).toBe('allow'); // a thread
    expect(run('clone3')).toBe('errno:38');
  });

  it('leaves seccomp off alone', () => {
    const off = profile({ seccomp: { mode: 'off' } }).seccomp;
    expect(inPlaceSeccomp(off)).toBe(off);
  });
});

describe('buildInPlacePlan', () => {
  const facts = Object.fromEntries(
    ['/usr', '/etc', '/proc', '/tmp', '/dev', '/dev/shm', '/dev/pts', '/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom', '/dev/tty', '/usr/bin', '/usr/local/bin', '/srv/data'].map((p) => [p, { kind: 'dir' as const, real: p, realKind: 'dir' as const }]),
  );
  facts['/bin'] = { kind: 'symlink', link: 'usr/bin', real: '/usr/bin', realKind: 'dir' } as never;
  facts['/lib32'] = { kind: 'missing' } as never;
  const input = (raw: Record<string, unknown> = {}, h: HostFacts = host(), ports = { egress: 41000 }): InPlacePlanInput => {
    const p = profile(raw);
    return {
      profile: p,
      host: h,
      pathFacts: facts,
      command: ['true'],
      name: 'sb',
      supervisorPid: 42,
      sandboxDir: { host: '/sandbox', ephemeral: false },
      hostEnv: { LANG: 'C.UTF-8', SECRET_TOKEN: 'x' },
      expand: (x: string) => x,
      compileSeccomp: (c) => ({ program: compileSeccomp(c, 'x86_64').program, instructions: 1 }),
      decision: chooseMode(p, h, REFUSED),
      identity: chooseIdentity(p, h, 'in-place'),
      ports,
    };
  };
  const layer = (plan: ReturnType<typeof buildInPlacePlan>, name: string) => plan.report.layers.find((l) => l.layer === name)!;

  it('creates no namespaces or mounts, and confines with landlock: system read+exec, /sandbox and /tmp writable, TCP connect only to the proxy port', () => {
    const plan = buildInPlacePlan(input());
    expect(plan.native.namespaces).toEqual([]);
    expect(plan.native.mounts).toEqual([]);
    expect(plan.native.services).toEqual([]);
    expect(plan.native.inPlace).toEqual({ changeIdentity: false, dropBoundingSet: false, allowRoot: false });
    const rules = Object.fromEntries(plan.native.workload.landlock!.rules.map((r) => [r.path, r.access]));
    expect(rules['/']).toBeUndefined();
    expect(rules['/usr']! & FS.EXECUTE).toBeTruthy();
    expect(rules['/usr']! & FS.WRITE_FILE).toBe(0);
    expect(rules['/etc']! & (FS.EXECUTE | FS.WRITE_FILE)).toBe(0);
    expect(rules['/sandbox']! & FS.WRITE_FILE).toBeTruthy();
    expect(rules['/tmp']! & FS.MAKE_REG).toBeTruthy();
    expect(rules['/srv/data']).toBeUndefined();
    expect(plan.native.workload.landlock!.netRules).toEqual([{ port: 41000, access: NET.CONNECT_TCP }]);
    expect(plan.native.workload.landlock!.handledNet).toBe(NET.CONNECT_TCP | NET.BIND_TCP);
    expect(plan.native.workload.cwd).toBe('/sandbox');
    expect(plan.native.workload.env).toContain('HOME=/sandbox');
    expect(plan.native.workload.env).toContain('HTTPS_PROXY=http://127.0.0.1:41000');
    expect(plan.native.workload.env.some((e) => e.startsWith('SECRET_TOKEN'))).toBe(false);
    expect(plan.report.mode).toBe('in-place');
    expect(layer(plan, 'network').status).toBe('enforced');
    expect(layer(plan, 'namespaces').status).toBe('unavailable');
    expect(plan.warnings[0]).toContain('running in-place');
  });

  it('carries the same egress and inference sections as namespaces mode, with credential sources only', () => {
    const h = host({ isRoot: true, uid: 0, gid: 0 });
    const raw = {
      network: { allow: [{ host: 'api.github.com' }], approvals: { enabled: true } },
      inference: { routes: [{ name: 'm', api: 'openai', upstream: 'https://api.example.com/v1', credential: { env: 'K' } }] },
    };
    const plan = buildInPlacePlan({ ...input(raw, h, { egress: 41000, inference: 41001 } as never), hostEnv: { K: 'sk-in-place-secret' }, profileFile: '/etc/agent.yaml', auditLog: '/var/log/a.jsonl' });
    expect(plan.egress).toMatchObject({ mode: 'proxy', allow: [{ host: 'api.github.com', ports: [443] }], deny: [], approvals: { enabled: true, timeoutMs: 30_000 }, auditLog: '/var/log/a.jsonl', persistTo: '/etc/agent.yaml' });
    expect(plan.inference.routes).toEqual([{ name: 'm', api: 'openai', upstream: 'https://api.example.com/v1', credential: { env: 'K' }, timeoutMs: 600_000, optional: false }]);
    expect(JSON.stringify(plan)).not.toContain('sk-in-place-secret');
  });

  it('carries the forwarded signals and TSYNC for the in-place helper, and grants the container\'s own devices', () => {
    const plan = buildInPlacePlan(input());
    expect(plan.native.forwardSignals).toEqual(['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH']);
    expect(plan.native.workload.seccomp!.tsync).toBe(true);
    const rules = plan.native.workload.landlock!.rules.map((r) => r.path);
    for (const d of ['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom', '/dev/tty', '/dev/pts', '/dev/shm']) expect(rules).toContain(d);
  });

  it('a root caller drops to identity.uid with the bounding set; the inference router gets a port and the env no socket', () => {
    const h = host({ isRoot: true, uid: 0, gid: 0 });
    const plan = buildInPlacePlan(input({ inference: { routes: [{ name: 'm', api: 'openai', upstream: 'https://api.example.com/v1', credential: { env: 'K' } }] } }, h, { egress: 41000, inference: 41001 } as never));
    expect(plan.native.inPlace).toEqual({ changeIdentity: true, dropBoundingSet: true, allowRoot: false });
    const noSetpcap = buildInPlacePlan(input({}, host({ isRoot: true, uid: 0, gid: 0, canDropBoundingSet: false })));
    expect(noSetpcap.native.inPlace).toEqual({ changeIdentity: true, dropBoundingSet: false, allowRoot: false });
    expect(layer(noSetpcap, 'capabilities').detail).toContain('bounding set is kept');
    expect(plan.native.identity).toMatchObject({ uid: 61000, gid: 61000, hostUid: 61000, dropSupplementaryGroups: true });
    expect(plan.native.workload.landlock!.netRules.map((r) => r.port).sort()).toEqual([41000, 41001]);
    expect(plan.native.workload.env).toContain('OPENAI_BASE_URL=http://127.0.0.1:41001/v1');
    expect(plan.native.workload.env.some((e) => e.startsWith('CLAWJAIL_INFERENCE_SOCKET='))).toBe(false);
  });

  it.each([
    ['no landlock at all', { }, host({ landlock: { abi: 0, errno: 38, reason: 'ENOSYS: no landlock' } }), 'ERR_CLAWJAIL_LAYER_REQUIRED', 'only filesystem boundary'],
    ['ABI 3 with egress rules', { network: { allow: [{ host: 'api.example.com' }] } }, host({ landlock: { abi: 3 } }), 'ERR_CLAWJAIL_LAYER_REQUIRED', 'cannot enforce egress'],
    ['seccomp off with egress rules', { seccomp: { mode: 'off' }, network: { allow: [{ host: 'api.example.com' }] } }, host(), 'ERR_CLAWJAIL_LAYER_REQUIRED', 'UDP and raw sockets are not refused'],
    ['a bind to another place', { filesystem: { ro: [{ src: '/srv/data', dest: '/data' }] } }, host(), 'ERR_CLAWJAIL_PROFILE', 'cannot mount /srv/data at /data'],
    ['approvals with the supervisor\'s own uid', { network: { approvals: { enabled: true } } }, host(), 'ERR_CLAWJAIL_PROFILE', 'approve itself'],
    ['landlock off with the supervisor\'s own uid', { landlock: { mode: 'off' } }, host(), 'ERR_CLAWJAIL_LAYER_REQUIRED', 'read the supervisor\'s environment'],
    ['required landlock at ABI 5', { landlock: { mode: 'required' } }, host({ landlock: { abi: 5 } }), 'ERR_CLAWJAIL_LAYER_REQUIRED', 'only partly enforceable'],
  ] as const)('refuses: %s', (_label, raw, h, code, text) => {
    const e = thrown(() => buildInPlacePlan(input(raw as Record<string, unknown>, h)));
    expect(e.code).toBe(code);
    expect(e.message).toContain(text);
    expect(e.exitCode).toBe(125);
  });

  it('degrades what the profile allows, and reports it', () => {
    const old = buildInPlacePlan(input({ network: { allow: [{ host: 'api.example.com' }] }, inPlace: { network: 'best-effort' } }, host({ landlock: { abi: 3 } })));
    expect(layer(old, 'network')).toMatchObject({ status: 'unavailable', mode: 'best-effort' });
    expect(layer(old, 'network').detail).toContain('egress not enforced');
    expect(old.warnings.some((w) => w.startsWith('egress not enforced'))).toBe(true);
    // No rules and no routes: nothing to bypass, but it is still reported
    const bare = buildInPlacePlan(input({}, host({ landlock: { abi: 3 } })));
    expect(layer(bare, 'network').status).toBe('unavailable');
    const off = buildInPlacePlan(input({ landlock: { mode: 'off' } }, host({ isRoot: true, uid: 0, gid: 0 })));
    expect(layer(off, 'filesystem').status).toBe('off');
    expect(off.native.workload.landlock).toBeNull();
    expect(off.warnings.some((w) => w.includes('confined only by file permissions'))).toBe(true);
  });

  it('grants a same-place bind and publishes by letting the workload bind the port', () => {
    const plan = buildInPlacePlan(input({ filesystem: { rw: [{ src: '/srv/data' }] }, publish: [{ hostPort: 0, port: 18789 }] }));
    const rules = Object.fromEntries(plan.native.workload.landlock!.rules.map((r) => [r.path, r.access]));
    expect(rules['/srv/data']! & FS.WRITE_FILE).toBeTruthy();
    expect(plan.native.workload.landlock!.netRules).toContainEqual({ port: 18789, access: NET.BIND_TCP });
  });

  it('seccomp required: the same filter as enforce, reported as required, and a host without seccomp refuses', () => {
    const required = buildInPlacePlan(input({ seccomp: { mode: 'required' } }));
    const enforce = buildInPlacePlan(input());
    expect(required.native.workload.seccomp).toEqual(enforce.native.workload.seccomp);
    expect(layer(required, 'seccomp')).toMatchObject({ status: 'enforced', mode: 'required' });
    const e = thrown(() => buildInPlacePlan(input({ seccomp: { mode: 'required' } }, host({ seccomp: { available: false, alreadyFiltered: false, reason: 'no CONFIG_SECCOMP_FILTER' } }))));
    expect(e.code).toBe('ERR_CLAWJAIL_LAYER_REQUIRED');
    expect(e.message).toContain('seccomp is required (seccomp.mode: required)');
  });
});
