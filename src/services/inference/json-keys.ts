/**
 * Duplicate object keys in a JSON text. `JSON.parse` keeps the last of two equal keys; other
 * parsers keep the first, or fail, or match names without regard to case (Go's encoding/json), so
 * a body with duplicates can mean one thing to the router's policy and another to the upstream.
 * The router refuses such bodies instead of guessing which reading the upstream will take.
 */

export interface DuplicateKey {
  /** Where the object holding it sits: `$` for the top level, `$.messages[].content` below. */
  at: string;
  key: string;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The first key that appears twice in one object, at any depth, compared after unescaping
 * (`"model"` equals `"mod\u0065l"`). Expects text that JSON.parse has accepted. Pure; linear;
 * no recursion, so depth costs nothing but the stack array.
 */
export function findDuplicateKey(text: string): DuplicateKey | undefined {
  type Frame = { keys: Set<string>; expectKey: boolean; at: string; lastKey: string } | { keys: undefined; at: string };
  const stack: Frame[] = [];
  const childAt = (): string => {
    const top = stack[stack.length - 1];
    if (!top) return '$';
    return top.keys ? `${top.at}.${top.lastKey}` : `${top.at}[]`;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const raw = text.slice(i + 1, end);
        const key = raw.includes('\\') ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        if (top.keys.has(key)) return { at: top.at, key };
        top.keys.add(key);
        top.expectKey = false;
        top.lastKey = key;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      stack.push({ keys: new Set(), expectKey: true, at: childAt(), lastKey: '' });
    } else if (c === 0x5b /* [ */) {
      stack.push({ keys: undefined, at: childAt() });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return undefined;
}

/** Index of the quote closing the string that opens at `start`. */
function stringEnd(text: string, start: number): number {
  let q = text.indexOf('"', start + 1);
  for (;;) {
    if (q < 0) return text.length;
    let slashes = 0;
    for (let k = q - 1; text.charCodeAt(k) === BACKSLASH; k--) slashes++;
    if (slashes % 2 === 0) return q;
    q = text.indexOf('"', q + 1);
  }
}

/**
 * Top-level keys other than `model` that a case-insensitive parser would read as `model`
 * (`MODEL`, `Model`, `mOdEl`). Pure.
 */
export function modelLookalikes(obj: Record<string, unknown>): string[] {
  return Object.keys(obj).filter((k) => k !== 'model' && fold(k) === 'model');
}

/** Case folding at least as wide as Go's EqualFold (which also folds K, U+212A, to k and ſ, U+017F, to s). */
function fold(s: string): string {
  return s.toUpperCase().toLowerCase();
}
