/**
 * Just enough semver to check a Node version against an `engines.node` range such as
 * `>=24.16.0 <25 || >=26.1.0`. clawjail has no semver dependency, and OpenClaw's ranges only
 * use comparators joined by spaces and `||`.
 */

export type Version = readonly [number, number, number];

export function parseVersion(text: string): Version | undefined {
  const m = /^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(text);
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

export function compareVersions(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/**
 * True when `version` satisfies `range`. A partial upper bound (`<25`) means `<25.0.0`, as in
 * npm. Throws on syntax outside the subset so a new kind of range is noticed, not misread.
 */
export function satisfiesRange(version: string, range: string): boolean {
  const v = parseVersion(version);
  if (!v) throw new Error(`not a version: ${version}`);
  return range.split('||').some((alt) => {
    const parts = alt.trim().split(/\s+/).filter(Boolean);
    if (parts.length === 0) return true;
    return parts.every((part) => {
      const m = /^(>=|<=|>|<|=)?v?(\d+(?:\.\d+){0,2})$/.exec(part);
      if (!m) throw new Error(`unsupported version range: ${range}`);
      const bound = parseVersion(m[2] ?? '');
      if (!bound) throw new Error(`unsupported version range: ${range}`);
      const c = compareVersions(v, bound);
      switch (m[1] ?? '=') {
        case '>=': return c >= 0;
        case '>': return c > 0;
        case '<=': return c <= 0;
        case '<': return c < 0;
        default: return c === 0;
      }
    });
  });
}
