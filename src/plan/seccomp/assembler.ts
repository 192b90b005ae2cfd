import { BPF } from '../../policy/seccomp/tables/constants.js';

const UNREACHABLE = Symbol('unreachable');

/** A position in the program, bound later; all jumps in classic BPF go forward. */
export type Label = number & { readonly __label: unique symbol };

export type JumpCond = 'jeq' | 'jge' | 'jgt' | 'jset';

type Item =
  | { kind: 'ld'; offset: number }
  | { kind: 'and'; k: number }
  | { kind: 'jump'; cond: JumpCond; k: number; t: Label; f: Label; farT: boolean; farF: boolean }
  | { kind: 'ja'; to: Label }
  | { kind: 'ret'; k: number }
  | { kind: 'bind'; label: Label };

const JUMP_CODE: Record<JumpCond, number> = {
  jeq: BPF.BPF_JMP | BPF.BPF_JEQ | BPF.BPF_K,
  jge: BPF.BPF_JMP | BPF.BPF_JGE | BPF.BPF_K,
  jgt: BPF.BPF_JMP | BPF.BPF_JGT | BPF.BPF_K,
  jset: BPF.BPF_JMP | BPF.BPF_JSET | BPF.BPF_K,
};

/** The farthest a conditional jump reaches: jt/jf are 8-bit instruction counts. */
export const MAX_COND_JUMP = 255;

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/**
 * A two-pass assembler for the subset of classic BPF the compiler emits. Only these opcodes
 * appear (LD W ABS, ALU AND K, JEQ/JGE/JGT/JSET K, JA, RET K): they are the ones the kernel's
 * seccomp action-cache emulator understands, so syscall-number-only paths stay cacheable.
 *
 * A conditional branch whose target is more than 255 instructions away is rewritten to reach a
 * `ja` (32-bit offset) placed right after it; layout is repeated until every branch fits.
 */
export class Assembler {
  private items: Item[] = [];
  private nextLabel = 0;
  // What the accumulator holds here: the seccomp_data offset last loaded, null when unknown
  // (after an AND), or UNREACHABLE after a jump or return. Jumps only go forward, so when a
  // label is bound every jump to it has been emitted and its incoming states are complete;
  // that lets load() drop a reload of the word A already holds on every path.
  private a: number | null | typeof UNREACHABLE = null;
  private incoming = new Map<Label, Array<number | null>>();

  label(): Label {
    return this.nextLabel++ as Label;
  }

  bind(label: Label): void {
    const states = [...(this.incoming.get(label) ?? []), ...(this.a === UNREACHABLE ? [] : [this.a])];
    this.a = states.length === 0 ? UNREACHABLE : states.every((s) => s === states[0]) ? states[0]! : null;
    this.items.push({ kind: 'bind', label });
  }

  /** A = 32-bit word at byte `offset` of struct seccomp_data. */
  load(offset: number): void {
    if (this.a === offset) return;
    this.items.push({ kind: 'ld', offset });
    this.a = offset;
  }

  and(k: number): void {
    this.items.push({ kind: 'and', k: k >>> 0 });
    this.a = null;
  }

  jump(cond: JumpCond, k: number, t: Label, f: Label): void {
    this.items.push({ kind: 'jump', cond, k: k >>> 0, t, f, farT: false, farF: false });
    this.arrive(t);
    this.arrive(f);
    this.a = UNREACHABLE;
  }

  goto(to: Label): void {
    this.items.push({ kind: 'ja', to });
    this.arrive(to);
    this.a = UNREACHABLE;
  }

  ret(k: number): void {
    this.items.push({ kind: 'ret', k: k >>> 0 });
    this.a = UNREACHABLE;
  }

  private arrive(label: Label): void {
    if (this.a === UNREACHABLE) return;
    const list = this.incoming.get(label) ?? [];
    list.push(this.a);
    this.incoming.set(label, list);
  }

  private size(item: Item): number {
    if (item.kind === 'bind') return 0;
    if (item.kind === 'jump') return 1 + (item.farT ? 1 : 0) + (item.farF ? 1 : 0);
    return 1;
  }

  private layout(): { starts: number[]; labels: Map<Label, number>; total: number } {
    const starts: number[] = [];
    const labels = new Map<Label, number>();
    let pc = 0;
    for (const item of this.items) {
      starts.push(pc);
      if (item.kind === 'bind') labels.set(item.label, pc);
      pc += this.size(item);
    }
    return { starts, labels, total: pc };
  }

  assemble(): Insn[] {
    for (;;) {
      const { starts, labels } = this.layout();
      const target = (l: Label) => {
        const at = labels.get(l);
        if (at === undefined) throw new Error(`BPF assembler: label ${l} never bound`);
        return at;
      };
      let changed = false;
      this.items.forEach((item, i) => {
        if (item.kind !== 'jump') return;
        const from = starts[i]! + 1;
        for (const side of ['t', 'f'] as const) {
          const far = side === 't' ? 'farT' : 'farF';
          const dist = target(item[side]) - from;
          if (dist < 0) throw new Error('BPF assembler: backward jump');
          if (!item[far] && dist > MAX_COND_JUMP) {
            item[far] = true;
            changed = true;
          }
        }
      });
      if (changed) continue;

      const out: Insn[] = [];
      this.items.forEach((item, i) => {
        const pc = starts[i]!;
        switch (item.kind) {
          case 'bind':
            return;
          case 'ld':
            out.push({ code: BPF.BPF_LD | BPF.BPF_W | BPF.BPF_ABS, jt: 0, jf: 0, k: item.offset });
            return;
          case 'and':
            out.push({ code: BPF.BPF_ALU | BPF.BPF_AND | BPF.BPF_K, jt: 0, jf: 0, k: item.k });
            return;
          case 'ret':
            out.push({ code: BPF.BPF_RET | BPF.BPF_K, jt: 0, jf: 0, k: item.k });
            return;
          case 'ja':
            out.push({ code: BPF.BPF_JMP | BPF.BPF_JA, jt: 0, jf: 0, k: target(item.to) - (pc + 1) });
            return;
          case 'jump': {
            // Trampolines sit right after the jump: [jcc][ja T if far][ja F if far].
            const tPad = item.farT ? 0 : target(item.t) - (pc + 1);
            const fPad = item.farF ? (item.farT ? 1 : 0) : target(item.f) - (pc + 1);
            out.push({ code: JUMP_CODE[item.cond], jt: tPad, jf: fPad, k: item.k });
            if (item.farT) out.push({ code: BPF.BPF_JMP | BPF.BPF_JA, jt: 0, jf: 0, k: target(item.t) - (pc + 2) });
            if (item.farF) {
              const at = pc + 1 + (item.farT ? 1 : 0);
              out.push({ code: BPF.BPF_JMP | BPF.BPF_JA, jt: 0, jf: 0, k: target(item.f) - (at + 1) });
            }
            return;
          }
        }
      });
      return out;
    }
  }
}

/** struct sock_filter {u16 code; u8 jt; u8 jf; u32 k} in little-endian order (x86_64, aarch64). */
export function encodeProgram(insns: readonly Insn[]): Buffer {
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((insn, i) => {
    if (insn.jt > MAX_COND_JUMP || insn.jf > MAX_COND_JUMP || insn.jt < 0 || insn.jf < 0) {
      throw new Error(`BPF instruction ${i}: jump offset out of range (jt ${insn.jt}, jf ${insn.jf})`);
    }
    buf.writeUInt16LE(insn.code, i * 8);
    buf.writeUInt8(insn.jt, i * 8 + 2);
    buf.writeUInt8(insn.jf, i * 8 + 3);
    buf.writeUInt32LE(insn.k >>> 0, i * 8 + 4);
  });
  return buf;
}

export function decodeProgram(program: Buffer): Insn[] {
  if (program.length % 8 !== 0) throw new Error('a BPF program is a whole number of 8-byte instructions');
  const out: Insn[] = [];
  for (let o = 0; o < program.length; o += 8) {
    out.push({ code: program.readUInt16LE(o), jt: program.readUInt8(o + 2), jf: program.readUInt8(o + 3), k: program.readUInt32LE(o + 4) });
  }
  return out;
}
