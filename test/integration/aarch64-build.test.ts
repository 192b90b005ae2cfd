import { execa } from 'execa';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

const CXX = 'aarch64-linux-gnu-g++';
const available = (await execa(CXX, ['--version'], { reject: false })).exitCode === 0;

// The native code must build for aarch64 too: no x86-only assumptions. .ci/run installs the
// cross compiler; without it this says so instead of passing.
describe.skipIf(!available)(`native code cross-compiles for aarch64 (skipped: ${CXX} not installed)`, () => {
  it('links clawjail-init and compiles every addon source for aarch64', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cj-arm64-'));
    try {
      const init = readdirSync(join(ROOT, 'native', 'init')).filter((f) => f.endsWith('.cc')).map((f) => join(ROOT, 'native', 'init', f));
      const link = await execa(CXX, ['-std=c++17', '-O2', '-Wall', '-Wextra', '-Werror', '-Wno-unused-parameter', '-fno-exceptions', '-static', '-o', join(out, 'clawjail-init'), ...init, join(ROOT, 'native', 'common', 'json.cc'), join(ROOT, 'native', 'common', 'fdpass.cc')], { reject: false });
      expect(link.stderr).toBe('');
      expect(link.exitCode).toBe(0);
      const file = await execa('file', [join(out, 'clawjail-init')], { reject: false });
      if (file.exitCode === 0) expect(file.stdout).toContain('ARM aarch64');
      const napi = (await import('node-addon-api')).default as { include_dir: string };
      for (const file of readdirSync(join(ROOT, 'native', 'addon')).filter((f) => f.endsWith('.cc'))) {
        const addon = await execa(CXX, ['-std=c++17', '-fsyntax-only', '-Wall', '-Wextra', '-Wno-unused-parameter', '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-fexceptions', `-I${napi.include_dir}`, '-I/usr/include/node', join(ROOT, 'native', 'addon', file)], { reject: false });
        expect(addon.stderr, file).toBe('');
        expect(addon.exitCode, file).toBe(0);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);
});
