import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { ClawjailError } from '../errors.js';

/**
 * A JSON file clawjail wrote and validates on the way back in: undefined when absent, a
 * ClawjailError naming the file and how to rebuild it when it is not valid JSON or not of the
 * expected shape (never a raw SyntaxError).
 */
export async function readJsonFile<S extends z.ZodType>(file: string, schema: S, what: string, hint: string): Promise<z.infer<S> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ClawjailError('ERR_CLAWJAIL_OPENCLAW', `${what} ${file} is damaged`, { hint, path: file });
  return parsed.data;
}
