import type { Transform } from 'node:stream';
import zlib from 'node:zlib';

/**
 * Compressed upstream answers. The router asks for `accept-encoding: identity`; an upstream that
 * compresses anyway has its body decoded here so the key scrubber can read it, and the caller
 * gets it uncompressed (without content-encoding). An encoding zlib cannot undo is refused
 * (502 upstream_encoding) rather than passed on unread.
 */

export type Coding = 'gzip' | 'deflate' | 'br';

const CODINGS: ReadonlyMap<string, Coding | 'identity'> = new Map([
  ['gzip', 'gzip'],
  ['x-gzip', 'gzip'],
  ['deflate', 'deflate'],
  ['br', 'br'],
  ['identity', 'identity'],
]);

/** The codings of a content-encoding header, in the order they were applied. Pure. */
export function parseContentEncoding(header: string | undefined): { ok: true; codings: Coding[] } | { ok: false; coding: string } {
  const codings: Coding[] = [];
  for (const token of (header ?? '').split(',')) {
    const name = token.trim().toLowerCase();
    if (name === '') continue;
    const coding = CODINGS.get(name);
    if (coding === undefined) return { ok: false, coding: name.slice(0, 40) };
    if (coding !== 'identity') codings.push(coding);
  }
  return { ok: true, codings };
}

/**
 * Decoders to pipe through, last-applied coding first; empty for identity. HTTP's "deflate" is
 * the zlib format; a server sending raw deflate under that name fails to decode (upstream_encoding).
 */
export function createDecoders(codings: readonly Coding[]): Transform[] {
  return [...codings].reverse().map((c) => (c === 'gzip' ? zlib.createGunzip() : c === 'br' ? zlib.createBrotliDecompress() : zlib.createInflate()));
}
