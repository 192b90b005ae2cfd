import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ClawjailError } from '../errors.js';
import { profilesDir } from '../paths.js';
import { isPlainObject, mergeProfiles } from './merge.js';
import { ProfileSchema, type Profile } from './schema.js';

export const BUILTIN_PROFILES = ['default', 'strict', 'openclaw'] as const;

export interface LoadedProfile {
  profile: Profile;
  /** Files read, base first. */
  sources: string[];
  /** The user's own profile file, when one was given (where `approve --always` writes rules). */
  file?: string;
}

export interface LoadProfileOptions {
  /** Built-in name, file path, or an already-parsed raw object. Default: "default". */
  profile?: string | Record<string, unknown>;
  /** Raw fragments layered on top in order (CLI flags, library options). */
  overrides?: unknown[];
  cwd?: string;
  /**
   * Names for fields that overrides set (CLI flags): 'filesystem.sandboxDir' → '--sandbox-dir'.
   * An invalid value that came from an override is then reported under that name, not as a fault
   * of the profile file it was layered on.
   */
  fieldLabels?: Record<string, string>;
}

const MAX_DEPTH = 8;

/** Step 1 of the launch: read and validate; touches nothing else. */
export function loadProfile(options: LoadProfileOptions = {}): LoadedProfile {
  return finishProfile(readProfileBase(options), options.overrides, options.fieldLabels);
}

/** The profile reference read and layered on its `extends` chain, before overrides and validation. */
export interface ProfileBase {
  raw: unknown;
  sources: string[];
  file?: string;
}

/** The file-reading half of loadProfile: what an orchestrator can share between tenants. */
export function readProfileBase(options: Pick<LoadProfileOptions, 'profile' | 'cwd'> = {}): ProfileBase {
  const cwd = options.cwd ?? process.cwd();
  const sources: string[] = [];
  let raw: unknown;
  let file: string | undefined;
  const ref = options.profile ?? 'default';
  if (typeof ref === 'string') {
    const path = resolveProfileRef(ref, cwd);
    if (!BUILTIN_PROFILES.includes(ref as (typeof BUILTIN_PROFILES)[number])) file = path;
    raw = readLayered(path, sources, 0);
  } else {
    raw = layerOnBase(ref, '<library options>', cwd, sources, 0);
  }
  return { raw, sources, ...(file ? { file } : {}) };
}

/** The pure half: overrides merged on a base, then validated. Does not modify `base`. */
export function finishProfile(base: ProfileBase, overrides: unknown[] = [], fieldLabels?: Record<string, string>): LoadedProfile {
  let raw = base.raw;
  for (const o of overrides) {
    if (o !== undefined) raw = mergeProfiles(raw, o);
  }
  if (isPlainObject(raw)) {
    raw = { ...raw };
    delete (raw as Record<string, unknown>).extends;
  }
  const merged = raw;
  const blame = fieldLabels
    ? (path: PropertyKey[]) => {
        const field = path.filter((k) => typeof k !== 'number').map(String).join('.');
        const key = Object.keys(fieldLabels).find((k) => field === k || field.startsWith(k + '.'));
        return key && overrides.some((o) => setBy(o, merged, path)) ? fieldLabels[key] : undefined;
      }
    : undefined;
  return { profile: parseProfile(raw, base.sources, blame), sources: [...base.sources], ...(base.file ? { file: base.file } : {}) };
}

export function parseProfile(raw: unknown, sources: string[] = [], blame?: (path: PropertyKey[]) => string | undefined): Profile {
  const result = ProfileSchema.safeParse(raw);
  if (result.success) return result.data;
  throw profileError(result.error, sources, blame);
}

/** Whether the value at `path` of the merged profile is the one `override` put there. */
function setBy(override: unknown, merged: unknown, path: PropertyKey[]): boolean {
  let o = override;
  let m = merged;
  for (const k of path) {
    if (typeof k === 'number') {
      // Lists are appended when merged: find the merged item among the override's items.
      if (!Array.isArray(o) || !Array.isArray(m)) return false;
      const item = JSON.stringify(m[k]);
      o = o.find((x) => JSON.stringify(x) === item);
      m = m[k];
    } else {
      if (!isPlainObject(o) || !isPlainObject(m)) return false;
      o = o[String(k)];
      m = m[String(k)];
    }
    if (o === undefined) return false;
  }
  return JSON.stringify(o) === JSON.stringify(m);
}

function profileError(error: z.ZodError, sources: string[], blame?: (path: PropertyKey[]) => string | undefined): ClawjailError {
  const blamed = error.issues.map((i) => blame?.(i.path));
  const lines = error.issues.map((i, n) => {
    const path = i.path.length ? i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(top level)';
    const message = i.code === 'unrecognized_keys' ? withSuggestions(i.message, i.keys, knownKeysAt(i.path)) : i.message;
    return blamed[n] ? `  ${blamed[n]} (${path}): ${message}` : `  ${path}: ${message}`;
  });
  if (blamed.every(Boolean)) {
    const flags = [...new Set(blamed)];
    if (lines.length === 1) {
      return new ClawjailError('ERR_CLAWJAIL_USAGE', `${lines[0]!.trim()}`, { hint: `\`clawjail run --help\` lists the options` });
    }
    return new ClawjailError('ERR_CLAWJAIL_USAGE', `invalid ${flags.join(', ')}:\n${lines.join('\n')}`, {
      hint: `fix the value of ${flags.join(', ')}; \`clawjail run --help\` lists the options`,
    });
  }
  const from = sources.length ? ` (from ${sources.join(' + ')}${blamed.some(Boolean) ? ' + command-line options' : ''})` : '';
  return new ClawjailError('ERR_CLAWJAIL_PROFILE', `invalid profile${from}:\n${lines.join('\n')}`, {
    hint: 'fix the fields named above; `clawjail profile --schema` lists every field with its meaning',
  });
}

/** The field names the schema allows at a path of the profile (empty when the path is not an object). */
export function knownKeysAt(path: PropertyKey[]): string[] {
  let node: unknown = ProfileSchema;
  const unwrap = (n: unknown): unknown => {
    let cur = n as { def?: { type?: string; innerType?: unknown; element?: unknown; in?: unknown } } | undefined;
    for (let i = 0; i < 8 && cur?.def; i++) {
      const d = cur.def;
      if (d.innerType) cur = d.innerType as typeof cur;
      else if (d.type === 'pipe' && d.in) cur = d.in as typeof cur;
      else break;
    }
    return cur;
  };
  for (const k of path) {
    const n = unwrap(node) as { def?: { type?: string; element?: unknown }; shape?: Record<string, unknown> } | undefined;
    if (typeof k === 'number') node = n?.def?.type === 'array' ? n.def.element : undefined;
    else node = n?.shape?.[String(k)];
    if (!node) return [];
  }
  const last = unwrap(node) as { shape?: Record<string, unknown> } | undefined;
  return last?.shape ? Object.keys(last.shape) : [];
}

/** "Unrecognized key: x" + ", did you mean y?" when a known key is a small edit away. */
function withSuggestions(message: string, keys: string[], known: string[]): string {
  const hints = keys.flatMap((k) => {
    const best = known.map((c) => ({ c, d: editDistance(k.toLowerCase(), c.toLowerCase()) })).sort((a, b) => a.d - b.d)[0];
    return best && best.d <= Math.max(2, Math.floor(k.length / 3)) ? [`'${k}': did you mean '${best.c}'?`] : [];
  });
  return hints.length ? `${message} (${hints.join('; ')})` : known.length ? `${message} (known here: ${known.join(', ')})` : message;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

export function resolveProfileRef(ref: string, cwd: string): string {
  if ((BUILTIN_PROFILES as readonly string[]).includes(ref)) return join(profilesDir, `${ref}.yaml`);
  const path = isAbsolute(ref) ? ref : resolve(cwd, ref);
  if (!existsSync(path)) {
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `profile '${ref}' is neither a built-in profile nor an existing file (looked for ${path})`, {
      hint: `use one of ${BUILTIN_PROFILES.join(', ')} or a path to a YAML/JSON profile`,
      path,
    });
  }
  return path;
}

function readLayered(path: string, sources: string[], depth: number, chain: string[] = []): unknown {
  if (chain.includes(path)) {
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `profile ${path} extends itself (cycle: ${[...chain, path].join(' -> ')})`, {
      hint: 'remove the cycle from the `extends` fields',
    });
  }
  const raw = readProfileFile(path);
  return layerOnBase(raw, path, dirname(path), sources, depth, [...chain, path]);
}

function layerOnBase(raw: unknown, label: string, dir: string, sources: string[], depth: number, chain: string[] = []): unknown {
  if (depth > MAX_DEPTH) {
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `profile ${label}: more than ${MAX_DEPTH} levels of extends`, { hint: 'flatten the profile chain' });
  }
  if (!isPlainObject(raw)) {
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `profile ${label}: expected a mapping at the top level`, {
      hint: 'a profile is a YAML/JSON object such as `network: {allow: [...]}`',
    });
  }
  const isDefault = label === join(profilesDir, 'default.yaml');
  const ext = raw.extends ?? (isDefault ? 'none' : 'default');
  if (typeof ext !== 'string') {
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `profile ${label}: extends must be a string`, { hint: 'e.g. `extends: default`' });
  }
  let base: unknown = {};
  if (ext !== 'none') base = readLayered(resolveProfileRef(ext, dir), sources, depth + 1, chain);
  if (label.startsWith('/')) sources.push(label);
  const { extends: _drop, ...rest } = raw;
  return mergeProfiles(base, rest);
}

/** Profiles are small; a bigger file is a mistake or an attack on the parser. */
export const MAX_PROFILE_BYTES = 1 << 20;
/** YAML aliases may be used, but not to multiply a document (the "billion laughs"). */
const MAX_ALIAS_COUNT = 100;

export function readProfileFile(path: string): unknown {
  let text: string;
  try {
    const size = statSync(path).size;
    if (size > MAX_PROFILE_BYTES) {
      throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `profile ${path} is ${size} bytes, over the ${MAX_PROFILE_BYTES}-byte limit for a profile`, {
        hint: 'a profile holds settings, not data: check that the path names the profile you meant',
        path,
      });
    }
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof ClawjailError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `cannot read profile ${path}: ${err.code ?? err.message}`, {
      hint: 'check the path and its permissions',
      path,
      cause: e,
    });
  }
  // YAML is a superset of JSON, so one parser reads both.
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    const first = doc.errors[0]!;
    const where = first.linePos?.[0] ? `line ${first.linePos[0].line}, column ${first.linePos[0].col}` : 'unknown position';
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `profile ${path} is not valid YAML/JSON (${where}): ${first.message.split('\n')[0]}`, {
      hint: 'fix the syntax at the position named',
      path,
    });
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    // The yaml package throws a ReferenceError for an alias that expands past the count.
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `profile ${path}: its YAML aliases (*name) expand to more than ${MAX_ALIAS_COUNT} copies`, {
      hint: 'write the repeated parts out, or use fewer aliases; this limit stops a small file from expanding into a huge profile',
      path,
      cause: e,
    });
  }
  return value ?? {};
}
