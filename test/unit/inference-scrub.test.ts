import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { base64Fragments, compileKeyPattern, createKeyScrubber, createScrubStream, MAX_KEY_BACKSLASHES, MIN_BASE64_FRAGMENT, REDACTED, scrubText } from '../../src/services/inference/scrub.js';
import { encodeAs, ECHO_FORMS, findKeyLeak, type EchoForm } from '../helpers/key-leaks.js';

const TYPICAL = 'sk-proj-Abc123_xyz-7890QRS';
// Every regex metacharacter, both JSON short escapes, a percent sign and a slash.
const NASTY = 'k.*+?^$()[]{}|\\/"%-ok';

/** Feeds `parts` through one scrubber and returns everything it let out. */
function feed(key: string | string[], parts: (string | Buffer)[]): Buffer {
  const s = createKeyScrubber(compileKeyPattern(Array.isArray(key) ? key : [key]));
  const out = parts.map((p) => s.push(typeof p === 'string' ? Buffer.from(p, 'latin1') : p));
  out.push(s.end());
  return Buffer.concat(out);
}

/** Every way to cut `text` in two, and byte by byte. */
function splits(text: string): string[][] {
  const all: string[][] = [];
  for (let i = 0; i <= text.length; i++) all.push([text.slice(0, i), text.slice(i)]);
  all.push([...text]);
  return all;
}

/** The forms the brief names, for one key, each as the scrubber must see it in a body. */
function formsOf(key: string): [string, string][] {
  const json = JSON.stringify(key).slice(1, -1);
  const forms: [string, string][] = ECHO_FORMS.map((f: EchoForm) => [f, encodeAs(f, key)]);
  forms.push(
    ['json-escaped upper', encodeAs('json-escaped', key).replace(/\\u([0-9a-f]{4})/g, (_, h: string) => `\\u${h.toUpperCase()}`)],
    ['JSON.stringify', json],
    ['slash escaped', json.replace(/\//g, '\\/')],
    ['percent lower-case', encodeAs('percent', key).toLowerCase()],
    ['encodeURIComponent', encodeURIComponent(key)],
    ['base64 Bearer', Buffer.from(`Bearer ${key}`).toString('base64')],
    ['base64url Bearer', Buffer.from(`Bearer ${key}`).toString('base64url')],
    ['base64 offset 1', Buffer.from(`x${key}`).toString('base64')],
    ['base64 offset 2', Buffer.from(`xy${key}`).toString('base64')],
    ['base64 of a header dump', Buffer.from(JSON.stringify({ headers: { Authorization: `Bearer ${key}`, 'X-Api-Key': key } })).toString('base64')],
  );
  return forms;
}

describe('base64Fragments', () => {
  it('every base64 text holding the key holds one of the fragments, whatever precedes and follows it', () => {
    const frags = base64Fragments(TYPICAL);
    expect(frags.length).toBeGreaterThanOrEqual(3);
    for (const before of ['', 'a', 'ab', 'abc', 'Bearer ', '{"k":"']) {
      for (const after of ['', 'z', 'zz', '"}']) {
        const text = `${before}${TYPICAL}${after}`;
        expect(frags.some((f) => Buffer.from(text).toString('base64').includes(f)), `${before}|${after}`).toBe(true);
        expect(frags.some((f) => Buffer.from(text).toString('base64url').includes(f)), `url ${before}|${after}`).toBe(true);
      }
    }
  });

  it('leaves out fragments too short to tell from random base64 (keys under 7 characters)', () => {
    expect(base64Fragments('abcdef')).toEqual(['YWJjZGVm']); // offset 0 only: 8 characters
    expect(base64Fragments('abcde')).toEqual([]);
    expect(base64Fragments('abcdefgh').every((f) => f.length >= MIN_BASE64_FRAGMENT)).toBe(true);
  });
});

describe('compileKeyPattern', () => {
  it('refuses an empty or non-ASCII key with a code', () => {
    expect(() => compileKeyPattern([])).toThrow(expect.objectContaining({ code: 'ERR_CLAWJAIL_SCRUB_KEY' }));
    expect(() => compileKeyPattern([''])).toThrow(expect.objectContaining({ code: 'ERR_CLAWJAIL_SCRUB_KEY' }));
    expect(() => compileKeyPattern(['sk key'])).toThrow(expect.objectContaining({ code: 'ERR_CLAWJAIL_SCRUB_KEY' }));
    expect(() => compileKeyPattern(['sk-ключ'])).toThrow(expect.objectContaining({ code: 'ERR_CLAWJAIL_SCRUB_KEY' }));
    // each backslash doubles the regex's work per position; more than 8 is refused
    expect(() => compileKeyPattern([`sk-${'\\'.repeat(MAX_KEY_BACKSLASHES + 1)}`])).toThrow(expect.objectContaining({ code: 'ERR_CLAWJAIL_SCRUB_KEY' }));
  });

  it('stays fast on hostile text for a key at the backslash limit', () => {
    const key = `sk-${'\\'.repeat(MAX_KEY_BACKSLASHES)}x`;
    const p = compileKeyPattern([key]);
    const text = `sk-${'\\\\'.repeat(MAX_KEY_BACKSLASHES)}y `.repeat(2000);
    const t0 = performance.now();
    expect(scrubText(p, text)).toBe(text);
    expect(scrubText(p, `a ${key} b`)).toBe(`a ${REDACTED} b`);
    // about 5 ms here; a regex that backtracked without bound would take seconds
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('a key made of regex metacharacters matches only itself', () => {
    const p = compileKeyPattern([NASTY]);
    expect(scrubText(p, `a ${NASTY} b`)).toBe(`a ${REDACTED} b`);
    // what the metacharacters would match were they not escaped
    expect(scrubText(p, 'kXXXXok kk.*+?^$()[]{}|\\/"%-o')).toBe('kXXXXok kk.*+?^$()[]{}|\\/"%-o');
  });
});

describe.each([
  ['typical', TYPICAL],
  ['regex metacharacters', NASTY],
])('createKeyScrubber, %s key', (_label, key) => {
  const forms = formsOf(key).filter(([name]) => key !== NASTY || !name.includes('base64') || base64Fragments(key).length > 0);
  it.each(forms)('%s: removed whole, and split at every byte', (name, form) => {
    const text = `data: {"echo":"${form}","n":1}\n\n`;
    const once = feed(key, [text]).toString('latin1');
    expect(findKeyLeak(once, key), name).toBeUndefined();
    expect(once).toContain(REDACTED);
    if (!name.includes('base64')) expect(once).toBe(`data: {"echo":"${REDACTED}","n":1}\n\n`);
    for (const parts of splits(text)) expect(feed(key, parts).toString('latin1'), `${name} split ${parts.length === 2 ? parts[0]!.length : 'bytewise'}`).toBe(once);
  });

  it('the forms found in one body, many times, across chunk boundaries', () => {
    const body = formsOf(key)
      .map(([, f]) => `<${f}>`)
      .join(' ')
      .repeat(3);
    const once = feed(key, [body]).toString('latin1');
    expect(findKeyLeak(once, key)).toBeUndefined();
    for (const size of [1, 2, 3, 5, 7, 64]) {
      const parts: string[] = [];
      for (let i = 0; i < body.length; i += size) parts.push(body.slice(i, i + size));
      expect(feed(key, parts).toString('latin1'), `chunks of ${size}`).toBe(once);
    }
  });
});

describe('createKeyScrubber holds back only what might be a key', () => {
  const pattern = compileKeyPattern([TYPICAL]);

  it('an SSE event leaves whole, at once: it ends in a newline, which no form contains', () => {
    const s = createKeyScrubber(pattern);
    const event = Buffer.from('data: {"choices":[{"delta":{"content":"tok "}}]}\n\n');
    const out = s.push(event);
    // not even copied
    expect([out.buffer, out.byteOffset, out.length]).toEqual([event.buffer, event.byteOffset, event.length]);
    expect(out.equals(event)).toBe(true);
    expect(s.end().length).toBe(0);
  });

  it('a chunk ending in key characters keeps them back, and only them, until more arrives', () => {
    const s = createKeyScrubber(pattern);
    expect(s.push(Buffer.from('{"text":"hello sk-proj')).toString()).toBe('{"text":"hello ');
    expect(s.push(Buffer.from('-Abc123_xyz-7890QRS and more"}')).toString()).toBe(`sk-proj-Abc123_xyz-7890QRS and more"}`.replace(TYPICAL, REDACTED));
    expect(s.end().length).toBe(0);
    expect(s.redactions).toBe(1);
  });

  it('never holds more than the longest form less one byte', () => {
    const s = createKeyScrubber(pattern);
    const run = 'A'.repeat(10_000);
    const out = s.push(Buffer.from(run));
    expect(out.length).toBe(run.length - (pattern.maxLength - 1));
    expect(s.end().length).toBe(pattern.maxLength - 1);
  });

  it('bytes that hold no key pass unchanged: UTF-8 and binary', () => {
    const bin = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) & 0xff));
    const utf8 = Buffer.from('日本語 🦀 ünïcödé «quoted» \u2028 end', 'utf8');
    for (const b of [bin, utf8]) {
      expect(feed(TYPICAL, [b.subarray(0, 100), b.subarray(100)]).equals(b)).toBe(true);
    }
    // a key next to UTF-8 is still removed, and the UTF-8 kept
    expect(feed(TYPICAL, [Buffer.from(`é${TYPICAL}🦀`, 'utf8')]).toString('utf8')).toBe(`é${REDACTED}🦀`);
  });

  it('several keys at once', () => {
    expect(feed(['sk-first-000000', 'sk-second-11111'], [`a sk-first-000000 b sk-second-11111 c`]).toString()).toBe(`a ${REDACTED} b ${REDACTED} c`);
  });

  it('a short key is still removed verbatim and escaped, but not as base64', () => {
    expect(feed('ab', ['xabx \\u0061b a%62']).toString()).toBe(`x${REDACTED}x ${REDACTED} ${REDACTED}`);
    const b64 = Buffer.from('ab').toString('base64');
    expect(feed('ab', [b64]).toString()).toBe(b64);
  });

  it('as a Transform, chunked', async () => {
    const parts = ['data: {"k":"sk-pr', 'oj-Abc123_', 'xyz-7890QRS"}\n\n', `data: ${Buffer.from(`Bearer ${TYPICAL}`).toString('base64')}\n\n`];
    const chunks: Buffer[] = [];
    for await (const c of Readable.from(parts.map((p) => Buffer.from(p))).pipe(createScrubStream(pattern))) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    expect(text.startsWith(`data: {"k":"${REDACTED}"}\n\n`)).toBe(true);
    expect(findKeyLeak(text, TYPICAL)).toBeUndefined();
  });
});
