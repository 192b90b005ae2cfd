import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Imports run one way (DESIGN.md, "The one-way flow"): cli → launch → services → plan → profile →
 * policy. Every file of src/ belongs to a layer; a file may import its own layer and layers of a
 * lower rank, never a higher one, and never a different layer of the same rank (peers stay
 * independent, so either can change without the other).
 *
 * Why these ranks:
 * - base (0): the leaf utilities at the top of src/ (errors, errno, paths, log, cache, native
 *   loader, turns). Every layer reports errors and logs; they import nothing of clawjail's but
 *   each other.
 * - policy (0): the shared vocabulary — host patterns, IP parsing, TLS ports, the services'
 *   ports and socket path, the syscall and value tables. Several layers must agree on it, so it
 *   sits below all of them and imports nothing of clawjail's, not even base.
 * - profile (1): the schema and loader; it validates with policy's vocabulary and nothing above.
 * - host (1): facts gathered from the machine (addon probe, path facts, /proc). A peer of profile:
 *   facts do not depend on what the profile asks for, and the profile does not read the host.
 * - plan (2): pure (Profile, HostFacts, path facts) → LaunchPlan; it must not know how services
 *   are implemented, only where they listen (policy).
 * - openclaw (2): prepares OpenClaw's state dir and turns it into profile overrides and a command;
 *   a client of profile (and host paths), a peer of plan: neither decides for the other.
 * - services (3–5): they read the plan (DESIGN step 4) and the profile, and never change them.
 *   Inside: egress and inference (3) are independent peers; control (4) answers egress
 *   approvals so it may use their types; the root files (start.ts composes them all, channel.ts
 *   talks to the helper) come last (5).
 * - launch (6): launch.ts and the Sandbox handle it returns (sandbox.ts): the numbered steps,
 *   calling everything below; src/launch/ holds the steps' supervisor-side parts (sandbox dir,
 *   stdio, published ports, the helper process, start and failure mapping).
 * - tenants (7): the orchestrator is a client of launch().
 * - cli (8): src/cli/*, the commands; each may use any layer below, never src/cli.ts.
 * - entry points (9): src/cli.ts and src/index.ts; nothing in src/ imports them.
 *
 * `import type` counts too: a type import couples the layers as much as a value import (a change
 * below ripples up, and the type carries the other layer's vocabulary), even though TypeScript
 * erases it at run time. Dynamic `import()` counts as well; it only defers the load.
 */
interface Layer {
  name: string;
  rank: number;
}

const LAYERS: Record<string, Layer> = {};
const layer = (name: string, rank: number, ...prefixes: string[]) => {
  for (const p of prefixes) LAYERS[p] = { name, rank };
};
layer('base', 0, 'src/errors.ts', 'src/errno.ts', 'src/paths.ts', 'src/log.ts', 'src/cache.ts', 'src/native.ts', 'src/turns.ts', 'src/types/');
layer('policy', 0, 'src/policy/');
layer('profile', 1, 'src/profile/');
layer('host', 1, 'src/host/');
layer('plan', 2, 'src/plan/');
layer('openclaw', 2, 'src/openclaw/');
layer('services/egress', 3, 'src/services/egress/');
layer('services/inference', 3, 'src/services/inference/');
layer('services/control', 4, 'src/services/control/');
layer('services', 5, 'src/services/');
layer('launch', 6, 'src/launch.ts', 'src/launch/', 'src/sandbox.ts');
layer('tenants', 7, 'src/tenants/');
layer('cli', 8, 'src/cli/');
layer('src/cli.ts', 9, 'src/cli.ts');
layer('src/index.ts', 9, 'src/index.ts');

/** The layer of a repository-relative path (posix separators): the longest matching prefix. */
function layerOf(file: string): Layer | undefined {
  let best: string | undefined;
  for (const prefix of Object.keys(LAYERS)) {
    const hit = prefix.endsWith('/') ? file.startsWith(prefix) : file === prefix;
    if (hit && (best === undefined || prefix.length > best.length)) best = prefix;
  }
  return best === undefined ? undefined : LAYERS[best];
}

/** Why `from` may not import `to`, or undefined when it may. */
function layeringProblem(from: string, to: string): string | undefined {
  const a = layerOf(from);
  const b = layerOf(to);
  if (!a) return `${from} is in no layer: add it to LAYERS in test/unit/layering.test.ts`;
  if (!b) return `${to} is in no layer: add it to LAYERS in test/unit/layering.test.ts`;
  if (a.name === b.name || a.rank > b.rank) return undefined;
  if (a.rank === b.rank) return `${a.name} must not import ${b.name} (peers, both rank ${a.rank})`;
  return `${a.name} must not import ${b.name} (rank ${a.rank} below ${b.rank})`;
}

interface ImportRef {
  line: number;
  specifier: string;
}

/**
 * Every module a source file names: `import … from`, `import type … from`, `export … from`,
 * `import '…'` and `import('…')`. Static forms must start a line (so a commented-out import is not
 * read); their clause holds no quote, parenthesis or semicolon, so a match cannot run on into
 * the next statement.
 */
function findImports(text: string): ImportRef[] {
  const patterns = [
    /^[ \t]*import\s+(?:type\s+)?[^;'"()]*?\bfrom\s*(['"])([^'"]+)\1/gm,
    /^[ \t]*export\s+(?:type\s+)?(?:\*(?:\s+as\s+\w+)?|\{[^}]*\})\s*from\s*(['"])([^'"]+)\1/gm,
    /^[ \t]*import\s*(['"])([^'"]+)\1/gm,
    /\bimport\s*\(\s*(['"])([^'"]+)\1\s*\)/g,
  ];
  const refs: ImportRef[] = [];
  for (const re of patterns) {
    for (const m of text.matchAll(re)) {
      const start = m.index + m[0].length - m[0].trimStart().length;
      refs.push({ line: text.slice(0, start).split('\n').length, specifier: m[2]! });
    }
  }
  return refs.sort((x, y) => x.line - y.line);
}

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const toPosix = (p: string) => p.split(sep).join(posix.sep);

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** A relative specifier as the file it names (`./x.js` is `./x.ts` in src/). */
function resolveSpecifier(fromFile: string, specifier: string): string | undefined {
  const base = resolve(dirname(fromFile), specifier);
  for (const c of [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, join(base, 'index.ts')]) {
    if (existsSync(c) && statSync(c).isFile()) return c;
  }
  return undefined;
}

function layeringViolations(root: string): string[] {
  const problems: string[] = [];
  for (const file of sourceFiles(join(root, 'src'))) {
    const from = toPosix(relative(root, file));
    if (!layerOf(from)) problems.push(`${from} is in no layer: add it to LAYERS in test/unit/layering.test.ts`);
    for (const ref of findImports(readFileSync(file, 'utf8'))) {
      if (!ref.specifier.startsWith('.')) continue;
      const target = resolveSpecifier(file, ref.specifier);
      if (!target) {
        problems.push(`${from}:${ref.line} imports ${ref.specifier}, which names no file`);
        continue;
      }
      const to = toPosix(relative(root, target));
      const why = layeringProblem(from, to);
      if (why) problems.push(`${from}:${ref.line} imports ${to}: ${why}`);
    }
  }
  return problems;
}

describe('layering: imports run one way', () => {
  it('src/ imports nothing against the layers', () => {
    expect(layeringViolations(repo)).toEqual([]);
  });

  it('the scan sees every form of import, and not a commented-out one', () => {
    const text = [
      "import type { A } from '../services/a.js';",
      "import {",
      "  b,",
      "} from '../services/b.js';",
      "export { c } from '../services/c.js';",
      "export type * from '../services/d.js';",
      "import '../services/e.js';",
      "const f = await import('../services/f.js');",
      "// import { g } from '../services/g.js';",
      "const h = 'from \\'../services/h.js\\'';",
    ].join('\n');
    expect(findImports(text)).toEqual([
      { line: 1, specifier: '../services/a.js' },
      { line: 2, specifier: '../services/b.js' },
      { line: 5, specifier: '../services/c.js' },
      { line: 6, specifier: '../services/d.js' },
      { line: 7, specifier: '../services/e.js' },
      { line: 8, specifier: '../services/f.js' },
    ]);
  });

  it.each([
    ['src/plan/plan.ts', 'src/services/inference/router.ts', 'plan must not import services/inference (rank 2 below 3)'],
    ['src/profile/network.ts', 'src/services/egress/proxy.ts', 'profile must not import services/egress (rank 1 below 3)'],
    ['src/profile/seccomp.ts', 'src/plan/seccomp/index.ts', 'profile must not import plan (rank 1 below 2)'],
    ['src/openclaw/paths.ts', 'src/plan/plan.ts', 'openclaw must not import plan (peers, both rank 2)'],
    ['src/services/egress/proxy.ts', 'src/services/inference/router.ts', 'services/egress must not import services/inference (peers, both rank 3)'],
    ['src/cli/args.ts', 'src/cli.ts', 'cli must not import src/cli.ts (rank 8 below 9)'],
    ['src/policy/host.ts', 'src/errors.ts', 'policy must not import base (peers, both rank 0)'],
    ['src/launch.ts', 'src/tenants/orchestrator.ts', 'launch must not import tenants (rank 6 below 7)'],
  ])('%s → %s is refused', (from, to, why) => {
    expect(layeringProblem(from, to)).toBe(why);
  });

  it.each([
    ['src/services/start.ts', 'src/plan/plan.ts'],
    ['src/plan/plan.ts', 'src/policy/addresses.ts'],
    ['src/services/control/server.ts', 'src/services/egress/approvals.ts'],
    ['src/tenants/orchestrator.ts', 'src/launch.ts'],
    ['src/cli.ts', 'src/cli/run.ts'],
    ['src/native.ts', 'src/errors.ts'],
  ])('%s → %s is allowed', (from, to) => {
    expect(layeringProblem(from, to)).toBeUndefined();
  });
});

describe('README: the folder map shows the tree', () => {
  /** Folders of the "### Folder map" block, as paths: an entry ends in `/`, two spaces per level. */
  function mappedFolders(readme: string): string[] {
    const start = readme.indexOf('### Folder map');
    const open = readme.indexOf('```\n', start);
    const block = readme.slice(open + 4, readme.indexOf('\n```', open + 4));
    const stack: string[] = [];
    const out: string[] = [];
    for (const line of block.split('\n')) {
      const m = /^( *)(\S+\/)(?: |$)/.exec(line);
      if (!m) continue;
      const depth = m[1]!.length / 2;
      stack.length = depth;
      stack.push(m[2]!);
      out.push(stack.join(''));
    }
    return out;
  }

  function folders(dir: string): string[] {
    const out: string[] = [];
    for (const name of readdirSync(join(repo, dir)).sort()) {
      const p = `${dir}/${name}`;
      if (statSync(join(repo, p)).isDirectory()) out.push(`${p}/`, ...folders(p));
    }
    return out;
  }

  it('names every folder of src/ and native/, and no folder that is gone', () => {
    const mapped = mappedFolders(readFileSync(join(repo, 'README.md'), 'utf8'));
    const tree = [...folders('src'), ...folders('native')];
    expect(tree.filter((f) => !mapped.includes(f))).toEqual([]);
    expect(mapped.filter((f) => /^(src|native)\//.test(f) && !tree.includes(f) && f !== 'src/' && f !== 'native/')).toEqual([]);
  });
});
