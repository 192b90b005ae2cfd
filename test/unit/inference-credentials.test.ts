import { mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClawjailError } from '../../src/errors.js';
import { InferenceSchema } from '../../src/profile/inference.js';
import { buildInferenceEnv } from '../../src/plan/inference-env.js';
import { redactInference, resolveCredentials, routeOverridesFromCli } from '../../src/services/inference/index.js';

const parse = (routes: Record<string, unknown>[], extra: Record<string, unknown> = {}) => InferenceSchema.parse({ routes, ...extra });
const openai = (over: Record<string, unknown> = {}) => ({ name: 'openai', api: 'openai', upstream: 'https://api.openai.com/v1', credential: { env: 'OPENAI_API_KEY' }, ...over });
const claude = (over: Record<string, unknown> = {}) => ({ name: 'claude', api: 'anthropic', upstream: 'https://api.anthropic.com/v1', credential: { env: 'ANTHROPIC_API_KEY' }, ...over });

function thrown(f: () => unknown): ClawjailError {
  try {
    f();
  } catch (e) {
    return e as ClawjailError;
  }
  throw new Error('expected a throw');
}

describe('resolveCredentials', () => {
  it('reads env and file credentials, trimmed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cj-cred-'));
    writeFileSync(join(dir, 'key'), 'sk-ant-from-file\n');
    const config = parse([openai(), claude({ credential: { file: join(dir, 'key') } }), { name: 'local', api: 'openai', upstream: 'http://127.0.0.1:1/v1' }]);
    const keys = resolveCredentials(config, { OPENAI_API_KEY: ' sk-env ' });
    expect([...keys]).toEqual([
      ['openai', 'sk-env'],
      ['claude', 'sk-ant-from-file'],
    ]);
  });

  it('refuses to start when a key is missing, naming route and variable, exit 125', () => {
    const e = thrown(() => resolveCredentials(parse([openai()]), {}));
    expect(e).toBeInstanceOf(ClawjailError);
    expect(e.code).toBe('ERR_CLAWJAIL_CREDENTIAL_MISSING');
    expect(e.exitCode).toBe(125);
    expect(e.message).toBe(
      'inference route "openai" has no API key: environment variable OPENAI_API_KEY is not set\n  hint: export OPENAI_API_KEY=<key> in the environment that starts clawjail; or mark the route `optional: true` to start without it (the route then answers 503).',
    );
  });

  it('names every missing route at once, including empty variables and unreadable files', () => {
    const e = thrown(() => resolveCredentials(parse([openai(), claude({ credential: { file: '/nonexistent/key' } })]), { OPENAI_API_KEY: '  ' }));
    expect(e.message.split('\n')[0]).toBe(
      'inference route "openai" has no API key: environment variable OPENAI_API_KEY is empty; inference route "claude" has no API key: file /nonexistent/key cannot be read (ENOENT)',
    );
    expect(e.hint).toContain('put the key in /nonexistent/key');
  });

  it.skipIf(process.getuid?.() === 0)('reports an unreadable file (skipped as root: root reads mode 000 files)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cj-cred-'));
    writeFileSync(join(dir, 'key'), 'k');
    chmodSync(join(dir, 'key'), 0);
    expect(thrown(() => resolveCredentials(parse([openai({ credential: { file: join(dir, 'key') } })]), {})).message).toContain('cannot be read (EACCES)');
  });

  it('lets an optional route start without its key', () => {
    expect(resolveCredentials(parse([openai({ optional: true }), claude()]), { ANTHROPIC_API_KEY: 'sk-ant' })).toEqual(new Map([['claude', 'sk-ant']]));
  });

  it('refuses a key that cannot travel in a header, without echoing it', () => {
    const e = thrown(() => resolveCredentials(parse([openai()]), { OPENAI_API_KEY: 'sk-abc\r\nX-Injected: 1' }));
    expect(e.code).toBe('ERR_CLAWJAIL_CREDENTIAL_MISSING');
    expect(e.message).toContain('holds characters that cannot be sent in an HTTP header');
    expect(e.message).not.toContain('sk-abc');
  });

  it('refuses a key with more backslashes than the scrubber can search for quickly, without echoing it', () => {
    const e = thrown(() => resolveCredentials(parse([openai()]), { OPENAI_API_KEY: `sk-def${'\\'.repeat(9)}` }));
    expect(e.code).toBe('ERR_CLAWJAIL_CREDENTIAL_MISSING');
    expect(e.message.split('\n')[0]).toBe('inference route "openai" has no API key: environment variable OPENAI_API_KEY holds a key with more than 8 backslashes, which the router cannot search its answers for in bounded time');
    expect(e.message).toContain('check the key: provider keys hold no backslashes');
    expect(e.message).not.toContain('sk-def');
    expect(resolveCredentials(parse([openai()]), { OPENAI_API_KEY: `sk-def${'\\'.repeat(8)}` }).get('openai')).toBe(`sk-def${'\\'.repeat(8)}`);
  });
});

describe('redactInference', () => {
  it('shows where keys come from and whether they were found, never a key', () => {
    const config = parse([openai({ models: ['m'] }), claude({ optional: true })], { default: 'claude' });
    const keys = resolveCredentials(config, { OPENAI_API_KEY: 'sk-secret-value-123' });
    const shown = redactInference(config, keys);
    expect(JSON.stringify(shown)).not.toContain('sk-secret-value-123');
    expect(shown).toEqual({
      default: 'claude',
      auditBodies: false,
      routes: [
        { name: 'openai', api: 'openai', upstream: 'https://api.openai.com/v1', credential: { env: 'OPENAI_API_KEY', found: true }, models: ['m'], timeoutMs: 600000, optional: false },
        { name: 'claude', api: 'anthropic', upstream: 'https://api.anthropic.com/v1', credential: { env: 'ANTHROPIC_API_KEY', found: false }, timeoutMs: 600000, optional: true },
      ],
    });
  });

  it('strips user:password and queries even from an unvalidated config', () => {
    const raw = { routes: [{ ...openai(), upstream: 'https://u:sk-pw@h/v1?key=sk-q', timeoutMs: 1, optional: false }], auditBodies: false } as never;
    const text = JSON.stringify(redactInference(raw));
    expect(text).not.toContain('sk-pw');
    expect(text).not.toContain('sk-q');
    expect(text).toContain('"upstream":"https://h/v1"');
  });
});

describe('routeOverridesFromCli', () => {
  it('builds raw routes that the schema accepts', () => {
    const routes = routeOverridesFromCli(['openai=https://api.openai.com/v1', 'claude=https://api.anthropic.com/v1', 'local=anthropic:http://127.0.0.1:8080/v1'], ['openai=OPENAI_API_KEY', 'claude=MY_ANTHROPIC']);
    expect(routes).toEqual([
      { name: 'openai', api: 'openai', upstream: 'https://api.openai.com/v1', credential: { env: 'OPENAI_API_KEY' } },
      { name: 'claude', api: 'anthropic', upstream: 'https://api.anthropic.com/v1', credential: { env: 'MY_ANTHROPIC' } },
      { name: 'local', api: 'anthropic', upstream: 'http://127.0.0.1:8080/v1' },
    ]);
    expect(InferenceSchema.safeParse({ routes }).success).toBe(true);
  });

  it.each([
    [['openai'], [], '--route openai: expected NAME=URL'],
    [['=https://x/v1'], [], '--route =https://x/v1: expected NAME=URL'],
    [['a=https://x/v1', 'a=https://y/v1'], [], '--route names route "a" twice.'],
    [['a=https://x/v1'], ['b=KEY'], '--route-credential-env b=… names no --route b'],
    [['a=https://x/v1'], ['a'], '--route-credential-env a: expected NAME=VAR'],
  ])('refuses %j %j', (routes, envs, message) => {
    const e = thrown(() => routeOverridesFromCli(routes, envs));
    expect(e.code).toBe('ERR_CLAWJAIL_USAGE');
    expect(e.message.startsWith(message)).toBe(true);
  });
});

describe('buildInferenceEnv', () => {
  it('points both SDKs at their routes, with placeholder keys', () => {
    expect(buildInferenceEnv(parse([openai(), claude()]))).toEqual({
      CLAWJAIL_INFERENCE_URL: 'http://127.0.0.1:3129',
      CLAWJAIL_INFERENCE_SOCKET: '/run/clawjail/inference.sock',
      OPENAI_BASE_URL: 'http://127.0.0.1:3129/v1',
      OPENAI_API_KEY: 'clawjail-router',
      ANTHROPIC_BASE_URL: 'http://127.0.0.1:3129/claude',
      ANTHROPIC_API_KEY: 'clawjail-router',
    });
    expect(buildInferenceEnv(parse([openai(), claude()], { default: 'claude' }))).toMatchObject({ OPENAI_BASE_URL: 'http://127.0.0.1:3129/openai/v1', ANTHROPIC_BASE_URL: 'http://127.0.0.1:3129' });
  });

  it('sets nothing without routes', () => {
    expect(buildInferenceEnv(parse([]))).toEqual({});
  });
});
