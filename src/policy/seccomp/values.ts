import { ADDRESS_FAMILY, CLONE, ERRNO, IOCTL, NETLINK, PERSONALITY } from './tables/constants.js';
import { suggestNames } from './syscalls.js';

export type ArgWidth = 32 | 64;
/** How a profile writes an argument value: a number, or a string such as `"0x5412"`, `"-1"`,
 * `"TIOCSTI"` or `"CLONE_NEWUSER | CLONE_NEWNS"`. */
export type ArgValueInput = number | string;

/** Names a profile may use in argument values, so rules read as the man page does. The values
 * are the same on x86_64 and aarch64 (generated from the uapi headers). */
export const NAMED_VALUES: ReadonlyMap<string, number> = new Map(
  Object.entries({ ...ADDRESS_FAMILY, ...NETLINK, ...CLONE, ...IOCTL, ...PERSONALITY }).filter(([k]) => k !== 'AF_MAX'),
);

export function errnoNumber(name: string): number | undefined {
  return ERRNO[name];
}

export function suggestErrnos(name: string): string[] {
  return suggestNames(name.toUpperCase(), Object.keys(ERRNO));
}

const TWO_64 = 1n << 64n;

function parseTerm(term: string): bigint {
  const t = term.trim();
  if (/^-?(0x[0-9a-f]+|0o[0-7]+|0b[01]+|\d+)$/i.test(t)) {
    const neg = t.startsWith('-');
    const v = BigInt(neg ? t.slice(1) : t);
    return neg ? -v : v;
  }
  const named = NAMED_VALUES.get(t);
  if (named !== undefined) return BigInt(named);
  const close = suggestNames(t, NAMED_VALUES.keys());
  throw new Error(
    `"${t}" is neither a number nor a known constant` +
      (close.length ? ` (did you mean ${close.join(', ')}?)` : '') +
      `; write a number (decimal, 0x…) or one of the AF_*, NETLINK_*, CLONE_*, TIOC*/TCGETS/FIONREAD, PER_* names`,
  );
}

/**
 * The unsigned value a condition compares against, reduced to its width. Negative numbers are
 * two's complement (`-1` with width 32 is 0xffffffff). Throws an Error whose message says what
 * to write instead.
 */
export function resolveArgValue(input: ArgValueInput, width: ArgWidth): bigint {
  let v: bigint;
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input)) {
      throw new Error(`${input} is not an exact integer (YAML/JSON numbers lose precision above 2^53); write an integer, or a string such as "0xffffffffffffffff" for large values`);
    }
    v = BigInt(input);
  } else {
    const terms = input.split('|');
    if (terms.some((t) => t.trim() === '')) throw new Error(`"${input}" has an empty term; write values joined by |, such as "CLONE_NEWUSER | CLONE_NEWNS"`);
    const parsed = terms.map(parseTerm);
    if (parsed.length > 1 && parsed.some((p) => p < 0n)) throw new Error(`"${input}": negative numbers cannot be combined with |`);
    v = parsed.reduce((a, b) => a | b, 0n);
  }
  const limit = 1n << BigInt(width);
  if (v < 0n) {
    if (-v > limit / 2n) throw new Error(`${input} does not fit in ${width} bits`);
    v += limit;
  }
  if (v >= limit) {
    throw new Error(
      `${input} does not fit in ${width} bits` + (width === 32 ? '; use width: 64 if the argument is a long or a pointer' : ''),
    );
  }
  return v % TWO_64;
}
