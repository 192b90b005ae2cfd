import { describe, expect, it } from 'vitest';
import { InferenceSchema, upstreamProblem } from '../../src/profile/inference.js';

const route = (over: Record<string, unknown> = {}) => ({ name: 'openai', api: 'openai', upstream: 'https://api.openai.com/v1', credential: { env: 'OPENAI_API_KEY' }, ...over });

function messages(input: unknown): string[] {
  const r = InferenceSchema.safeParse(input);
  if (r.success) return [];
  return r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('InferenceSchema', () => {
  it('fills defaults for an empty section', () => {
    expect(InferenceSchema.parse({})).toEqual({ routes: [], auditBodies: false });
  });

  it('fills route defaults and keeps what was given', () => {
    const parsed = InferenceSchema.parse({ routes: [route({ models: ['gpt-4o-mini'], rewriteModel: 'gpt-4o-mini-2024-07-18' }), route({ name: 'local', upstream: 'http://127.0.0.1:11434/v1', credential: undefined })], default: 'local' });
    expect(parsed).toEqual({
      routes: [
        { name: 'openai', api: 'openai', upstream: 'https://api.openai.com/v1', credential: { env: 'OPENAI_API_KEY' }, models: ['gpt-4o-mini'], rewriteModel: 'gpt-4o-mini-2024-07-18', timeoutMs: 600_000, optional: false },
        { name: 'local', api: 'openai', upstream: 'http://127.0.0.1:11434/v1', timeoutMs: 600_000, optional: false },
      ],
      default: 'local',
      auditBodies: false,
    });
  });

  it('accepts a file credential', () => {
    expect(InferenceSchema.parse({ routes: [route({ credential: { file: '/run/secrets/key' } })] }).routes[0]?.credential).toEqual({ file: '/run/secrets/key' });
  });

  it('refuses duplicate route names, naming the name', () => {
    expect(messages({ routes: [route(), route()] })).toEqual([
      'routes.1.name: route name "openai" is used twice; each route answers at its own /<name>/v1 prefix, so names must be unique. Rename one of them.',
    ]);
  });

  it.each(['../etc', 'a/b', 'V1', 'v1', '', '-x', 'has space', 'x'.repeat(64), 'é'])('refuses route name %j as not path-safe', (name) => {
    expect(messages({ routes: [route({ name })] })).toEqual([
      `routes.0.name: route name "${name}" cannot be used as a URL path segment: use lower-case letters, digits, "-" and "_" (at most 63, starting with a letter or digit), and not "v1", which is the default route's prefix. Example: "claude".`,
    ]);
  });

  it.each([
    ['not a url', 'upstream "not a url" is not a URL; write a base URL such as https://api.openai.com/v1.'],
    ['ftp://host/v1', 'upstream "ftp://host/v1" must use http: or https:, not ftp:'],
    ['https://user:sk-secret@api.example.com/v1', 'upstream "https://api.example.com/v1" carries user:password; put the secret in `credential` ({env: NAME} or {file: PATH}) so it stays out of the profile and logs.'],
    ['https://api.example.com/v1?key=sk-secret', 'upstream "https://api.example.com/v1" must not have a query or fragment; the router builds the query from the caller\'s allowlisted parameters and injects the credential as a header.'],
    ['https://api.openai.com', 'upstream "https://api.openai.com" has no path; the part of the caller\'s URL after /v1 (e.g. /chat/completions) is appended to upstream, so include the version prefix: https://api.openai.com/v1.'],
  ])('refuses upstream %j with a message that teaches', (upstream, message) => {
    expect(messages({ routes: [route({ upstream })] })).toEqual([`routes.0.upstream: ${message}`]);
    expect(upstreamProblem(upstream)).toBe(message);
  });

  it('never echoes a password from an upstream URL', () => {
    expect(messages({ routes: [route({ upstream: 'https://u:sk-secret@h/v1' })] }).join('\n')).not.toContain('sk-secret');
  });

  it('refuses a default that names no route', () => {
    expect(messages({ routes: [route()], default: 'claude' })).toEqual([
      'default: default route "claude" is not one of the routes ("openai"); name an existing route or omit `default` to use the first one.',
    ]);
  });

  it('refuses unknown keys, bad credentials, empty model lists and bad timeouts', () => {
    expect(messages({ routes: [route({ apiKey: 'sk-x' })] })).toEqual([expect.stringMatching(/^routes\.0: Unrecognized key: "apiKey"/)]);
    expect(messages({ routes: [route({ credential: { env: '1BAD' } })] })).toEqual(['routes.0.credential.env: an environment variable name such as OPENAI_API_KEY (letters, digits, underscore; not starting with a digit)']);
    expect(messages({ routes: [route({ credential: { file: 'relative/key' } })] })).toEqual(['routes.0.credential.file: an absolute path such as /run/secrets/openai-key']);
    expect(messages({ routes: [route({ models: [] })] })).toEqual(['routes.0.models: list at least one model id, or omit `models` to allow any model']);
    expect(messages({ routes: [route({ timeoutMs: 0 })] })).toHaveLength(1);
    expect(messages({ routes: [route({ api: 'gemini' })] })).toHaveLength(1);
    expect(messages({ routes: [], extra: 1 })).toEqual([expect.stringMatching(/Unrecognized key: "extra"/)]);
  });

  it('describes every field', () => {
    const shape = InferenceSchema.shape;
    for (const [key, field] of Object.entries(shape)) expect(field.description, key).toBeTruthy();
    const routeShape = (shape.routes.unwrap() as unknown as { element: { shape: Record<string, { description?: string }> } }).element.shape;
    for (const [key, field] of Object.entries(routeShape)) expect(field.description, key).toBeTruthy();
  });
});
