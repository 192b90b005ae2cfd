import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (where package.json, profiles/ and build/ live), from dist/ or src/. */
export const packageRoot: string = (() => {
  // import.meta.dirname (Node >= 20.11) spares loading the URL machinery at start-up.
  let dir = (import.meta as { dirname?: string }).dirname ?? dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('clawjail: cannot find its package root');
})();

export const profilesDir = join(packageRoot, 'profiles');
