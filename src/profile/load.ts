import { existsSync, readFileSync } from 'node:fs';
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
}

const MAX_DEPTH = 8;

/** Step 1 of the launch: read and validate; touches nothing else. */
export function loadProfile(options: LoadProfileOptions = {}): LoadedProfile {
  return finishProfile(readProfileBase(options), options.overrides);
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
export function finishProfile(base: ProfileBase, overrides: unknown[] = []): LoadedProfile {
  let raw = base.raw;
  for (const o of overrides) {
    if (o !== undefined) raw = mergeProfiles(raw, o);
  }
  if (isPlainObject(raw)) {
    raw = { ...raw };
    delete (raw as Record<string, unknown>).extends;
  }
  return { profile: parseProfile(raw, base.sources), sources: [...base.sources], ...(base.file ? { file: base.file } : {}) };
}

export function parseProfile(raw: unknown, sources: string[] = []): Profile {
  const result = ProfileSchema.safeParse(raw);
  if (result.success) return result.data;
  throw profileError(result.error, sources);
}

function profileError(error: z.ZodError, sources: string[]): ClawjailError {
  const lines = error.issues.map((i) => {
    const path = i.path.length ? i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(top level)';
    return `  ${path}: ${i.message}`;
  });
  const from = sources.length ? ` (from ${sources.join(' + ')})` : '';
  return new ClawjailError('ERR_CLAWJAIL_PROFILE', `invalid profile${from}:\n${lines.join('\n')}`, {
    hint: 'fix the fields named above; `clawjail profile --schema` lists every field with its meaning',
  });
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

export function readProfileFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `cannot read profile ${path}: ${err.code ?? err.message}`, {
      hint: 'check the path and its permissions',
      path,
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
  const value = doc.toJS() as unknown;
  return value ?? {};
}
