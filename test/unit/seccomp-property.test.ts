import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

import { buildSeccompIr, compileSeccomp, emitLinearChain, encodeProgram, resolveArgValue, syscallTable, type SeccompArch } from '../../src/plan/seccomp/index.js';
import { SeccompSchema, type SeccompCondition, type SeccompConfig } from '../../src/profile/seccomp.js';
import { checkSeccompProgram, describeRet, kernelCachesAllow, runSeccompProgram, type SeccompData } from '../helpers/bpf-interp.js';

// The oracle: the semantics as the profile documentation states them, evaluated directly on the
// config (not on the compiler's IR), for one seccomp_data.
const AUDIT = { x86_64: 0xc000003e, aarch64: 0xc00000b7, i386: 0x40000003 } as const;
const ERRNO_NUMBERS: Record<string, number> = { EPERM: 1, ENOSYS: 38, EACCES: 13, EAGAIN: 11, EINVAL: 22, ENOTSUP: 95, EOPNOTSUPP: 95 };

function conditionHolds(c: SeccompCondition, args: readonly bigint[]): boolean {
  let a = BigInt.asUintN(64, args[c.index] ?? 0n);
  if (c.width === 32) a &= 0xffffffffn;
  const v = resolveArgValue(c.value, c.width);
  switch (c.op) {
    case 'eq': return a === v;
    case 'ne': return a !== v;
    case 'lt': return a < v;
    case 'le': return a <= v;
    case 'gt': return a > v;
    case 'ge': return a >= v;
    case 'masked-eq': return (a & resolveArgValue(c.mask!, c.width)) === v;
  }
}

function expected(config: SeccompConfig, arch: SeccompArch, d: SeccompData): string {
  const table = syscallTable(arch);
  if (d.arch >>> 0 !== AUDIT[arch]) return 'kill_process';
  if (arch === 'x86_64' && (d.nr & 0x40000000) !== 0) return 'kill_process';
  const fail = (errno: string) => (config.mode === 'log' ? 'log' : `errno:${ERRNO_NUMBERS[errno] ?? expect.fail(`oracle lacks ${errno}`)}`);
  if (d.nr >>> 0 > table.maxNr) return fail('ENOSYS');
  const name = table.byNumber.get(d.nr);
  if (name === undefined) return 'allow';
  const args = d.args ?? [];
  if (config.allow.some((r) => r.syscall === name && r.args.every((c) => conditionHolds(c, args)))) return 'allow';
  const deny = config.deny.find((r) => r.syscall === name && r.args.every((c) => conditionHolds(c, args)));
  return deny ? fail(deny.errno) : 'allow';
}

/** Small deterministic PRNG (mulberry32) so failures reproduce. */
function prng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const u32 = () => BigInt(Math.floor(next() * 4294967296));
  return { next, int: (n: number) => Math.floor(next() * n), u64: () => (u32() << 32n) | u32(), pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]! };
}

const GENERIC_ARGS: bigint[][] = (() => {
  const r = prng(7);
  const v: bigint[][] = [
    [0n, 0n, 0n, 0n, 0n, 0n],
    Array(6).fill(0xffffffffffffffffn),
    Array(6).fill(0xffffffffn),
    Array(6).fill(0xffffffff00000000n),
    [1n, 2n, 3n, 4n, 5n, 6n],
  ];
  for (let i = 0; i < 6; i++) v.push(Array.from({ length: 6 }, () => r.u64()));
  return v;
})();

/** Values around every condition on this syscall, per argument index, then their product. */
function argVectors(config: SeccompConfig, name: string): bigint[][] {
  const conds = [...config.deny, ...config.allow].filter((r) => r.syscall === name).flatMap((r) => r.args);
  if (conds.length === 0) return GENERIC_ARGS;
  const perIndex = new Map<number, Set<bigint>>();
  for (const c of conds) {
    const set = perIndex.get(c.index) ?? new Set<bigint>([0n]);
    const v = resolveArgValue(c.value, c.width);
    const m = c.op === 'masked-eq' ? resolveArgValue(c.mask!, c.width) : (1n << BigInt(c.width)) - 1n;
    const lowestMaskBit = m & -m;
    for (const x of [v, v + 1n, v - 1n, v | (1n << 32n), v | 0xffffffff00000000n, v ^ lowestMaskBit, v | (~m & 0xffffffffffffffffn), m, v + (1n << 32n), v - (1n << 32n)]) {
      set.add(BigInt.asUintN(64, x));
    }
    perIndex.set(c.index, set);
  }
  let vectors: bigint[][] = [[0n, 0n, 0n, 0n, 0n, 0n]];
  for (const [index, values] of perIndex) {
    const next: bigint[][] = [];
    for (const base of vectors) for (const x of values) next.push(base.map((b, i) => (i === index ? x : b)));
    vectors = next.length > 4000 ? next.filter((_, i) => i % Math.ceil(next.length / 4000) === 0) : next;
  }
  return [...vectors, ...GENERIC_ARGS];
}

function numbersToTry(arch: SeccompArch): number[] {
  const t = syscallTable(arch);
  const nrs = Array.from({ length: t.maxNr + 40 }, (_, i) => i);
  const x32 = [0x40000000, 0x40000000 + 39, 0x40000000 + 512, 0x7fffffff, 0x80000000, 0x80000000 + 1, 0xbfffffff, 0xc0000000, 0xfffffffe, 0xffffffff];
  return [...nrs, ...x32, 1000, 4095, 0x10000, 0x3fffffff];
}

function checkAgainstOracle(config: SeccompConfig, arch: SeccompArch, program: Buffer): number {
  const t = syscallTable(arch);
  let runs = 0;
  const mismatches: string[] = [];
  for (const nr of numbersToTry(arch)) {
    const name = t.byNumber.get(nr) ?? '';
    for (const args of argVectors(config, name)) {
      const d = { nr, arch: AUDIT[arch], args };
      const got = describeRet(runSeccompProgram(program, d).ret);
      const want = expected(config, arch, d);
      runs++;
      if (got !== want && mismatches.length < 5) mismatches.push(`nr ${nr} (${name || '?'}) args ${args.map((a) => a.toString(16)).join(',')}: got ${got}, want ${want}`);
    }
  }
  // Foreign architectures: i386 (refused), the other supported arch, garbage.
  for (const foreign of [AUDIT.i386, arch === 'x86_64' ? AUDIT.aarch64 : AUDIT.x86_64, 0, 0xffffffff]) {
    for (const nr of [0, 1, 39, 59, 101, 435]) {
      runs++;
      const got = describeRet(runSeccompProgram(program, { nr, arch: foreign }).ret);
      if (got !== 'kill_process') mismatches.push(`foreign arch 0x${foreign.toString(16)} nr ${nr}: got ${got}`);
    }
  }
  expect(mismatches).toEqual([]);
  return runs;
}

const defaultConfig = SeccompSchema.parse(parse(readFileSync(fileURLToPath(new URL('../../profiles/default.yaml', import.meta.url)), 'utf8')).seccomp);

describe.each(['x86_64', 'aarch64'] as const)('default policy on %s', (arch) => {
  const compiled = compileSeccomp(defaultConfig, arch);

  it('is a program the kernel would accept', () => {
    expect(checkSeccompProgram(compiled.program)).toEqual([]);
    expect(compiled.instructions).toBe(compiled.program.length / 8);
  });

  it('matches the policy for every syscall number, x32/out-of-range numbers, foreign arches and argument vectors', () => {
    const runs = checkAgainstOracle(defaultConfig, arch, compiled.program);
    expect(runs).toBeGreaterThan(5000);
  });

  it('in log mode, logs what enforce mode fails and still kills foreign arches and x32', () => {
    const logConfig = { ...defaultConfig, mode: 'log' as const };
    checkAgainstOracle(logConfig, arch, compileSeccomp(logConfig, arch).program);
  });

  it('the linear chain of the same IR agrees (differential check of the dispatch tree)', () => {
    const chain = encodeProgram(emitLinearChain(buildSeccompIr(defaultConfig, arch)));
    expect(checkSeccompProgram(chain)).toEqual([]);
    checkAgainstOracle(defaultConfig, arch, chain);
  });

  it('lets the kernel cache every argument-independent allow, and only those', () => {
    const t = syscallTable(arch);
    const conditional = new Set(compiled.argumentChecked);
    const denied = new Set(compiled.denied);
    const wrong: string[] = [];
    for (const [nr, name] of t.byNumber) {
      const cached = kernelCachesAllow(compiled.program, t.auditArch, nr);
      const shouldCache = !conditional.has(name) && !denied.has(name);
      if (cached !== shouldCache) wrong.push(`${name}: cached=${cached}`);
    }
    expect(wrong).toEqual([]);
    expect(kernelCachesAllow(compiled.program, t.auditArch, t.maxNr + 1)).toBe(false);
    expect(kernelCachesAllow(compiled.program, AUDIT.i386, 20)).toBe(false);
  });

  it('dispatches in logarithmic time: no allowed syscall needs more than 16 instructions', () => {
    const t = syscallTable(arch);
    let worst = 0;
    for (const nr of t.byNumber.keys()) worst = Math.max(worst, runSeccompProgram(compiled.program, { nr, arch: t.auditArch }).steps);
    const chain = encodeProgram(emitLinearChain(buildSeccompIr(defaultConfig, arch)));
    let worstChain = 0;
    for (const nr of t.byNumber.keys()) worstChain = Math.max(worstChain, runSeccompProgram(chain, { nr, arch: t.auditArch }).steps);
    expect(worst).toBeLessThanOrEqual(16 + 12); // + the longest argument block (socket)
    expect(worstChain).toBeGreaterThan(2 * worst);
  });
});

/** A random but valid profile section: every op, both widths, overlapping allow/deny, errnos. */
function randomConfig(seed: number, arch: SeccompArch, rules: number): SeccompConfig {
  const r = prng(seed);
  const names = [...syscallTable(arch).byName.keys()];
  const pool = Array.from({ length: Math.max(4, Math.floor(rules / 3)) }, () => r.pick(names));
  const ops = ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'masked-eq'] as const;
  const value = (width: 32 | 64) => {
    const kinds = [0n, 1n, 0x10n, 0xffffffffn, 0x100000000n, 0x8000000000000000n, r.u64()];
    return BigInt.asUintN(width, r.pick(kinds));
  };
  const cond = () => {
    const width = r.pick([32, 64] as const);
    const op = r.pick(ops);
    if (op === 'masked-eq') {
      const mask = value(width) | 1n;
      return { index: r.int(6), op, width, mask: `0x${mask.toString(16)}`, value: `0x${(value(width) & mask).toString(16)}` };
    }
    return { index: r.int(6), op, width, value: `0x${value(width).toString(16)}` };
  };
  const entries = (n: number) => Array.from({ length: n }, () => ({ syscall: r.pick(pool), args: Array.from({ length: r.int(3) }, cond), reason: 'random' }));
  return SeccompSchema.parse({
    mode: 'enforce',
    deny: entries(rules).map((e) => ({ ...e, errno: r.pick(['EPERM', 'ENOSYS', 'EACCES', 'EAGAIN', 'EINVAL']) })),
    allow: entries(Math.floor(rules / 3)),
  });
}

describe.each(['x86_64', 'aarch64'] as const)('random profiles on %s', (arch) => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('seed %i: tree and linear chain both match the semantics', (seed) => {
    const config = randomConfig(seed, arch, 40);
    const compiled = compileSeccomp(config, arch);
    expect(checkSeccompProgram(compiled.program)).toEqual([]);
    checkAgainstOracle(config, arch, compiled.program);
    checkAgainstOracle(config, arch, encodeProgram(emitLinearChain(buildSeccompIr(config, arch))));
  });

  it('a large profile needs long jumps; they are emitted and still correct', () => {
    const config = randomConfig(99, arch, 260);
    const compiled = compileSeccomp(config, arch);
    const jas = [];
    for (let o = 0; o < compiled.program.length; o += 8) if (compiled.program.readUInt16LE(o) === 0x05) jas.push(o / 8);
    expect(compiled.instructions).toBeGreaterThan(512);
    expect(jas.length).toBeGreaterThan(0);
    expect(checkSeccompProgram(compiled.program)).toEqual([]);
    checkAgainstOracle(config, arch, compiled.program);
  });
});
