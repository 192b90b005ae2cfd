import type { IncomingMessage } from 'node:http';
import { defaultRouteName, type InferenceApi, type InferenceConfig } from '../../profile/inference.js';

/** Reading a caller's request: its body (capped), and the API whose error shape it expects. */

/** The whole body, or 'too_large' past `max` bytes (the rest is read and dropped), or 'aborted'. */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer | 'too_large' | 'aborted'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) over = true;
      if (!over) chunks.push(c);
    });
    // Past the cap the rest is read and dropped, so the 413 can still be delivered.
    req.on('end', () => resolve(over ? 'too_large' : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    req.on('close', () => {
      if (!req.complete) resolve('aborted');
    });
    req.on('error', () => resolve('aborted'));
  });
}

/** The error shape for a request that matched no route: Anthropic clients say so with their version header. Pure. */
export function guessApi(headers: IncomingMessage['headers'], config: InferenceConfig): InferenceApi {
  if (headers['anthropic-version'] !== undefined) return 'anthropic';
  const def = defaultRouteName(config);
  return config.routes.find((r) => r.name === def)?.api ?? 'openai';
}
