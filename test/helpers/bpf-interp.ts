// A classic-BPF interpreter over struct seccomp_data, written from the kernel's documented
// semantics (Documentation/networking/filter.rst, seccomp_filter.rst) and independent of the
// compiler's own code, so tests can run a compiled filter without installing it.

export interface SeccompData {
  nr: number;
  arch: number;
  instructionPointer?: bigint;
  /** Six 64-bit arguments; missing ones are 0. */
  args?: readonly bigint[];
}

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

// Opcode fields (linux/bpf_common.h); the interpreter keeps its own copy on purpose.
const CLS = { LD: 0x00, LDX: 0x01, ST: 0x02, STX: 0x03, ALU: 0x04, JMP: 0x05, RET: 0x06, MISC: 0x07 };
const MODE = { IMM: 0x00, ABS: 0x20, IND: 0x40, MEM: 0x60, LEN: 0x80, MSH: 0xa0 };
const SIZE_W = 0x00;
const SRC_X = 0x08;
const SECCOMP_DATA_SIZE = 64;
const MAX_INSNS = 4096;
const MEMWORDS = 16;

export function decode(program: Buffer): Insn[] {
  if (program.length % 8 !== 0) throw new Error('program length is not a multiple of 8');
  const out: Insn[] = [];
  for (let o = 0; o < program.length; o += 8) {
    out.push({ code: program.readUInt16LE(o), jt: program[o + 2]!, jf: program[o + 3]!, k: program.readUInt32LE(o + 4) });
  }
  return out;
}

function dataWord(d: SeccompData, offset: number): number {
  const u64 = (v: bigint, hi: boolean) => Number(hi ? (v >> 32n) & 0xffffffffn : v & 0xffffffffn);
  if (offset === 0) return d.nr >>> 0;
  if (offset === 4) return d.arch >>> 0;
  if (offset === 8 || offset === 12) return u64(d.instructionPointer ?? 0n, offset === 12);
  const a = offset - 16;
  const arg = d.args?.[Math.floor(a / 8)] ?? 0n;
  return u64(BigInt.asUintN(64, arg), a % 8 === 4);
}

/**
 * What the kernel's seccomp_check_filter/bpf_check_classic would reject. Returns the reasons
 * (empty: the kernel accepts the program).
 */
export function checkSeccompProgram(program: Buffer): string[] {
  const insns = decode(program);
  const errors: string[] = [];
  if (insns.length === 0 || insns.length > MAX_INSNS) errors.push(`length ${insns.length} outside 1..${MAX_INSNS}`);
  insns.forEach((insn, pc) => {
    const cls = insn.code & 0x07;
    const mode = insn.code & 0xe0;
    switch (cls) {
      case CLS.LD:
        if (mode === MODE.ABS) {
          if ((insn.code & 0x18) !== SIZE_W) errors.push(`${pc}: seccomp allows only 32-bit loads`);
          if (insn.k % 4 !== 0 || insn.k >= SECCOMP_DATA_SIZE) errors.push(`${pc}: load offset ${insn.k} outside seccomp_data or unaligned`);
        } else if (mode !== MODE.IMM && mode !== MODE.MEM && mode !== MODE.LEN) errors.push(`${pc}: load mode 0x${mode.toString(16)} not allowed in seccomp`);
        if (mode === MODE.MEM && insn.k >= MEMWORDS) errors.push(`${pc}: M[${insn.k}] out of range`);
        break;
      case CLS.LDX:
        if (mode !== MODE.IMM && mode !== MODE.MEM && mode !== MODE.LEN) errors.push(`${pc}: ldx mode not allowed in seccomp`);
        break;
      case CLS.ST:
      case CLS.STX:
        if (insn.k >= MEMWORDS) errors.push(`${pc}: M[${insn.k}] out of range`);
        break;
      case CLS.ALU: {
        const op = insn.code & 0xf0;
        if ((op === 0x30 || op === 0x90) && !(insn.code & SRC_X) && insn.k === 0) errors.push(`${pc}: division by constant 0`);
        if ((op === 0x60 || op === 0x70) && !(insn.code & SRC_X) && insn.k >= 32) errors.push(`${pc}: shift by ${insn.k}`);
        break;
      }
      case CLS.JMP: {
        const op = insn.code & 0xf0;
        if (op === 0x00) {
          if (pc + 1 + insn.k >= insns.length) errors.push(`${pc}: ja past the end`);
        } else if (pc + 1 + insn.jt >= insns.length || pc + 1 + insn.jf >= insns.length) errors.push(`${pc}: conditional jump past the end`);
        break;
      }
      default:
        break;
    }
  });
  const last = insns[insns.length - 1];
  if (last && (last.code & 0x07) !== CLS.RET) errors.push('the last instruction is not a return');
  return errors;
}

export interface RunResult {
  /** The 32-bit value the filter returned. */
  ret: number;
  /** Instructions executed. */
  steps: number;
}

/** Runs the program on one seccomp_data. Throws on anything the kernel would have refused. */
export function runSeccompProgram(program: Buffer | Insn[], data: SeccompData): RunResult {
  const insns = Buffer.isBuffer(program) ? decode(program) : program;
  let A = 0;
  let X = 0;
  const M = new Uint32Array(MEMWORDS);
  let pc = 0;
  let steps = 0;
  for (;;) {
    const insn = insns[pc];
    if (!insn) throw new Error(`fell off the end at ${pc}`);
    steps++;
    const { code, jt, jf, k } = insn;
    const cls = code & 0x07;
    const src = code & SRC_X ? X : k;
    pc++;
    switch (cls) {
      case CLS.LD: {
        const mode = code & 0xe0;
        if (mode === MODE.ABS) A = dataWord(data, k);
        else if (mode === MODE.IMM) A = k >>> 0;
        else if (mode === MODE.MEM) A = M[k]!;
        else if (mode === MODE.LEN) A = SECCOMP_DATA_SIZE;
        else throw new Error(`unsupported ld mode at ${pc - 1}`);
        break;
      }
      case CLS.LDX: {
        const mode = code & 0xe0;
        if (mode === MODE.IMM) X = k >>> 0;
        else if (mode === MODE.MEM) X = M[k]!;
        else if (mode === MODE.LEN) X = SECCOMP_DATA_SIZE;
        else throw new Error(`unsupported ldx mode at ${pc - 1}`);
        break;
      }
      case CLS.ST:
        M[k] = A;
        break;
      case CLS.STX:
        M[k] = X;
        break;
      case CLS.ALU: {
        const s = src >>> 0;
        switch (code & 0xf0) {
          case 0x00: A = (A + s) >>> 0; break;
          case 0x10: A = (A - s) >>> 0; break;
          case 0x20: A = Number((BigInt(A) * BigInt(s)) & 0xffffffffn); break;
          case 0x30: if (s === 0) return { ret: 0, steps }; A = Math.floor(A / s) >>> 0; break;
          case 0x40: A = (A | s) >>> 0; break;
          case 0x50: A = (A & s) >>> 0; break;
          case 0x60: A = s >= 32 ? 0 : (A << s) >>> 0; break;
          case 0x70: A = s >= 32 ? 0 : A >>> s; break;
          case 0x80: A = -A >>> 0; break;
          case 0x90: if (s === 0) return { ret: 0, steps }; A = (A % s) >>> 0; break;
          case 0xa0: A = (A ^ s) >>> 0; break;
          default: throw new Error(`bad alu op at ${pc - 1}`);
        }
        break;
      }
      case CLS.JMP: {
        const s = src >>> 0;
        const op = code & 0xf0;
        if (op === 0x00) {
          pc += k;
          break;
        }
        let taken: boolean;
        if (op === 0x10) taken = A === s;
        else if (op === 0x20) taken = A > s;
        else if (op === 0x30) taken = A >= s;
        else if (op === 0x40) taken = (A & s) !== 0;
        else throw new Error(`bad jump op at ${pc - 1}`);
        pc += taken ? jt : jf;
        break;
      }
      case CLS.RET:
        return { ret: ((code & 0x18) === 0x10 ? A : k) >>> 0, steps };
      case CLS.MISC:
        if ((code & 0xf8) === 0x80) A = X;
        else X = A;
        break;
      default:
        throw new Error(`bad class at ${pc - 1}`);
    }
  }
}

/**
 * The kernel's seccomp action cache (kernel/seccomp.c, seccomp_is_const_allow): it emulates the
 * filter for one (arch, nr) without arguments and caches ALLOW only when the path reads
 * nothing but nr/arch and uses only ld/and/jeq/jge/jgt/jset/ja/ret K. Returns true when the
 * kernel would cache this syscall as always allowed (the filter then costs nothing for it).
 */
export function kernelCachesAllow(program: Buffer, arch: number, nr: number): boolean {
  const insns = decode(program);
  let A = 0;
  for (let pc = 0; pc < insns.length; pc++) {
    const { code, jt, jf, k } = insns[pc]!;
    switch (code) {
      case 0x20: // ld w abs
        if (k === 0) A = nr >>> 0;
        else if (k === 4) A = arch >>> 0;
        else return false;
        break;
      case 0x06: // ret k
        return k >>> 0 === 0x7fff0000;
      case 0x05: // ja
        pc += k;
        break;
      case 0x15: // jeq k
        pc += A === k >>> 0 ? jt : jf;
        break;
      case 0x35: // jge k
        pc += A >= k >>> 0 ? jt : jf;
        break;
      case 0x25: // jgt k
        pc += A > k >>> 0 ? jt : jf;
        break;
      case 0x45: // jset k
        pc += (A & k) !== 0 ? jt : jf;
        break;
      case 0x54: // alu and k
        A = (A & k) >>> 0;
        break;
      default:
        return false;
    }
  }
  return false;
}

/** Decodes a SECCOMP_RET_* value for readable assertions. */
export function describeRet(ret: number): string {
  const action = (ret & 0xffff0000) >>> 0;
  if (action === 0x7fff0000) return 'allow';
  if (action === 0x7ffc0000) return 'log';
  if (action === 0x00050000) return `errno:${ret & 0xffff}`;
  if (action === 0x80000000) return 'kill_process';
  if (action === 0) return 'kill_thread';
  if (action === 0x00030000) return 'trap';
  return `0x${ret.toString(16)}`;
}
