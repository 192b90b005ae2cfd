import { BPF, SECCOMP_DATA, SECCOMP_RET } from '../../policy/seccomp/tables/constants.js';
import { decodeProgram } from './assembler.js';

const hex = (n: number) => `0x${(n >>> 0).toString(16)}`;

function dataName(k: number): string {
  if (k === SECCOMP_DATA.SECCOMP_DATA_NR) return 'nr';
  if (k === SECCOMP_DATA.SECCOMP_DATA_ARCH) return 'arch';
  if (k === SECCOMP_DATA.SECCOMP_DATA_IP) return 'ip.lo';
  if (k === SECCOMP_DATA.SECCOMP_DATA_IP + 4) return 'ip.hi';
  const a = k - SECCOMP_DATA.SECCOMP_DATA_ARGS;
  if (a >= 0 && a < 48 && a % 4 === 0) return `args[${Math.floor(a / 8)}].${a % 8 === 0 ? 'lo' : 'hi'}`;
  return `[${k}]`;
}

function retName(k: number): string {
  const action = (k & 0xffff0000) >>> 0;
  if (action === SECCOMP_RET.SECCOMP_RET_ERRNO) return `ERRNO(${k & SECCOMP_RET.SECCOMP_RET_DATA})`;
  const named = Object.entries(SECCOMP_RET).find(([n, v]) => v === (k >>> 0) && n !== 'SECCOMP_RET_DATA');
  return named ? named[0].replace('SECCOMP_RET_', '') : hex(k);
}

/** One line per instruction, for --dry-run output and readable test failures. Covers the
 * opcodes seccomp accepts, not only the ones the compiler emits. */
export function disassembleBpf(program: Buffer): string[] {
  const jumps: Record<number, string> = { [BPF.BPF_JEQ]: 'jeq', [BPF.BPF_JGT]: 'jgt', [BPF.BPF_JGE]: 'jge', [BPF.BPF_JSET]: 'jset' };
  const alus: Record<number, string> = {
    [BPF.BPF_ADD]: 'add', [BPF.BPF_SUB]: 'sub', [BPF.BPF_MUL]: 'mul', [BPF.BPF_DIV]: 'div', [BPF.BPF_OR]: 'or', [BPF.BPF_AND]: 'and',
    [BPF.BPF_LSH]: 'lsh', [BPF.BPF_RSH]: 'rsh', [BPF.BPF_NEG]: 'neg', [BPF.BPF_MOD]: 'mod', [BPF.BPF_XOR]: 'xor',
  };
  return decodeProgram(program).map((insn, pc) => {
    const { code, jt, jf, k } = insn;
    const cls = code & 0x07;
    const src = (code & 0x08) === BPF.BPF_X ? 'x' : `#${hex(k)}`;
    let text: string;
    switch (cls) {
      case BPF.BPF_LD:
        text = (code & 0xe0) === BPF.BPF_ABS ? `ld ${dataName(k)}` : (code & 0xe0) === BPF.BPF_IMM ? `ld #${hex(k)}` : (code & 0xe0) === BPF.BPF_MEM ? `ld M[${k}]` : `ld ? ${hex(code)}`;
        break;
      case BPF.BPF_LDX:
        text = (code & 0xe0) === BPF.BPF_IMM ? `ldx #${hex(k)}` : (code & 0xe0) === BPF.BPF_MEM ? `ldx M[${k}]` : `ldx ? ${hex(code)}`;
        break;
      case BPF.BPF_ST:
        text = `st M[${k}]`;
        break;
      case BPF.BPF_STX:
        text = `stx M[${k}]`;
        break;
      case BPF.BPF_ALU:
        text = `${alus[code & 0xf0] ?? '?'} ${src}`;
        break;
      case BPF.BPF_JMP:
        text = (code & 0xf0) === BPF.BPF_JA ? `ja ${pc + 1 + k}` : `${jumps[code & 0xf0] ?? '?'} ${src} ? ${pc + 1 + jt} : ${pc + 1 + jf}`;
        break;
      case BPF.BPF_RET:
        text = (code & 0x18) === BPF.BPF_A ? 'ret a' : `ret ${retName(k)}`;
        break;
      default:
        text = (code & 0xf8) === BPF.BPF_TXA ? 'txa' : 'tax';
    }
    return `${String(pc).padStart(4, '0')}: ${text}`;
  });
}
