import { Transform, type TransformCallback } from 'node:stream';

/**
 * Removes a route's key from everything the upstream sends back, before the sandbox sees it.
 * An upstream, or a debugging proxy in front of it, may reflect the request's headers in a body,
 * an SSE event or a response header; the key must not come back in any of the forms below:
 *
 *   - verbatim;
 *   - JSON-escaped: any character as `\uXXXX` (hex in either case), or `\"`, `\\`, `\/` for those
 *     three, in any mix with plain characters;
 *   - percent-encoded: any character as `%XX`, in any mix with plain characters (and with JSON
 *     escapes: one pattern covers both);
 *   - base64 and base64url: every text that contains the key, once encoded, contains the encoding
 *     of the key at one of three byte alignments, less the characters it shares with its
 *     neighbours. Those three fragments (in both alphabets) are searched for, so base64 of
 *     `Bearer <key>`, of a JSON dump of the headers, or of anything else holding the key is caught.
 *     The key as JSON escapes it (`\"`, `\\`) is encoded the same way.
 *     Fragments shorter than MIN_BASE64_FRAGMENT are not searched, so a key of under 7
 *     characters is not found in base64 at every alignment: such short fragments would match
 *     random base64 (embeddings) and corrupt it.
 *
 * Each match becomes REDACTED. The key is printable ASCII (resolveCredentials() refuses anything
 * else), so every form is ASCII and the text is handled as latin1: one char per byte, which leaves
 * any other byte, UTF-8 or binary, exactly as it was.
 *
 * Not covered: forms of forms (double JSON escaping, `%25XX`), hex, base64 wrapped across lines,
 * and any encoding a hostile upstream chooses on purpose; the route's upstream is trusted with the
 * key already, the scrubber stops an honest server or proxy that reflects what it received.
 */

export const REDACTED = '[redacted]';
export const MIN_BASE64_FRAGMENT = 8;
/**
 * A backslash in the key may stand for itself or for the start of a JSON escape, and the regex
 * tries both: the work per position doubles with each one. Real keys have none; past this many
 * the key is refused (at launch, by resolveCredentials).
 */
export const MAX_KEY_BACKSLASHES = 8;

export interface KeyPattern {
  /** Matches any form of any of the keys. Global; reset lastIndex before use. */
  regex: RegExp;
  /** The longest text one match can span. */
  maxLength: number;
  /** breaks[b] is 1 for a byte that no form of any key contains, so no match spans it. */
  breaks: Uint8Array;
}

/** The base64 text that encodes only bytes of `key`, at each of the three alignments. Pure. */
export function base64Fragments(key: string): string[] {
  const bytes = Buffer.from(key, 'latin1');
  const out = new Set<string>();
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    // Character i carries bits [6i, 6i+6); keep those lying wholly inside the key's bits.
    const first = Math.ceil((8 * offset) / 6);
    const end = Math.floor((8 * (offset + bytes.length)) / 6);
    const fragment = encoded.slice(first, end);
    if (fragment.length < MIN_BASE64_FRAGMENT) continue;
    out.add(fragment);
    out.add(fragment.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...out];
}

const hexClass = (digit: string) => (/[a-f]/.test(digit) ? `[${digit}${digit.toUpperCase()}]` : digit);
const escapeRegex = (s: string) => s.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');

/** The alternatives for one character of the key, as a regex group. */
function charForms(c: string): string {
  const hex = c.charCodeAt(0).toString(16).padStart(2, '0');
  const h = hexClass(hex[0]!) + hexClass(hex[1]!);
  const forms = [escapeRegex(c), `\\\\u00${h}`, `%${h}`];
  if (c === '"' || c === '\\' || c === '/') forms.push(`\\\\${escapeRegex(c)}`);
  return `(?:${forms.join('|')})`;
}

/** Bytes the escaped forms add to the key's own characters (`\"`, `\/` need no entry: those characters are the key's). */
const FORM_BYTES = '\\u%0123456789abcdefABCDEF';

/** Compiles the pattern for `keys`. Throws (code ERR_CLAWJAIL_SCRUB_KEY) on an empty or non-ASCII key. Pure. */
export function compileKeyPattern(keys: readonly string[]): KeyPattern {
  if (keys.length === 0) throw Object.assign(new Error('no key to scrub'), { code: 'ERR_CLAWJAIL_SCRUB_KEY' });
  const alternatives: string[] = [];
  const allowed = new Set<number>();
  let maxLength = 0;
  for (const ch of FORM_BYTES) allowed.add(ch.charCodeAt(0));
  for (const key of keys) {
    if (!/^[\x21-\x7e]+$/.test(key)) {
      throw Object.assign(new Error('a key to scrub must be non-empty printable ASCII'), { code: 'ERR_CLAWJAIL_SCRUB_KEY' });
    }
    if (key.split('\\').length - 1 > MAX_KEY_BACKSLASHES) {
      throw Object.assign(new Error(`a key to scrub may hold at most ${MAX_KEY_BACKSLASHES} backslashes`), { code: 'ERR_CLAWJAIL_SCRUB_KEY' });
    }
    alternatives.push([...key].map(charForms).join(''));
    maxLength = Math.max(maxLength, 6 * key.length);
    for (const ch of key) allowed.add(ch.charCodeAt(0));
    // A JSON dump of the headers escapes `"` and `\` before it is base64-encoded.
    const variants = new Set([key, JSON.stringify(key).slice(1, -1)]);
    for (const fragment of [...variants].flatMap(base64Fragments)) {
      alternatives.push(escapeRegex(fragment));
      maxLength = Math.max(maxLength, fragment.length);
      for (const ch of fragment) allowed.add(ch.charCodeAt(0));
    }
  }
  const breaks = new Uint8Array(256).fill(1);
  for (const b of allowed) breaks[b] = 0;
  return { regex: new RegExp(alternatives.join('|'), 'g'), maxLength, breaks };
}

/** Every form of the keys in `text` replaced; for header values and other whole strings. Pure. */
export function scrubText(pattern: KeyPattern, text: string): string {
  pattern.regex.lastIndex = 0;
  return text.replace(pattern.regex, REDACTED);
}

export interface KeyScrubber {
  /** The part of `carry + chunk` that is safe to send now, scrubbed. */
  push(chunk: Buffer): Buffer;
  /** What was held back, scrubbed; the stream's last bytes. */
  end(): Buffer;
  /** Matches replaced so far. */
  readonly redactions: number;
}

/**
 * A scrubber for one body. It holds back only a tail that could be the start of a form still
 * arriving: the bytes after the last byte no form contains, at most maxLength − 1. An SSE event
 * ends in a newline, so a stream of events leaves as it comes.
 */
export function createKeyScrubber(pattern: KeyPattern): KeyScrubber {
  const { regex, maxLength, breaks } = pattern;
  let carry = '';
  let redactions = 0;

  /** Scrubs text[0, cut) and returns [output, where the unsent rest starts]. */
  const scrubUpTo = (text: string, cut: number): [string | undefined, number] => {
    regex.lastIndex = 0;
    let out = '';
    let from = 0;
    let m: RegExpExecArray | null;
    while ((m = regex.exec(text)) !== null && m.index < cut) {
      out += text.slice(from, m.index) + REDACTED;
      from = m.index + m[0].length;
      redactions++;
    }
    if (from === 0) return [undefined, cut];
    const end = Math.max(cut, from);
    return [out + text.slice(from, end), end];
  };

  return {
    push(chunk) {
      if (chunk.length === 0) return chunk;
      const text = carry + chunk.toString('latin1');
      const floor = Math.max(0, text.length - (maxLength - 1));
      let cut = floor;
      for (let i = text.length - 1; i >= floor; i--) {
        if (breaks[text.charCodeAt(i)]) {
          cut = i + 1;
          break;
        }
      }
      const [out, end] = scrubUpTo(text, cut);
      const carried = carry;
      carry = text.slice(end);
      if (out !== undefined) return Buffer.from(out, 'latin1');
      // Nothing matched: the chunk's own bytes go out as they are, after what was carried in.
      if (carried.length === 0) return chunk.subarray(0, end);
      if (end <= carried.length) return Buffer.from(carried.slice(0, end), 'latin1');
      return Buffer.concat([Buffer.from(carried, 'latin1'), chunk.subarray(0, end - carried.length)]);
    },
    end() {
      const text = carry;
      carry = '';
      const [out] = scrubUpTo(text, text.length);
      return Buffer.from(out ?? text, 'latin1');
    },
    get redactions() {
      return redactions;
    },
  };
}

/** The scrubber as a Transform, for piping. */
export function createScrubStream(pattern: KeyPattern): Transform {
  const scrubber = createKeyScrubber(pattern);
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      const out = scrubber.push(chunk);
      done(null, out.length > 0 ? out : undefined);
    },
    flush(done: TransformCallback) {
      const out = scrubber.end();
      done(null, out.length > 0 ? out : undefined);
    },
  });
}
