/**
 * Layering rule for profiles: objects merge key by key, lists are appended (duplicates dropped),
 * scalars from the upper layer replace the lower. It is the same rule for every section, so a
 * profile reads as "what this adds to its base".
 */
export function mergeProfiles(lower: unknown, upper: unknown): unknown {
  if (upper === undefined) return lower;
  if (Array.isArray(lower) && Array.isArray(upper)) {
    const seen = new Set<string>();
    const out: unknown[] = [];
    for (const item of [...lower, ...upper]) {
      const key = JSON.stringify(item);
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(item);
    }
    return out;
  }
  if (isPlainObject(lower) && isPlainObject(upper)) {
    const out: Record<string, unknown> = { ...lower };
    for (const [k, v] of Object.entries(upper)) out[k] = mergeProfiles(lower[k], v);
    return out;
  }
  return upper;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
