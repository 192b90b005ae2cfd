import { SECCOMP_DATA, SECCOMP_MISC, SECCOMP_RET } from '../../policy/seccomp/tables/constants.js';
import { Assembler, type Insn, type Label } from './assembler.js';
import type { ArgCheck, SeccompAction, SeccompIr, SyscallDecision } from './ir.js';

const U32 = 0xffffffffn;

export function actionValue(a: SeccompAction): number {
  switch (a.type) {
    case 'allow':
      return SECCOMP_RET.SECCOMP_RET_ALLOW;
    case 'log':
      return SECCOMP_RET.SECCOMP_RET_LOG;
    case 'kill':
      return SECCOMP_RET.SECCOMP_RET_KILL_PROCESS;
    case 'errno':
      return (SECCOMP_RET.SECCOMP_RET_ERRNO | (a.errno & SECCOMP_RET.SECCOMP_RET_DATA)) >>> 0;
  }
}

const argLow = (index: number) => SECCOMP_DATA.SECCOMP_DATA_ARGS + 8 * index;
// Both supported ABIs are little-endian: the high word of a 64-bit argument comes second.
const argHigh = (index: number) => argLow(index) + 4;

/**
 * Emits one argument check: falls through (or jumps) to `pass` when it holds, to `fail` when
 * not. Comparisons are unsigned; 64-bit ones compare the high word first.
 */
function emitCheck(asm: Assembler, c: ArgCheck, pass: Label, fail: Label): void {
  const negate = c.op === 'ne' || c.op === 'lt' || c.op === 'le';
  const yes = negate ? fail : pass;
  const no = negate ? pass : fail;
  const lo = { value: Number(c.value & U32), mask: Number(c.mask & U32) };
  const hi = { value: Number((c.value >> 32n) & U32), mask: Number((c.mask >> 32n) & U32) };

  if (c.op === 'eq' || c.op === 'ne' || c.op === 'masked-eq') {
    // Word by word: (word & mask) == value. A word whose mask is 0 always matches (the front end
    // keeps value within mask), which is what makes "flag not set" on a long argument one word.
    const words = [...(c.width === 64 ? [{ ...hi, offset: argHigh(c.index) }] : []), { ...lo, offset: argLow(c.index) }].filter((w) => w.mask !== 0);
    if (words.length === 0) {
      asm.goto(yes);
      return;
    }
    words.forEach((w, i) => {
      asm.load(w.offset);
      if (w.mask !== 0xffffffff) asm.and(w.mask);
      const last = i === words.length - 1;
      if (last) {
        asm.jump('jeq', w.value, yes, no);
      } else {
        const next = asm.label();
        asm.jump('jeq', w.value, next, no);
        asm.bind(next);
      }
    });
    return;
  }

  // gt/ge (and lt/le as their negations): arg > v, or arg >= v.
  const cond = c.op === 'gt' || c.op === 'le' ? 'jgt' : 'jge';
  if (c.width === 64) {
    const checkHighEq = asm.label();
    const checkLow = asm.label();
    asm.load(argHigh(c.index));
    asm.jump('jgt', hi.value, yes, checkHighEq);
    asm.bind(checkHighEq);
    asm.jump('jeq', hi.value, checkLow, no);
    asm.bind(checkLow);
  }
  asm.load(argLow(c.index));
  asm.jump(cond, lo.value, yes, no);
}

function emitDecision(asm: Assembler, d: SyscallDecision): void {
  for (const clause of d.clauses) {
    const nextClause = asm.label();
    for (const check of clause.checks) {
      const pass = asm.label();
      emitCheck(asm, check, pass, nextClause);
      asm.bind(pass);
    }
    asm.ret(actionValue(clause.action));
    asm.bind(nextClause);
  }
  asm.ret(actionValue(d.fallback));
}

/** A contiguous run of syscall numbers [start, next start) with one outcome. */
type Interval = { start: number; action: SeccompAction } | { start: number; decision: SyscallDecision };

function sameOutcome(a: Interval, b: Interval): boolean {
  if (!('action' in a) || !('action' in b)) return false;
  return actionValue(a.action) === actionValue(b.action);
}

/** [0, 2^32) split into runs: allowed gaps, constant decisions, argument-checked syscalls,
 * the numbers above the table, and on x86_64 the x32 range. */
export function dispatchIntervals(ir: SeccompIr): Interval[] {
  const raw: Interval[] = [];
  const allow: SeccompAction = { type: 'allow' };
  let next = 0;
  for (const d of ir.decisions) {
    if (d.nr > next) raw.push({ start: next, action: allow });
    raw.push(d.clauses.length === 0 ? { start: d.nr, action: d.fallback } : { start: d.nr, decision: d });
    next = d.nr + 1;
  }
  if (next <= ir.maxNr) raw.push({ start: next, action: allow });
  raw.push({ start: ir.maxNr + 1, action: ir.beyondTable });
  // Numbers with the x32 bit set are [0x40000000, 0x80000000) and [0xc0000000, 2^32).
  if (ir.killX32) {
    const x32 = SECCOMP_MISC.X32_SYSCALL_BIT;
    raw.push({ start: x32, action: { type: 'kill' } }, { start: 2 * x32, action: ir.beyondTable }, { start: 3 * x32, action: { type: 'kill' } });
  }

  const merged: Interval[] = [];
  for (const iv of raw) {
    const last = merged[merged.length - 1];
    if (last && sameOutcome(last, iv)) continue;
    merged.push(iv);
  }
  return merged;
}

function emitHeader(asm: Assembler, ir: SeccompIr): void {
  const archOk = asm.label();
  const kill = asm.label();
  asm.load(SECCOMP_DATA.SECCOMP_DATA_ARCH);
  asm.jump('jeq', ir.auditArch, archOk, kill);
  asm.bind(kill);
  asm.ret(SECCOMP_RET.SECCOMP_RET_KILL_PROCESS);
  asm.bind(archOk);
  asm.load(SECCOMP_DATA.SECCOMP_DATA_NR);
}

/**
 * IR → classic BPF. After the arch check, the syscall number is dispatched by a balanced binary
 * search over the intervals (jge on each boundary), so any call costs about log2(#intervals)
 * comparisons, and every interval without argument checks ends in a constant return reached
 * through number-only comparisons: the kernel's action cache can then record constant allows.
 */
export function emitBpf(ir: SeccompIr): Insn[] {
  const asm = new Assembler();
  emitHeader(asm, ir);
  const intervals = dispatchIntervals(ir);
  const emitRange = (lo: number, hi: number): void => {
    if (hi - lo === 1) {
      const iv = intervals[lo]!;
      if ('action' in iv) asm.ret(actionValue(iv.action));
      else emitDecision(asm, iv.decision);
      return;
    }
    const mid = Math.floor((lo + hi) / 2);
    const left = asm.label();
    const right = asm.label();
    asm.jump('jge', intervals[mid]!.start, right, left);
    asm.bind(left);
    emitRange(lo, mid);
    asm.bind(right);
    emitRange(mid, hi);
  };
  emitRange(0, intervals.length);
  return asm.assemble();
}

/**
 * The same IR as a naive linear chain (one jeq per decided syscall, in number order), the
 * shape hand-written filters usually have. Used by the benchmark and as a differential test
 * of emitBpf: both must give the same result for every input.
 */
export function emitLinearChain(ir: SeccompIr): Insn[] {
  const asm = new Assembler();
  emitHeader(asm, ir);
  const beyond = asm.label();
  const kill = asm.label();
  if (ir.killX32) {
    const notX32 = asm.label();
    asm.jump('jset', SECCOMP_MISC.X32_SYSCALL_BIT, kill, notX32);
    asm.bind(notX32);
  }
  const inTable = asm.label();
  asm.jump('jgt', ir.maxNr, beyond, inTable);
  asm.bind(inTable);
  for (const d of ir.decisions) {
    const hit = asm.label();
    const miss = asm.label();
    asm.jump('jeq', d.nr, hit, miss);
    asm.bind(hit);
    emitDecision(asm, d);
    // Every decision ends in a return, so A still holds the number on the miss path.
    asm.bind(miss);
  }
  asm.ret(SECCOMP_RET.SECCOMP_RET_ALLOW);
  asm.bind(beyond);
  asm.ret(actionValue(ir.beyondTable));
  asm.bind(kill);
  asm.ret(SECCOMP_RET.SECCOMP_RET_KILL_PROCESS);
  return asm.assemble();
}
