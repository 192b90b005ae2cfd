import { StringDecoder } from 'node:string_decoder';

/** Token counts as the audit event reports them, whichever API reported them. */
export interface TokenCounts {
  input?: number;
  output?: number;
  total?: number;
  cacheRead?: number;
  cacheWrite?: number;
}

/** The `usage` object of a response body or stream event, wherever the API puts it. */
export function findUsage(event: unknown): Record<string, unknown> | undefined {
  if (event === null || typeof event !== 'object') return undefined;
  const e = event as Record<string, unknown>;
  for (const candidate of [e.usage, (e.message as Record<string, unknown> | undefined)?.usage, (e.response as Record<string, unknown> | undefined)?.usage]) {
    if (candidate !== null && typeof candidate === 'object') return candidate as Record<string, unknown>;
  }
  return undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/**
 * Folds one usage object into the running counts. Later reports win field by field: Anthropic
 * streams input tokens in message_start and the final output count in message_delta.
 */
export function mergeUsage(prev: TokenCounts | undefined, usage: Record<string, unknown>): TokenCounts {
  const next: TokenCounts = { ...prev };
  const input = num(usage.prompt_tokens) ?? num(usage.input_tokens);
  const output = num(usage.completion_tokens) ?? num(usage.output_tokens);
  const total = num(usage.total_tokens);
  const cacheRead = num(usage.cache_read_input_tokens);
  const cacheWrite = num(usage.cache_creation_input_tokens);
  if (input !== undefined) next.input = input;
  if (output !== undefined) next.output = output;
  if (total !== undefined) next.total = total;
  if (cacheRead !== undefined) next.cacheRead = cacheRead;
  if (cacheWrite !== undefined) next.cacheWrite = cacheWrite;
  return next;
}

export function finishCounts(c: TokenCounts | undefined): TokenCounts | undefined {
  if (!c || Object.keys(c).length === 0) return undefined;
  if (c.total === undefined && c.input !== undefined && c.output !== undefined) return { ...c, total: c.input + c.output };
  return c;
}

/** Token counts of a complete JSON response body, if it reports them. */
export function usageFromJson(text: string): TokenCounts | undefined {
  try {
    const usage = findUsage(JSON.parse(text));
    return usage ? finishCounts(mergeUsage(undefined, usage)) : undefined;
  } catch {
    return undefined;
  }
}

const MAX_LINE = 1 << 20;

/**
 * Watches an SSE stream as it passes and keeps the token counts its events report. Only `data:`
 * lines that mention "usage" are parsed, so the per-chunk cost stays a scan for newlines.
 */
export function createSseUsageScanner(): { push(chunk: Buffer): void; result(): TokenCounts | undefined } {
  const decoder = new StringDecoder('utf8');
  let carry = '';
  let skipping = false;
  let counts: TokenCounts | undefined;
  const line = (l: string) => {
    if (!l.startsWith('data:') || !l.includes('"usage"')) return;
    try {
      const usage = findUsage(JSON.parse(l.slice(5)));
      if (usage) counts = mergeUsage(counts, usage);
    } catch {
      // Not JSON: not ours to judge; the client gets the bytes unchanged either way.
    }
  };
  return {
    push(chunk) {
      const text = decoder.write(chunk);
      let start = 0;
      let nl = text.indexOf('\n');
      while (nl >= 0) {
        const piece = carry + text.slice(start, nl);
        carry = '';
        if (!skipping) line(piece.endsWith('\r') ? piece.slice(0, -1) : piece);
        skipping = false;
        start = nl + 1;
        nl = text.indexOf('\n', start);
      }
      if (!skipping) {
        carry += text.slice(start);
        if (carry.length > MAX_LINE) {
          carry = '';
          skipping = true;
        }
      }
    },
    result: () => finishCounts(counts),
  };
}
