import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clawjail, ROOT } from '../helpers/cli.js';

// The CLI's start-up budget (≤ 1.5× node -e 0, measured by `npm run bench`) depends on what
// `clawjail run` loads: with its profile and filter cached it needs no schema (zod), no YAML
// parser, no logger and no process library. A static import on the hot path shows up here.
describe('clawjail run -- true, warm', () => {
  it('loads none of zod, yaml, pino or execa', async () => {
    const env = { NODE_OPTIONS: `--require ${join(ROOT, 'test', 'helpers', 'trace-requires.cjs')}` };
    const first = await clawjail(['run', '--', 'true'], { env });
    expect(first.exitCode).toBe(0);
    const warm = await clawjail(['run', '--', 'true'], { env });
    expect(warm.exitCode).toBe(0);
    const loaded = warm.stderr.split('\n').filter((l) => l.startsWith('REQUIRE ')).map((l) => l.slice(8));
    expect(loaded.filter((m) => /^(zod|yaml|pino|pino-pretty|execa)(\/|$)/.test(m))).toEqual([]);
  });
});
