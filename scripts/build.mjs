// The build: tsc for the library (with .d.ts); the CLI as one CommonJS file (esbuild), which
// bin/clawjail.js compiles with a V8 code cache so a run does not re-parse it; and a build id that
// keys clawjail's caches.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

rmSync(join(dist, 'bundle'), { recursive: true, force: true });
rmSync(join(dist, 'cli.cjs'), { force: true });
execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
await build({
  entryPoints: [join(root, 'src', 'cli.ts')],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outfile: join(dist, 'cli.cjs'),
  packages: 'external',
  logLevel: 'warning',
  // The sources are ESM; in one CommonJS file their import.meta becomes the file's own paths.
  define: { 'import.meta.url': '__cjUrl', 'import.meta.dirname': '__dirname', 'import.meta.filename': '__filename' },
  banner: { js: 'const __cjUrl = require("node:url").pathToFileURL(__filename).href;' },
});

const hash = createHash('sha256');
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.js')) hash.update(relative(dist, p)).update('\0').update(readFileSync(p));
  }
};
walk(dist);
hash.update(readFileSync(join(root, 'package.json')));
writeFileSync(join(dist, 'build-id.txt'), hash.digest('hex').slice(0, 24) + '\n');
