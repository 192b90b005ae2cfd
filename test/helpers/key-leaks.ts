/**
 * An independent check for a key in text a client received: it decodes instead of encoding, so it
 * does not share the scrubber's assumptions. Returns how the key was found, or undefined.
 *
 *   expect(findKeyLeak(responseText, KEY)).toBeUndefined();
 */
export function findKeyLeak(text: string, key: string): string | undefined {
  if (text.includes(key)) return 'verbatim';
  const unjson = (t: string) => t.replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))).replace(/\\(["\\/])/g, '$1');
  const unpercent = (t: string) => t.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  if (unjson(text).includes(key)) return 'json-escaped';
  if (unpercent(text).includes(key)) return 'percent-encoded';
  if (unpercent(unjson(text)).includes(key) || unjson(unpercent(text)).includes(key)) return 'json+percent';
  for (const run of text.match(/[A-Za-z0-9+/_-]{8,}/g) ?? []) {
    const std = run.replace(/-/g, '+').replace(/_/g, '/');
    for (let shift = 0; shift < 4; shift++) {
      const decoded = Buffer.from(std.slice(shift), 'base64').toString('latin1');
      if (decoded.includes(key) || unjson(decoded).includes(key)) return `base64 (run at shift ${shift})`;
    }
  }
  return undefined;
}

/** The encodings of `value` a reflecting upstream may use; the fake upstream and the tests share them. */
export type EchoForm = 'plain' | 'json-escaped' | 'json-mixed' | 'percent' | 'percent-mixed' | 'base64' | 'base64url';

export const ECHO_FORMS: readonly EchoForm[] = ['plain', 'json-escaped', 'json-mixed', 'percent', 'percent-mixed', 'base64', 'base64url'];

/**
 * `value` in `form`, as it would stand inside a JSON string literal (json-* forms are escape
 * sequences already; the rest are plain ASCII that JSON.stringify leaves alone unless the value
 * holds `"` or `\`).
 */
export function encodeAs(form: EchoForm, value: string): string {
  const u = (c: string, upper: boolean) => {
    const h = c.charCodeAt(0).toString(16).padStart(4, '0');
    return `\\u${upper ? h.toUpperCase() : h}`;
  };
  const pct = (c: string) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;
  switch (form) {
    case 'plain':
      return value;
    case 'json-escaped':
      return [...value].map((c) => u(c, false)).join('');
    case 'json-mixed':
      return [...value].map((c, i) => (i % 2 ? u(c, true) : c)).join('');
    case 'percent':
      return [...value].map(pct).join('');
    case 'percent-mixed':
      return [...value].map((c, i) => (i % 2 ? c : pct(c))).join('');
    case 'base64':
      return Buffer.from(value, 'latin1').toString('base64');
    case 'base64url':
      return Buffer.from(value, 'latin1').toString('base64url');
  }
}
