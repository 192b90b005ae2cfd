import { execa } from 'execa';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkHelper, currentTarget, locateNative, prebuiltAddonName } from '../../src/native.js';
import { ROOT } from '../helpers/cli.js';

const glibcX64 = { platform: 'linux', arch: 'x64', libc: 'glibc' };
const existing = (...files: string[]) => (p: string) => files.includes(p);

describe('locateNative: which addon and helper, in node-gyp-build order', () => {
  it('a local build wins over prebuilds, and its helper is the one beside it', () => {
    const r = '/pkg';
    expect(locateNative(r, glibcX64, existing('/pkg/build/Release/clawjail.node', '/pkg/prebuilds/linux-x64/clawjail.napi.glibc.node'))).toEqual({
      addon: '/pkg/build/Release/clawjail.node',
      helper: '/pkg/build/Release/clawjail-init',
      origin: 'build',
    });
    expect(locateNative(r, glibcX64, existing('/pkg/build/Debug/clawjail.node'))).toEqual({ addon: '/pkg/build/Debug/clawjail.node', helper: '/pkg/build/Debug/clawjail-init', origin: 'build' });
  });

  it('without a build, the prebuilt addon for the platform and arch, with the helper from the same directory', () => {
    const fs = existing('/pkg/prebuilds/linux-x64/clawjail.napi.glibc.node', '/pkg/prebuilds/linux-arm64/clawjail.napi.glibc.node');
    expect(locateNative('/pkg', glibcX64, fs)).toEqual({ addon: '/pkg/prebuilds/linux-x64/clawjail.napi.glibc.node', helper: '/pkg/prebuilds/linux-x64/clawjail-init', origin: 'prebuilt' });
    expect(locateNative('/pkg', { ...glibcX64, arch: 'arm64' }, fs)).toEqual({ addon: '/pkg/prebuilds/linux-arm64/clawjail.napi.glibc.node', helper: '/pkg/prebuilds/linux-arm64/clawjail-init', origin: 'prebuilt' });
  });

  it('no prebuild for this arch or libc: nothing, so the install builds from source', () => {
    const fs = existing('/pkg/prebuilds/linux-x64/clawjail.napi.glibc.node');
    expect(locateNative('/pkg', { ...glibcX64, arch: 'riscv64' }, fs)).toBeUndefined();
    expect(locateNative('/pkg', { ...glibcX64, libc: 'musl' }, fs)).toBeUndefined();
    expect(locateNative('/pkg', { ...glibcX64, platform: 'darwin' }, fs)).toBeUndefined();
  });
});

describe('on disk, agreeing with node-gyp-build and its install step', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const built = join(ROOT, 'build', 'Release');
  const host = currentTarget();
  const foreignArch = host.arch === 'x64' ? 'arm64' : 'x64';

  /** A package directory shaped like the installed tarball, with prebuilds for the given arches. */
  function fakePackage(arches: string[], opts: { helperMode?: number; localBuild?: boolean } = {}): string {
    const dir = mkdtempSync(join(tmpdir(), 'cj-native-loc-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'clawjail', prebuild: { test: 'scripts/check-native.cjs' } }));
    mkdirSync(join(dir, 'scripts'));
    copyFileSync(join(ROOT, 'scripts', 'check-native.cjs'), join(dir, 'scripts', 'check-native.cjs'));
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    for (const arch of arches) {
      const out = join(dir, 'prebuilds', `linux-${arch}`);
      mkdirSync(out, { recursive: true });
      // This host's real addon and helper stand in for a prebuild (a foreign arch's copy is never loaded).
      copyFileSync(join(built, 'clawjail.node'), join(out, prebuiltAddonName(host.libc)));
      copyFileSync(join(built, 'clawjail-init'), join(out, 'clawjail-init'));
      chmodSync(join(out, 'clawjail-init'), opts.helperMode ?? 0o755);
    }
    if (opts.localBuild) {
      mkdirSync(join(dir, 'build', 'Release'), { recursive: true });
      copyFileSync(join(built, 'clawjail.node'), join(dir, 'build', 'Release', 'clawjail.node'));
    }
    return dir;
  }

  /**
   * Runs the package's install script (node-gyp-build) there, with a stand-in node-gyp first on
   * PATH that records its arguments: what it recorded says whether the install built from source.
   */
  async function install(dir: string): Promise<{ exitCode: number; nodeGyp: string | null }> {
    // node-gyp-build runs a node-gyp it can require() in preference to the one on PATH.
    expect(() => createRequire(join(ROOT, 'node_modules', 'node-gyp-build', 'bin.js')).resolve('node-gyp/package.json'), 'node-gyp is installed beside node-gyp-build: the stand-in on PATH would be bypassed').toThrow();
    const bin = join(dir, '.fake-bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'node-gyp'), `#!/bin/sh\necho "$@" > "${join(dir, 'node-gyp-called')}"\n`, { mode: 0o755 });
    const r = await execa(process.execPath, [join(ROOT, 'node_modules', 'node-gyp-build', 'bin.js')], {
      cwd: dir,
      reject: false,
      extendEnv: false,
      env: { PATH: [bin, join(ROOT, 'node_modules', '.bin'), dirname(process.execPath), '/usr/bin', '/bin'].join(':'), HOME: dir },
    });
    const marker = join(dir, 'node-gyp-called');
    return { exitCode: r.exitCode ?? -1, nodeGyp: existsSync(marker) ? readFileSync(marker, 'utf8').trim() : null };
  }

  it.skipIf(!existsSync(join(built, 'clawjail.node')) || host.platform !== 'linux')('node-gyp-build resolves the same addon as locateNative (build/Release not built: skipped)', () => {
    const ngb = createRequire(import.meta.url)('node-gyp-build') as { resolve(dir: string): string };
    for (const [arches, opts] of [[[host.arch, foreignArch], {}], [[host.arch], { localBuild: true }]] as const) {
      const dir = fakePackage([...arches], opts);
      const ours = locateNative(dir, host);
      expect(ours?.addon).toBe(ngb.resolve(dir));
    }
    const none = fakePackage([foreignArch]);
    expect(locateNative(none, host)).toBeUndefined();
    expect(() => ngb.resolve(none)).toThrow(/No native build was found/);
  });

  it.skipIf(!existsSync(join(built, 'clawjail.node')) || host.platform !== 'linux')('install: a fitting prebuild is used as is; none for this arch, or a helper that is not executable, builds from source', async () => {
    expect(await install(fakePackage([host.arch, foreignArch]))).toEqual({ exitCode: 0, nodeGyp: null });
    expect(await install(fakePackage([foreignArch]))).toEqual({ exitCode: 0, nodeGyp: 'rebuild' });
    expect(await install(fakePackage([host.arch], { helperMode: 0o644 }))).toEqual({ exitCode: 0, nodeGyp: 'rebuild' });
  });
});

describe('checkHelper', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cj-helper-'));

  it('an executable helper is returned; a missing or non-executable one is a named error with a hint', () => {
    const where = (name: string) => ({ addon: join(dir, 'clawjail.napi.glibc.node'), helper: join(dir, name), origin: 'prebuilt' as const });
    writeFileSync(join(dir, 'ok'), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(join(dir, 'noexec'), '#!/bin/sh\n', { mode: 0o644 });
    expect(checkHelper(where('ok'))).toBe(join(dir, 'ok'));
    try {
      checkHelper(where('noexec'));
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ name: 'ClawjailError', code: 'ERR_CLAWJAIL_NATIVE', path: join(dir, 'noexec') });
      expect((e as Error).message).toBe(
        `the clawjail-init helper beside the prebuilt addon ${join(dir, 'clawjail.napi.glibc.node')}: ${join(dir, 'noexec')} is not executable (EACCES)\n  hint: make it executable (chmod 755 ${join(dir, 'noexec')}), or reinstall clawjail, or build it from source: \`npm rebuild clawjail --build-from-source\` where it is installed, \`npm run build:native\` in a clone (needs g++, make and python3)`,
      );
    }
    expect(() => checkHelper(where('missing'))).toThrow(`${join(dir, 'missing')} does not exist\n  hint: reinstall clawjail`);
    expect(() => checkHelper(join(dir, 'missing'), 'CLAWJAIL_INIT_PATH')).toThrow(`CLAWJAIL_INIT_PATH: ${join(dir, 'missing')} does not exist\n  hint: point CLAWJAIL_INIT_PATH at an executable clawjail-init, or unset it`);
    rmSync(dir, { recursive: true, force: true });
  });
});
