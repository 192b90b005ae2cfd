import { execa } from 'execa';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { IS_ROOT, ROOT, UNPRIV } from '../helpers/cli.js';
import { node24, testCacheRoot } from '../helpers/node24.js';

// npm's own CLI: the one running this test (npm test), else the one installed beside this node.
const npmCli = [process.env.npm_execpath, join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js')].find(
  (p): p is string => !!p && p.endsWith('npm-cli.js') && existsSync(p),
);
const arch = process.arch;
const skip =
  process.platform !== 'linux' || (arch !== 'x64' && arch !== 'arm64')
    ? `prebuilds exist for linux-x64 and linux-arm64, this is ${process.platform}-${arch}`
    : !npmCli
      ? 'npm-cli.js not found (neither $npm_execpath nor beside node)'
      : undefined;
const n24 = skip ? { skip } : await node24();

/** Without a registry npm's default retries take over a minute to give up. */
const FAIL_FAST = ['--fetch-retries=1', '--fetch-retry-mintimeout=1000', '--fetch-retry-maxtimeout=2000'];
const TOUCH_REFUSED = "touch: cannot touch '/usr/x': Read-only file system";

interface User {
  name: string;
  as?: { uid: number; gid: number };
  /** npm cache directory the user can write. */
  cache: string;
}

// The whole path a user takes: the package as `npm pack` makes it, installed where no compiler,
// make or python3 can be found, by root and by a fresh unprivileged user (no ~/.npmrc, so no
// nodedir: a source build would need to download Node's headers), then used for a real sandbox.
describe.skipIf(!!skip)(`npm install of the packed tarball needs no compiler${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let work: string;
  let bin: string;
  let tarball: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'cj-prebuilt-install-'));
    chmodSync(work, 0o755);
    // The prebuild for this arch (incremental: only what changed is recompiled), then the tarball
    // exactly as `npm pack` makes it; --ignore-scripts skips prepack's build of every arch (the
    // arm64 one is checked by prebuild-arm64.test.ts).
    const pre = await execa(process.execPath, [join(ROOT, 'scripts', 'build-prebuilds.mjs'), '--arch', arch], { cwd: ROOT, reject: false, all: true });
    expect(pre.exitCode, pre.all).toBe(0);
    const pack = await execa(process.execPath, [npmCli!, 'pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT, reject: false });
    expect(pack.exitCode, pack.stderr).toBe(0);
    const packed = JSON.parse(pack.stdout) as [{ filename: string; files: { path: string; mode: number }[] }];
    const shipped = packed[0].files.filter((f) => f.path.startsWith(`prebuilds/linux-${arch}/`)).map((f) => [f.path, f.mode]);
    expect(shipped.sort()).toEqual([
      [`prebuilds/linux-${arch}/clawjail-init`, 0o755],
      [`prebuilds/linux-${arch}/clawjail.napi.glibc.node`, 0o755],
    ]);
    tarball = join(work, packed[0].filename);
    chmodSync(tarball, 0o644);

    // PATH: node and sh, nothing else. Proven: none of the build tools is found there.
    bin = join(work, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
    const tools = await execa('/bin/sh', ['-c', 'for t in node sh g++ c++ gcc cc make python3 python node-gyp; do command -v $t || echo "no $t"; done'], { env: { PATH: bin }, extendEnv: false });
    expect(tools.stdout.split('\n')).toEqual([join(bin, 'node'), join(bin, 'sh'), 'no g++', 'no c++', 'no gcc', 'no cc', 'no make', 'no python3', 'no python', 'no node-gyp']);
  }, 180_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** Runs argv as the user, in dir, with PATH = node and sh only and HOME a fresh directory. */
  function runAs(user: User, dir: string, home: string, argv: string[]) {
    const full = user.as ? ['/usr/bin/setpriv', '--reuid', String(user.as.uid), '--regid', String(user.as.gid), '--clear-groups', ...argv] : argv;
    return execa(full[0]!, full.slice(1), { cwd: dir, env: { PATH: bin, HOME: home }, extendEnv: false, reject: false, all: true, timeout: 90_000 });
  }

  /** Installs the tarball as the user into a new directory; returns the installed package's path. */
  async function installAs(user: User, ctx: TestContext, extra: string[] = []): Promise<{ pkg: string; prefix: string; home: string }> {
    const tag = `${user.as?.uid ?? 'self'}${extra.join('')}`;
    const home = join(work, `home-${tag}`);
    const prefix = join(work, `install-${tag}`);
    mkdirSync(home);
    mkdirSync(prefix);
    if (user.as) for (const d of [home, prefix]) chownSync(d, user.as.uid, user.as.gid);
    const started = process.hrtime.bigint();
    const install = await runAs(user, prefix, home, [join(bin, 'node'), npmCli!, 'install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', `--cache=${user.cache}`, '--loglevel=warn', ...FAIL_FAST, ...extra]);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (install.exitCode !== 0 && /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH/.test(install.all ?? '')) {
      ctx.skip(`npm install as ${user.name} needs the registry for dependencies not in its cache, and the registry is unreachable`);
    }
    expect(install.exitCode, install.all).toBe(0);
    console.log(`prebuilt-install: npm install of the tarball as ${user.name}${extra.length ? ` (${extra.join(' ')})` : ''} took ${seconds.toFixed(1)} s`);
    // The install script ran (unless scripts are off), found the prebuild fitting, and built nothing.
    if (extra.includes('--ignore-scripts')) expect(install.all).not.toContain('> node-gyp-build');
    else expect(install.all).toContain('> node-gyp-build');
    const pkg = join(prefix, 'node_modules', 'clawjail');
    expect(existsSync(join(pkg, 'build'))).toBe(false);
    expect(readdirSync(join(pkg, 'prebuilds', `linux-${arch}`)).sort()).toEqual(['clawjail-init', 'clawjail.napi.glibc.node']);

    // What the installed clawjail loads: the prebuilt addon and the helper beside it.
    const where = await runAs(user, prefix, home, [join(bin, 'node'), '--input-type=module', '-e', `import { nativeLocation, helperPath } from ${JSON.stringify(join(pkg, 'dist', 'native.js'))}; const w = nativeLocation(); console.log(JSON.stringify([w.origin, w.addon, helperPath()]));`]);
    expect(where.exitCode, where.all).toBe(0);
    const dir = join(pkg, 'prebuilds', `linux-${arch}`);
    expect(JSON.parse(where.stdout)).toEqual(['prebuilt', join(dir, 'clawjail.napi.glibc.node'), join(dir, 'clawjail-init')]);
    return { pkg, prefix, home };
  }

  /** `clawjail run -- sh -c 'id -u; touch /usr/x'` with the installed package and the given node. */
  async function expectSandbox(user: User, installed: { pkg: string; prefix: string; home: string }, node: string, uid: number): Promise<void> {
    const r = await runAs(user, installed.prefix, installed.home, [node, join(installed.pkg, 'bin', 'clawjail.js'), 'run', '--', 'sh', '-c', 'id -u; touch /usr/x']);
    expect(r.stdout, r.stderr).toBe(String(uid));
    expect(r.stderr.split('\n')).toContain(TOUCH_REFUSED);
    expect(r.exitCode).toBe(1);
  }

  const self: User = { name: IS_ROOT ? 'root' : 'this user', cache: process.env.npm_config_cache || join(homedir(), '.npm') };
  // A root caller's sandbox runs as the dedicated uid 61000; an unprivileged caller keeps its own.
  const selfSandboxUid = IS_ROOT ? 61000 : process.getuid!();
  let selfInstall: { pkg: string; prefix: string; home: string } | undefined;

  it(`as ${self.name}: installs with its warm npm cache, uses the prebuilt addon and helper, and runs a sandbox`, async (ctx) => {
    selfInstall = await installAs(self, ctx);
    await expectSandbox(self, selfInstall, join(bin, 'node'), selfSandboxUid);
  }, 120_000);

  it.skipIf(!IS_ROOT)(`as an unprivileged user with a fresh HOME: the same${IS_ROOT ? '' : ' (skipped: needs root to switch users)'}`, async (ctx) => {
    // Its own cache, kept between runs in the tests' cache directory: the registry only the first time.
    const cache = join(testCacheRoot(), `npm-cache-${UNPRIV.uid}`);
    mkdirSync(cache, { recursive: true });
    chmodSync(testCacheRoot(), 0o755);
    chownSync(cache, UNPRIV.uid, UNPRIV.gid);
    const user: User = { name: 'unprivileged', as: UNPRIV, cache };
    await expectSandbox(user, await installAs(user, ctx), join(bin, 'node'), UNPRIV.uid);
  }, 120_000);

  // npm is moving towards running install scripts only when allowed; without them the prebuild is used as is.
  it(`as ${self.name} with --ignore-scripts: the same`, async (ctx) => {
    await expectSandbox(self, await installAs(self, ctx, ['--ignore-scripts']), join(bin, 'node'), selfSandboxUid);
  }, 120_000);

  // N-API: the addon built against this Node's headers loads in another major version.
  it.skipIf('skip' in n24)(`the same installed prebuilt addon works under Node 24${'skip' in n24 ? ` (skipped: ${n24.skip})` : ''}`, async (ctx) => {
    if (!selfInstall) ctx.skip('the install above failed');
    const node = (n24 as { bin: string }).bin;
    expect((await execa(node, ['--version'])).stdout).not.toBe(process.version);
    await expectSandbox(self, selfInstall!, node, selfSandboxUid);
  }, 60_000);
});
