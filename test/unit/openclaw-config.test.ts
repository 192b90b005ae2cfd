import { describe, expect, it } from 'vitest';
import {
  findEnvRefs,
  hardenConfig,
  parseConfigText,
  prepareSandboxConfig,
  rewriteProviders,
  routeNameFor,
  upstreamFor,
} from '../../src/openclaw/config.js';
import { ClawjailError } from '../../src/errors.js';

const KEYS = '/host/keys';

describe('parseConfigText', () => {
  it('reads strict JSON without a JSON5 parser', () => {
    expect(parseConfigText('{"a":1}')).toEqual({ a: 1 });
  });
  it('refuses JSON5 without a parser, naming the file and what to do', () => {
    let err: unknown;
    try {
      parseConfigText('{a: 1, // c\n}', undefined, '/x/openclaw.json');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ClawjailError);
    expect((err as ClawjailError).code).toBe('ERR_CLAWJAIL_OPENCLAW');
    expect((err as ClawjailError).message).toMatch(/^\/x\/openclaw\.json is not strict JSON/);
    expect((err as ClawjailError).hint).toMatch(/clawjail openclaw install/);
  });
  it('falls back to the given JSON5 parser only when strict JSON fails', () => {
    const calls: string[] = [];
    const json5 = (t: string) => {
      calls.push(t);
      return { parsed: 'by-json5' };
    };
    expect(parseConfigText('{"a":1}', json5)).toEqual({ a: 1 });
    expect(calls).toEqual([]);
    expect(parseConfigText('{a:1}', json5)).toEqual({ parsed: 'by-json5' });
    expect(calls).toEqual(['{a:1}']);
  });
  it('refuses a top level that is not an object', () => {
    expect(() => parseConfigText('[1]')).toThrow(/must hold a JSON object/);
  });
});

describe('routeNameFor', () => {
  it.each([
    ['openai', [], 'openai'],
    ['My Router!', [], 'my-router-'],
    ['_local', [], 'local'],
    ['v1', [], 'v1-provider'],
    ['openai', ['openai'], 'openai-2'],
    ['openai', ['openai', 'openai-2'], 'openai-3'],
    ['***', [], 'provider'],
  ])('%s with %j taken → %s', (id, taken, expected) => {
    expect(routeNameFor(id, new Set(taken))).toBe(expected);
  });
});

describe('upstreamFor', () => {
  it.each([
    ['openai', 'https://api.openai.com/v1', 'https://api.openai.com/v1'],
    ['openai', 'https://api.openai.com/v1/', 'https://api.openai.com/v1'],
    ['openai', 'http://127.0.0.1:11434/v1', 'http://127.0.0.1:11434/v1'],
    ['openai', 'https://generativelanguage.googleapis.com/v1beta/openai', 'https://generativelanguage.googleapis.com/v1beta/openai'],
    ['openai', 'http://127.0.0.1:8080', undefined],
    ['anthropic', 'https://api.anthropic.com', 'https://api.anthropic.com/v1'],
    ['anthropic', 'https://api.anthropic.com/v1', 'https://api.anthropic.com/v1'],
    ['anthropic', 'https://proxy.example/anthropic', 'https://proxy.example/anthropic/v1'],
    ['openai', 'https://user:pw@example.com/v1', undefined],
    ['openai', 'https://example.com/v1?key=1', undefined],
    ['openai', 'ftp://example.com/v1', undefined],
    ['openai', 'not a url', undefined],
    ['openai', undefined, undefined],
  ] as const)('%s %s → %s', (api, base, expected) => {
    expect(upstreamFor(api, base)).toBe(expected);
  });
});

describe('rewriteProviders', () => {
  const model = { id: 'm1', name: 'M1' };

  it('re-points an OpenAI-compatible provider with a literal key at the router and moves the key to a file', () => {
    const r = rewriteProviders({ local: { baseUrl: 'https://llm.example/v1', apiKey: 'sk-secret-1', api: 'openai-completions', models: [model] } }, { keysDir: KEYS });
    expect(r.providers).toEqual({ local: { baseUrl: 'http://127.0.0.1:3129/local/v1', apiKey: 'clawjail-router', api: 'openai-completions', models: [model] } });
    expect(r.routes).toEqual([{ name: 'local', api: 'openai', upstream: 'https://llm.example/v1', credential: { file: '/host/keys/local.key' }, models: ['m1'] }]);
    expect(r.secrets).toEqual([{ route: 'local', provider: 'local', file: '/host/keys/local.key', value: 'sk-secret-1' }]);
    expect(r.warnings).toEqual([]);
  });

  it('turns ${VAR} and env SecretRefs into env credentials, writing no file', () => {
    const r = rewriteProviders(
      {
        a: { baseUrl: 'https://a.example/v1', apiKey: '${A_KEY}', api: 'openai-responses' },
        b: { baseUrl: 'https://b.example', apiKey: { source: 'env', provider: 'default', id: 'B_KEY' }, api: 'anthropic-messages' },
      },
      { keysDir: KEYS },
    );
    expect(r.routes).toEqual([
      { name: 'a', api: 'openai', upstream: 'https://a.example/v1', credential: { env: 'A_KEY' } },
      { name: 'b', api: 'anthropic', upstream: 'https://b.example/v1', credential: { env: 'B_KEY' } },
    ]);
    expect(r.secrets).toEqual([]);
    expect((r.providers.b as Record<string, unknown>).apiKey).toBe('clawjail-router');
    expect((r.providers.b as Record<string, unknown>).baseUrl).toBe('http://127.0.0.1:3129/b/v1');
  });

  it('gives built-in providers without api/baseUrl/apiKey their default upstream and conventional variable', () => {
    const r = rewriteProviders({ openai: {}, anthropic: { apiKey: '' } }, { keysDir: KEYS });
    expect(r.routes).toEqual([
      { name: 'openai', api: 'openai', upstream: 'https://api.openai.com/v1', credential: { env: 'OPENAI_API_KEY' } },
      { name: 'anthropic', api: 'anthropic', upstream: 'https://api.anthropic.com/v1', credential: { env: 'ANTHROPIC_API_KEY' } },
    ]);
  });

  it('leaves a keyless local server without a credential', () => {
    const r = rewriteProviders({ ollama: { baseUrl: 'http://127.0.0.1:11434/v1', api: 'openai-completions' } }, { keysDir: KEYS });
    expect(r.routes).toEqual([{ name: 'ollama', api: 'openai', upstream: 'http://127.0.0.1:11434/v1' }]);
  });

  it('drops providers the router cannot speak for, with their keys, and says so', () => {
    const r = rewriteProviders(
      {
        g: { baseUrl: 'https://g.example', apiKey: 'g-secret', api: 'google-generative-ai' },
        x: { apiKey: 'x-secret' },
        y: { baseUrl: 'http://127.0.0.1:8080', api: 'openai-completions' },
      },
      { keysDir: KEYS },
    );
    expect(r.providers).toEqual({});
    expect(r.routes).toEqual([]);
    expect(r.secrets).toEqual([]);
    expect(r.warnings).toEqual([
      'provider "g": api "google-generative-ai" is not one the inference router speaks (openai-completions, openai-responses, anthropic-messages); dropped from the sandbox\'s config',
      'provider "x": api (unset) is not one the inference router speaks (openai-completions, openai-responses, anthropic-messages); dropped from the sandbox\'s config',
      'provider "y": no usable baseUrl ("http://127.0.0.1:8080"); dropped',
    ]);
  });

  it('keeps the route but warns when the key is a file/exec SecretRef or a mixed substitution', () => {
    const r = rewriteProviders(
      {
        f: { baseUrl: 'https://f.example/v1', api: 'openai-completions', apiKey: { source: 'file', provider: 'vault', id: '/f' } },
        m: { baseUrl: 'https://m.example/v1', api: 'openai-completions', apiKey: 'Bearer ${M}' },
      },
      { keysDir: KEYS },
    );
    expect(r.routes).toEqual([
      { name: 'f', api: 'openai', upstream: 'https://f.example/v1' },
      { name: 'm', api: 'openai', upstream: 'https://m.example/v1' },
    ]);
    expect(r.warnings).toEqual([
      'provider "f": apiKey is a "file" secret reference clawjail cannot resolve; give route "f" a credential ({env} or {file}) by hand',
      'provider "m": apiKey mixes text and ${…} substitution; not moved, set the route\'s credential by hand',
    ]);
    expect(JSON.stringify(r.providers)).not.toContain('vault');
  });

  it('removes auth headers and secret-bearing header values', () => {
    const r = rewriteProviders(
      { h: { baseUrl: 'https://h.example/v1', api: 'openai-completions', headers: { Authorization: 'Bearer s', 'X-Trace': 'on', 'X-Key': '${K}', 'x-api-key': 'k' } } },
      { keysDir: KEYS },
    );
    expect((r.providers.h as Record<string, unknown>).headers).toEqual({ 'X-Trace': 'on' });
    expect(r.warnings).toEqual([
      'provider "h": header "Authorization" removed (credentials are injected by the router; secrets do not enter the sandbox)',
      'provider "h": header "X-Key" removed (credentials are injected by the router; secrets do not enter the sandbox)',
      'provider "h": header "x-api-key" removed (credentials are injected by the router; secrets do not enter the sandbox)',
    ]);
  });

  it('names colliding routes apart', () => {
    const r = rewriteProviders(
      { 'My-LLM': { baseUrl: 'https://a.example/v1', api: 'openai-completions' }, 'my llm': { baseUrl: 'https://b.example/v1', api: 'openai-completions' } },
      { keysDir: KEYS },
    );
    expect(r.routes.map((x) => x.name)).toEqual(['my-llm', 'my-llm-2']);
    expect(r.providers).toMatchObject({ 'My-LLM': { baseUrl: 'http://127.0.0.1:3129/my-llm/v1' }, 'my llm': { baseUrl: 'http://127.0.0.1:3129/my-llm-2/v1' } });
  });
});

describe('hardenConfig', () => {
  it('sets the sandbox settings over whatever the user had, without touching the input', () => {
    const input = {
      gateway: { mode: 'remote', bind: 'lan', port: 9999, customBindHost: '0.0.0.0', auth: { mode: 'password', password: 'pw' }, tailscale: { mode: 'funnel' }, http: { endpoints: { chatCompletions: { enabled: true } } } },
      update: { checkOnStart: true, auto: { enabled: true }, channel: 'beta' },
      telemetry: { enabled: true },
      models: { catalogRefresh: { enabled: true } },
      logging: { level: 'debug', file: '/home/u/oc.log' },
      agents: { defaults: { workspace: '~/.openclaw/workspace', model: { primary: 'a/b' } } },
    };
    const before = structuredClone(input);
    const { config, warnings } = hardenConfig(input, { gatewayToken: 't'.repeat(64) });
    expect(input).toEqual(before);
    expect(config).toEqual({
      gateway: { mode: 'local', bind: 'loopback', port: 18789, auth: { mode: 'token', token: 't'.repeat(64) }, tailscale: { mode: 'off' }, http: { endpoints: { chatCompletions: { enabled: true } } } },
      update: { checkOnStart: false, auto: { enabled: false }, channel: 'beta' },
      telemetry: { enabled: false },
      models: { catalogRefresh: { enabled: false } },
      nodeHost: { autoUpdate: { enabled: false } },
      logging: { level: 'debug', file: '/sandbox/.openclaw/logs/openclaw.log' },
      agents: { defaults: { workspace: '/sandbox/workspace', model: { primary: 'a/b' } } },
    });
    expect(warnings).toEqual(['gateway.tailscale.mode "funnel" set to "off": the sandbox has no network of its own']);
  });
});

describe('prepareSandboxConfig', () => {
  it('builds the minimal sandbox config from an empty one', () => {
    const r = prepareSandboxConfig({}, { gatewayToken: 'x'.repeat(64), keysDir: KEYS });
    expect(r.config).toEqual({
      models: { mode: 'merge', providers: {}, catalogRefresh: { enabled: false } },
      gateway: { mode: 'local', bind: 'loopback', port: 18789, auth: { mode: 'token', token: 'x'.repeat(64) } },
      update: { checkOnStart: false, auto: { enabled: false } },
      telemetry: { enabled: false },
      nodeHost: { autoUpdate: { enabled: false } },
      logging: { file: '/sandbox/.openclaw/logs/openclaw.log' },
      agents: { defaults: { workspace: '/sandbox/workspace' } },
    });
    expect(r.routes).toEqual([]);
    expect(r.warnings).toEqual([]);
  });

  it('refuses $include, naming where', () => {
    expect(() => prepareSandboxConfig({ channels: { $include: './ch.json5' } }, { gatewayToken: 't', keysDir: KEYS })).toThrow(/uses \$include \(channels\.\$include\)/);
  });

  it('warns about models whose provider is not configured and ${VAR}s outside providers', () => {
    const r = prepareSandboxConfig(
      {
        agents: { defaults: { model: { primary: 'openai/gpt-x', fallbacks: ['router/m1'] } } },
        models: { providers: { router: { baseUrl: 'https://r.example/v1', api: 'openai-completions', apiKey: '${R_KEY}' } } },
        channels: { telegram: { botToken: '${TG_TOKEN}' } },
      },
      { gatewayToken: 't', keysDir: KEYS },
    );
    expect(r.warnings).toEqual([
      'model "openai/gpt-x" uses provider "openai", which has no models.providers entry (its key would be in OpenClaw\'s auth store, which is not copied); add a provider pointing at a route',
      '${VAR} references outside model providers will be unset inside unless passed in (env.pass): TG_TOKEN',
    ]);
    expect(r.routes).toEqual([{ name: 'router', api: 'openai', upstream: 'https://r.example/v1', credential: { env: 'R_KEY' } }]);
  });

  it('never leaves a literal key anywhere in the sandbox copy', () => {
    const r = prepareSandboxConfig(
      { models: { providers: { p: { baseUrl: 'https://p.example/v1', api: 'openai-completions', apiKey: 'sk-LEAKME', headers: { authorization: 'Bearer sk-LEAKME' } } } } },
      { gatewayToken: 't', keysDir: KEYS },
    );
    expect(JSON.stringify(r.config)).not.toContain('sk-LEAKME');
    expect(r.secrets).toEqual([{ route: 'p', provider: 'p', file: '/host/keys/p.key', value: 'sk-LEAKME' }]);
  });
});

describe('findEnvRefs', () => {
  it('lists each ${NAME} once, sorted', () => {
    expect(findEnvRefs({ a: '${B} and ${A}', b: ['${A}', { c: 'x${C_1}y' }], d: '$NOTREF {X}' })).toEqual(['A', 'B', 'C_1']);
  });
});
