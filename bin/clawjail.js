#!/usr/bin/env node
// Starts the CLI from dist/cli.cjs (one file) with a V8 code cache kept in the user's cache dir,
// so a run skips parsing and compiling it; falls back to the plain ESM build.
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import vm from 'node:vm';

const here = import.meta.dirname ?? dirname(new URL(import.meta.url).pathname);
const bundle = join(here, '..', 'dist', 'cli.cjs');

function cachePath() {
  if (process.env.CLAWJAIL_NO_CACHE === '1') return undefined;
  let id;
  try {
    id = readFileSync(join(here, '..', 'dist', 'build-id.txt'), 'utf8').trim();
  } catch {
    return undefined;
  }
  let base = process.env.XDG_CACHE_HOME || (process.env.HOME ? join(process.env.HOME, '.cache') : undefined);
  try {
    base ??= join(homedir(), '.cache');
  } catch {
    // a uid with no passwd entry and no HOME (containers run such uids): no cache
    return undefined;
  }
  return join(base, 'clawjail', 'v1', `code-${id}-${process.version}.bin`);
}

// Compiled code from a file someone else could write would run as this user: use the cache only
// when it and its directory belong to us and nobody else can write them.
function trusted(p) {
  try {
    for (const q of [p, dirname(p)]) {
      const st = lstatSync(q);
      if (st.uid !== process.geteuid() || (st.mode & 0o022) !== 0 || st.isSymbolicLink()) return false;
    }
    return true;
  } catch {
    return false;
  }
}

async function load() {
  if (!existsSync(bundle)) return import('../dist/cli.js');
  const Module = createRequire(import.meta.url)('node:module');
  const code = readFileSync(bundle, 'utf8');
  const cache = cachePath();
  const cachedData = cache && trusted(cache) ? readFileSync(cache) : undefined;
  const script = new vm.Script(Module.wrap(code), {
    filename: bundle,
    ...(cachedData ? { cachedData } : {}),
    importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, createRequire(bundle), mod, bundle, dirname(bundle));
  if (cache && (!cachedData || script.cachedDataRejected)) {
    // Written at exit, when the functions the run used are compiled and can be cached too.
    process.once('exit', () => {
      try {
        mkdirSync(dirname(cache), { recursive: true, mode: 0o700 });
        const tmp = `${cache}.${process.pid}.tmp`;
        writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
        renameSync(tmp, cache);
      } catch {
        // no cache: only slower
      }
    });
  }
  return mod.exports;
}

const cli = await load();
cli.main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
