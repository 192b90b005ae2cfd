import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { clawjail, sh, USERS } from '../helpers/cli.js';
import { createFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from '../helpers/fake-upstream.js';
import { findKeyLeak } from '../helpers/key-leaks.js';
import { node24, NODE24_BIN, NODE24_DIR } from '../helpers/node24.js';

// The inference router seen from inside a real sandbox: curl and Node 24 (fetch with nothing but
// the sandbox's own environment) call it the three documented ways, while fake upstreams on the
// host loopback record what the router forwards. The router runs in the supervisor, so the
// upstreams are reachable from it and from nothing inside.

const KEY_A = `sk-cj-a-${randomBytes(12).toString('hex')}`;
const KEY_B = `sk-cj-b-${randomBytes(12).toString('hex')}`;
/** What a workload sends as its own key; the router must drop it. */
const CALLER_KEY = 'sk-caller-own-key';
const ENV = { CJ_TEST_KEY_A: KEY_A, CJ_TEST_KEY_B: KEY_B };
const AS = USERS[0]!;

const n24 = await node24();
const NODE24_SKIP = 'skip' in n24 ? n24.skip : undefined;
if (NODE24_SKIP) console.warn(`inference-sandbox: Node 24 tests skipped: ${NODE24_SKIP}`);
const nodeBind = 'skip' in n24 ? [] : ['--ro', `${n24.dir}:${NODE24_DIR}`];

let A: FakeUpstream;
let B: FakeUpstream;
let work: string;

beforeAll(async () => {
  A = await createFakeUpstream();
  B = await createFakeUpstream();
  work = mkdtempSync(join(tmpdir(), 'cj-inf-sbx-'));
  chmodSync(work, 0o755);
});

afterAll(async () => {
  await Promise.all([A?.close(), B?.close()]);
  rmSync(work, { recursive: true, force: true });
});

beforeEach(() => {
  for (const up of [A, B]) {
    up.requests.length = 0;
    up.set({ error: undefined, chunks: undefined, chunkDelayMs: 0, text: undefined });
  }
});

const routeA = () => ['--route', `oa=${A.baseUrl}`, '--route-credential-env', 'oa=CJ_TEST_KEY_A'];

/** A profile file an unprivileged supervisor can read too. */
function profileFile(name: string, profile: unknown): string {
  const file = join(work, name);
  writeFileSync(file, JSON.stringify(profile));
  chmodSync(file, 0o644);
  return file;
}

/** Two routes, two keys, two upstreams; oa limits and rewrites models. */
const twoRoutes = () =>
  profileFile('two-routes.json', {
    inference: {
      default: 'oa',
      routes: [
        { name: 'oa', api: 'openai', upstream: A.baseUrl, credential: { env: 'CJ_TEST_KEY_A' }, models: ['gpt-small', 'gpt-large'], rewriteModel: 'upstream-real-model' },
        { name: 'claude', api: 'anthropic', upstream: B.baseUrl, credential: { env: 'CJ_TEST_KEY_B' }, models: ['claude-ok'] },
      ],
    },
  });

/**
 * A shell function for scripts run inside: `call LABEL CURL-ARGS…` prints one line
 * `LABEL<TAB>status<TAB>x-clawjail-error<TAB>body`.
 */
const CALL = [
  'call() {',
  '  label=$1; shift',
  "  status=$(curl -sS -o /tmp/body -D /tmp/head -w '%{http_code}' \"$@\")",
  "  err=$(tr -d '\\r' < /tmp/head | sed -n 's/^x-clawjail-error: //p')",
  "  printf '%s\\t%s\\t%s\\t%s\\n' \"$label\" \"$status\" \"$err\" \"$(cat /tmp/body)\"",
  '}',
].join('\n');

/** curl arguments that post a chat request carrying the caller's own credentials. */
const chat = (model: string, extra = '') =>
  `-H 'content-type: application/json' -H 'authorization: Bearer ${CALLER_KEY}' -H 'x-api-key: ${CALLER_KEY}' -H 'cookie: session=${CALLER_KEY}' -d '{"model":"${model}","messages":[{"role":"user","content":"hi"}]${extra}}'`;

interface Call {
  status: number;
  error: string;
  body: unknown;
}

function parseCalls(stdout: string): Record<string, Call> {
  const out: Record<string, Call> = {};
  for (const line of stdout.split('\n')) {
    const [label, status, error, ...rest] = line.split('\t');
    if (!label || status === undefined) continue;
    const text = rest.join('\t');
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: kept as text so the assertion shows it
    }
    out[label] = { status: Number(status), error: error ?? '', body };
  }
  return out;
}

const reply = (c: Call | undefined) => (c?.body as { choices?: { message?: { content?: string } }[] } | undefined)?.choices?.[0]?.message?.content;

/** Every header value the upstream received, for "never the caller's key" checks. */
const headerText = (up: FakeUpstream) => JSON.stringify(up.requests.map((r) => r.headers));

describe.each(USERS)('inference from inside a sandbox launched as %s', (as) => {
  it('all three ways reach the router: unix socket, 127.0.0.1:3129 and inference.local through the proxy (curl)', async () => {
    const script = [
      CALL,
      `call sock --unix-socket /run/clawjail/inference.sock http://localhost/v1/chat/completions ${chat('fake-model')}`,
      `call port http://127.0.0.1:3129/v1/chat/completions ${chat('fake-model')}`,
      // http_proxy from the sandbox env; inference.local is not in no_proxy
      `call proxy http://inference.local/v1/chat/completions ${chat('fake-model')}`,
      `call prefixed http://127.0.0.1:3129/oa/v1/models -H 'authorization: Bearer ${CALLER_KEY}'`,
    ].join('\n');
    const r = await clawjail(['run', ...routeA(), '--', ...sh(script)], { as, env: ENV });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const calls = parseCalls(r.stdout);
    for (const way of ['sock', 'port', 'proxy']) {
      expect(calls[way]?.status, way).toBe(200);
      expect(reply(calls[way]), way).toBe('Hello from the fake model.');
    }
    expect(calls.prefixed?.status).toBe(200);
    expect((calls.prefixed?.body as { data: { id: string }[] }).data[0]?.id).toBe('fake-model');

    expect(A.requests.map((q) => `${q.method} ${q.path}`)).toEqual(['POST /v1/chat/completions', 'POST /v1/chat/completions', 'POST /v1/chat/completions', 'GET /v1/models']);
    for (const q of A.requests) {
      expect(q.headers.authorization).toBe(`Bearer ${KEY_A}`);
      expect(q.headers['x-api-key']).toBeUndefined();
      expect(q.headers.cookie).toBeUndefined();
    }
    expect(headerText(A)).not.toContain(CALLER_KEY);
    expect(r.stdout).not.toContain(KEY_A);
  });

  it('an upstream that reflects the key gets it back to no caller: socket, port and proxy; bodies, SSE, headers, gzip (curl)', async () => {
    // Four reflecting upstreams behind four routes with the same key, each answering another way.
    const cases: [string, FakeUpstreamOptions, number][] = [
      ['json', { echo: { form: 'plain' } }, 200],
      ['redirect', { echo: { form: 'percent-mixed', status: 302 } }, 302],
      ['error', { echo: { form: 'json-escaped', status: 401 }, encoding: 'gzip' }, 401],
      ['sse', { echo: { form: 'base64', stream: true }, encoding: 'br' }, 200],
    ];
    const ups = await Promise.all(cases.map(([, o]) => createFakeUpstream(o)));
    try {
      const file = profileFile(`echo-${as}.json`, {
        inference: { routes: cases.map(([name], i) => ({ name, api: 'openai', upstream: ups[i]!.baseUrl, credential: { env: 'CJ_TEST_KEY_A' } })) },
      });
      const ways: [string, string][] = [
        ['sock', '--unix-socket /run/clawjail/inference.sock http://localhost'],
        ['port', 'http://127.0.0.1:3129'],
        ['proxy', 'http://inference.local'],
      ];
      const script = ways
        .flatMap(([way, base]) => cases.map(([name]) => `echo "=== ${way} ${name}"; curl -sS -D - ${base.replace(/(http:\/\/\S+)/, `$1/${name}/v1/chat/completions`)} ${chat('m')}; echo`))
        .join('\n');
      const r = await clawjail(['run', '--profile', file, '--', ...sh(script)], { as, env: ENV });
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      // each upstream got the key three times, so each answer had it to give back
      for (const up of ups) expect(up.requests.map((q) => q.headers.authorization)).toEqual(Array(3).fill(`Bearer ${KEY_A}`));
      expect(findKeyLeak(r.stdout, KEY_A)).toBeUndefined();
      const blocks = r.stdout.split('=== ').filter(Boolean);
      expect(blocks).toHaveLength(12);
      for (const block of blocks) {
        const [way, name] = block.split('\n')[0]!.split(' ');
        const expected = cases.find(([n]) => n === name)![2];
        const [head, body] = block.slice(block.indexOf('\n') + 1).split('\r\n\r\n');
        const label = `${way} ${name}`;
        expect(head!.split('\r\n')[0], label).toBe(`HTTP/1.1 ${expected} ${http.STATUS_CODES[expected]}`);
        expect(head, label).toMatch(/^x-ratelimit-echo: .*\[redacted\]/m);
        expect(head, label).not.toMatch(/^(location|content-encoding|x-echo-authorization):/im);
        expect(body!.split('[redacted]').length - 1, label).toBeGreaterThanOrEqual(2);
        if (name === 'json') expect(JSON.parse(body!), label).toEqual({ headers: { authorization: 'Bearer [redacted]' }, error: { message: 'received Bearer [redacted]' } });
        if (name === 'sse') expect(body!.trim().endsWith('data: [DONE]'), label).toBe(true);
      }
    } finally {
      await Promise.all(ups.map((u) => u.close()));
    }
  });

  it('refuses a duplicate "model" with 400 on all three ways, and never forwards ?model=', async () => {
    const dup = `-H 'content-type: application/json' -d '{"model":"gpt-evil","model":"gpt-small","messages":[]}'`;
    const script = [
      CALL,
      `call sock --unix-socket /run/clawjail/inference.sock http://localhost/v1/chat/completions ${dup}`,
      `call port http://127.0.0.1:3129/v1/chat/completions ${dup}`,
      `call proxy http://inference.local/v1/chat/completions ${dup}`,
      `call query 'http://127.0.0.1:3129/v1/chat/completions?model=gpt-evil' ${chat('gpt-small')}`,
    ].join('\n');
    const r = await clawjail(['run', '--profile', twoRoutes(), '--', ...sh(script)], { as, env: ENV });
    expect(r.exitCode).toBe(0);
    const calls = parseCalls(r.stdout);
    for (const way of ['sock', 'port', 'proxy']) {
      expect(calls[way], way).toEqual({
        status: 400,
        error: 'duplicate_key',
        body: { error: { message: 'route "oa": the request body names "model" twice in one object (at $); parsers disagree on which one counts, so the router refuses it.', type: 'invalid_request_error', param: null, code: 'duplicate_key' } },
      });
    }
    expect(calls.query?.status).toBe(200);
    expect(A.requests.map((q) => q.path)).toEqual(['/v1/chat/completions']);
    expect((A.requests[0]!.json as { model: string }).model).toBe('upstream-real-model');
  });

  describe.skipIf(NODE24_SKIP !== undefined)(`Node 24${NODE24_SKIP ? ` (skipped: ${NODE24_SKIP})` : ''}`, () => {
    it('fetch with only the sandbox env reaches OPENAI_BASE_URL and http://inference.local; http.request reaches the socket', async () => {
      const script = `
import http from 'node:http';
const body = JSON.stringify({ model: 'fake-model', messages: [{ role: 'user', content: 'hi' }] });
const headers = { 'content-type': 'application/json', authorization: 'Bearer ${CALLER_KEY}', 'x-api-key': '${CALLER_KEY}' };
const viaFetch = (url) => fetch(url, { method: 'POST', headers, body })
  .then(async (r) => ({ status: r.status, body: await r.json() }), (e) => ({ error: String(e.cause?.code ?? e.message) }));
const viaSocket = () => new Promise((resolve) => {
  const q = http.request({ socketPath: process.env.CLAWJAIL_INFERENCE_SOCKET, path: '/v1/chat/completions', method: 'POST', headers }, (res) => {
    let t = '';
    res.on('data', (c) => (t += c));
    res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(t) }));
  });
  q.on('error', (e) => resolve({ error: e.code }));
  q.end(body);
});
console.log(JSON.stringify({
  version: process.version,
  port: await viaFetch(process.env.OPENAI_BASE_URL + '/chat/completions'),
  proxy: await viaFetch('http://inference.local/v1/chat/completions'),
  sock: await viaSocket(),
}));`;
      const r = await clawjail(['run', ...nodeBind, ...routeA(), '--', NODE24_BIN, '--input-type=module', '-e', script], { as, env: ENV });
      expect(r.stderr).toBe('');
      const out = JSON.parse(r.stdout) as Record<string, { status?: number; body?: unknown; error?: string }> & { version: string };
      expect(out.version).toBe('v24.21.0');
      for (const way of ['port', 'proxy', 'sock']) {
        expect(out[way], way).toMatchObject({ status: 200 });
        expect(reply(out[way] as Call), way).toBe('Hello from the fake model.');
      }
      expect(A.requests).toHaveLength(3);
      for (const q of A.requests) expect(q.headers.authorization).toBe(`Bearer ${KEY_A}`);
      expect(headerText(A)).not.toContain(CALLER_KEY);
    });
  });

  it(
    'the key is in no env, no /proc/*/environ or cmdline, and no file readable inside',
    async () => {
      // The key never enters as one string: the grep below gets it in two halves and joins them
      // in a shell variable, so a hit can only come from a leak. A canary written to /tmp proves
      // the grep reads files at all.
      const half = KEY_A.length >> 1;
      const canary = `canary-${randomBytes(8).toString('hex')}`;
      const cHalf = canary.length >> 1;
      const dumpProc = [
        'import os, errno',
        'for p in sorted((d for d in os.listdir("/proc") if d.isdigit()), key=int):',
        '    for what in ("environ", "cmdline"):',
        '        try:',
        '            data = open(f"/proc/{p}/{what}", "rb").read()',
        '            print("PROC", p, what, "OK", repr(data))',
        '        except OSError as e:',
        '            print("PROC", p, what, errno.errorcode[e.errno])',
      ].join('\n');
      const script = [
        // more processes than the shell: a child holding the inherited env while the dump runs
        'sleep 600 & SLEEPER=$!',
        'echo ENV-BEGIN; env; echo ENV-END',
        `python3 -c '${dumpProc}'`,
        'k="$1$2"; c="$3$4"',
        'printf "%s" "$c" > /tmp/clawjail-canary',
        'echo GREP-BEGIN',
        'grep -rlsF -D skip --exclude-dir=proc --exclude-dir=sys -e "$k" -e "$c" /',
        'echo GREP-END',
        'kill $SLEEPER',
      ].join('\n');
      const r = await clawjail(['run', ...routeA(), '--', 'sh', '-c', script, 'sh', KEY_A.slice(0, half), KEY_A.slice(half), canary.slice(0, cHalf), canary.slice(cHalf)], {
        as,
        env: ENV,
        timeout: 150_000,
      });
      expect(r.stderr).toBe('');
      expect(r.stdout).not.toContain(KEY_A);
      expect(r.stdout).not.toContain('CJ_TEST_KEY_A');

      const env = r.stdout.split('ENV-BEGIN\n')[1]!.split('\nENV-END')[0]!.split('\n');
      expect(env).toContain('CLAWJAIL_INFERENCE_URL=http://127.0.0.1:3129');
      expect(env).toContain('CLAWJAIL_INFERENCE_SOCKET=/run/clawjail/inference.sock');
      expect(env).toContain('OPENAI_BASE_URL=http://127.0.0.1:3129/v1');
      // a placeholder: SDKs refuse to start without one, and the router replaces it
      expect(env).toContain('OPENAI_API_KEY=clawjail-router');

      const proc = r.stdout.split('\n').filter((l) => l.startsWith('PROC '));
      const state = (pid: string, what: string) => proc.find((l) => l.startsWith(`PROC ${pid} ${what} `))?.split(' ')[3];
      // pid 1 is clawjail-init: not dumpable, so even its (empty) environ is closed to the workload
      expect(state('1', 'environ')).toBe('EACCES');
      const readable = proc.filter((l) => l.split(' ')[2] === 'environ' && l.split(' ')[3] === 'OK');
      // the shell, sleep and python at least; every one of them was searched for the key above
      expect(readable.length).toBeGreaterThanOrEqual(3);
      expect(proc.filter((l) => !/ (OK|EACCES)( |$)/.test(l))).toEqual([]);
      expect(readable.some((l) => l.includes('OPENAI_BASE_URL'))).toBe(true);

      const hits = r.stdout.split('GREP-BEGIN\n')[1]!.split('GREP-END')[0]!.trim().split('\n');
      expect(hits).toEqual(['/tmp/clawjail-canary']);
    },
    180_000,
  );
});

describe(`router policy seen from inside (as ${AS})`, () => {
  it('refuses a model outside the allowlist with 403 in each API\'s error shape, and forwards nothing', async () => {
    const script = [
      CALL,
      `call oa-evil http://127.0.0.1:3129/v1/chat/completions ${chat('gpt-evil')}`,
      `call claude-evil http://127.0.0.1:3129/claude/v1/messages -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' -d '{"model":"claude-evil","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'`,
      `call oa-none http://127.0.0.1:3129/v1/chat/completions -H 'content-type: application/json' -d '{"messages":[]}'`,
    ].join('\n');
    const r = await clawjail(['run', '--profile', twoRoutes(), '--', ...sh(script)], { as: AS, env: ENV });
    expect(r.exitCode).toBe(0);
    const calls = parseCalls(r.stdout);
    expect(calls['oa-evil']).toEqual({
      status: 403,
      error: 'model_not_allowed',
      body: { error: { message: 'model "gpt-evil" is not allowed on route "oa"; allowed: gpt-small, gpt-large.', type: 'permission_error', param: 'model', code: 'model_not_allowed' } },
    });
    expect(calls['claude-evil']).toEqual({
      status: 403,
      error: 'model_not_allowed',
      body: { type: 'error', error: { type: 'permission_error', message: 'model "claude-evil" is not allowed on route "claude"; allowed: claude-ok.' }, request_id: null },
    });
    expect(calls['oa-none']).toEqual({
      status: 400,
      error: 'model_required',
      body: { error: { message: 'route "oa" only allows listed models, and the request names none; set "model" to one of: gpt-small, gpt-large.', type: 'invalid_request_error', param: 'model', code: 'model_required' } },
    });
    expect(A.requests).toEqual([]);
    expect(B.requests).toEqual([]);
  });

  it('applies rewriteModel: the upstream gets the rewritten id, the audit log names both', async () => {
    const audit = join(work, 'audit-rewrite.jsonl');
    const r = await clawjail(['run', '--profile', twoRoutes(), '--audit-log', audit, '--', ...sh(`${CALL}\ncall small http://127.0.0.1:3129/v1/chat/completions ${chat('gpt-small')}`)], { as: AS, env: ENV });
    const calls = parseCalls(r.stdout);
    expect(calls.small?.status).toBe(200);
    expect((calls.small?.body as { model: string }).model).toBe('upstream-real-model');
    expect(A.requests).toHaveLength(1);
    expect((A.requests[0]!.json as { model: string; messages: unknown[] }).model).toBe('upstream-real-model');
    expect((A.requests[0]!.json as { messages: unknown[] }).messages).toEqual([{ role: 'user', content: 'hi' }]);
    const text = readFileSync(audit, 'utf8');
    expect(text).not.toContain(KEY_A);
    const events = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.kind === 'inference');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ route: 'oa', model: 'gpt-small', upstreamModel: 'upstream-real-model', status: 200, path: '/v1/chat/completions', tokens: { input: 11, output: 7 } });
  });

  it('two routes with different keys each reach their own upstream with their own key', async () => {
    const script = [
      CALL,
      `call oa http://127.0.0.1:3129/v1/chat/completions ${chat('gpt-large')}`,
      `call oa-prefixed http://127.0.0.1:3129/oa/v1/chat/completions ${chat('gpt-large')}`,
      `call claude http://inference.local/claude/v1/messages -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' -H 'x-api-key: ${CALLER_KEY}' -H 'authorization: Bearer ${CALLER_KEY}' -d '{"model":"claude-ok","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'`,
    ].join('\n');
    const r = await clawjail(['run', '--log-level', 'debug', '--profile', twoRoutes(), '--', ...sh(script)], { as: AS, env: ENV });
    const calls = parseCalls(r.stdout);
    expect(calls.oa?.status).toBe(200);
    expect(calls['oa-prefixed']?.status).toBe(200);
    expect(calls.claude?.status).toBe(200);
    expect((calls.claude?.body as { content: { text: string }[] }).content[0]?.text).toBe('Hello from the fake model.');

    expect(A.requests.map((q) => q.path)).toEqual(['/v1/chat/completions', '/v1/chat/completions']);
    expect(A.requests.map((q) => q.headers.authorization)).toEqual([`Bearer ${KEY_A}`, `Bearer ${KEY_A}`]);
    expect(B.requests.map((q) => q.path)).toEqual(['/v1/messages']);
    expect(B.requests[0]!.headers['x-api-key']).toBe(KEY_B);
    expect(B.requests[0]!.headers['anthropic-version']).toBe('2023-06-01');
    expect(B.requests[0]!.headers.authorization).toBeUndefined();
    expect(headerText(A)).not.toContain(KEY_B);
    expect(headerText(B)).not.toContain(KEY_A);
    expect(headerText(A) + headerText(B)).not.toContain(CALLER_KEY);
    // debug logging of the supervisor names neither key
    expect(r.stderr).not.toContain(KEY_A);
    expect(r.stderr).not.toContain(KEY_B);
  });

  it('the workload cannot replace, rename, chmod or shadow the router socket (EROFS)', async () => {
    const code = [
      'import errno, os, socket',
      'def t(f):',
      '    try:',
      '        f(); return "OK"',
      '    except OSError as e:',
      '        return errno.errorcode[e.errno]',
      'S = "/run/clawjail/inference.sock"',
      'print(t(lambda: os.unlink(S)), t(lambda: os.rename(S, S + ".old")), t(lambda: os.chmod(S, 0)), t(lambda: socket.socket(socket.AF_UNIX).bind("/run/clawjail/evil.sock")))',
    ].join('\n');
    const r = await clawjail(['run', ...routeA(), '--', 'python3', '-c', code], { as: AS, env: ENV });
    expect(r.stdout.trim()).toBe('EROFS EROFS EROFS EROFS');
  });

  it('two sandboxes at once, each with its own key, each reach only their own upstream', async () => {
    const one = (name: string, up: FakeUpstream, variable: string) =>
      clawjail(['run', '--route', `${name}=${up.baseUrl}`, '--route-credential-env', `${name}=${variable}`, '--', ...sh(`${CALL}\nfor i in 1 2 3; do call r$i http://inference.local/v1/chat/completions ${chat('m')}; done`)], {
        as: AS,
        env: { [variable]: variable === 'CJ_TEST_KEY_A' ? KEY_A : KEY_B },
      });
    const [ra, rb] = await Promise.all([one('first', A, 'CJ_TEST_KEY_A'), one('second', B, 'CJ_TEST_KEY_B')]);
    for (const r of [ra, rb]) expect(Object.values(parseCalls(r.stdout)).map((c) => c.status)).toEqual([200, 200, 200]);
    expect(A.requests.map((q) => q.headers.authorization)).toEqual(Array(3).fill(`Bearer ${KEY_A}`));
    expect(B.requests.map((q) => q.headers.authorization)).toEqual(Array(3).fill(`Bearer ${KEY_B}`));
  });

  it('answers an unknown path with 404 in the API\'s shape, and lets no crafted path through', async () => {
    const script = [
      CALL,
      'call files http://127.0.0.1:3129/v1/files',
      'call anth-chat http://127.0.0.1:3129/claude/v1/chat/completions -d "{}"',
      'call noroute http://127.0.0.1:3129/nope/v1/models',
      'call dotdot --path-as-is http://127.0.0.1:3129/v1/chat/completions/../../files',
      'call encoded http://127.0.0.1:3129/v1/%2e%2e/v1/models',
      'call sock-files --unix-socket /run/clawjail/inference.sock http://localhost/v1/fine_tuning/jobs',
      'call proxy-files http://inference.local/v1/files',
    ].join('\n');
    const r = await clawjail(['run', '--profile', twoRoutes(), '--', ...sh(script)], { as: AS, env: ENV });
    const calls = parseCalls(r.stdout);
    const oaPaths = '/v1/chat/completions, /v1/completions, /v1/responses, /v1/embeddings, /v1/models';
    expect(calls.files).toEqual({
      status: 404,
      error: 'path_not_found',
      body: { error: { message: `route "oa" (openai) does not serve /v1/files; it serves ${oaPaths}.`, type: 'invalid_request_error', param: null, code: 'path_not_found' } },
    });
    expect(calls['anth-chat']).toEqual({
      status: 404,
      error: 'path_not_found',
      body: { type: 'error', error: { type: 'not_found_error', message: 'route "claude" (anthropic) does not serve /v1/chat/completions; it serves /v1/messages, /v1/messages/count_tokens, /v1/models.' }, request_id: null },
    });
    expect(calls.noroute).toMatchObject({ status: 404, error: 'route_not_found', body: { error: { code: 'route_not_found', type: 'invalid_request_error' } } });
    expect((calls.noroute?.body as { error: { message: string } }).error.message).toBe('no inference route matches /nope/v1/models. Routes: /oa/v1 (openai, also at /v1), /claude/v1 (anthropic).');
    for (const label of ['dotdot', 'encoded', 'sock-files', 'proxy-files']) {
      expect(calls[label]?.status, label).toBe(404);
      expect(calls[label]?.error, label).toBe('path_not_found');
    }
    expect(A.requests).toEqual([]);
    expect(B.requests).toEqual([]);
  });

  it('an upstream that is down answers 502 within 1 s, naming the route; a reset one 502, a silent one 504 after its timeoutMs', async () => {
    const holder = net.createServer();
    await new Promise<void>((res) => holder.listen(0, '127.0.0.1', res));
    const closedPort = (holder.address() as net.AddressInfo).port;
    await new Promise<void>((res) => holder.close(() => res()));
    B.set({ error: 'reset' });
    A.set({ error: 'hang' });
    const file = profileFile('down.json', {
      inference: {
        routes: [
          { name: 'down', api: 'openai', upstream: `http://127.0.0.1:${closedPort}/v1`, credential: { env: 'CJ_TEST_KEY_A' } },
          { name: 'reset', api: 'openai', upstream: B.baseUrl, credential: { env: 'CJ_TEST_KEY_B' } },
          { name: 'hang', api: 'anthropic', upstream: A.baseUrl, credential: { env: 'CJ_TEST_KEY_A' }, timeoutMs: 400 },
        ],
      },
    });
    const script = [
      "for u in http://127.0.0.1:3129/v1/chat/completions http://inference.local/down/v1/chat/completions http://127.0.0.1:3129/reset/v1/chat/completions; do",
      `  curl -sS -o /tmp/b -w '%{http_code} %{time_total}\\n' ${chat('m')} "$u"; cat /tmp/b; echo`,
      'done',
      `curl -sS -o /tmp/b -w '%{http_code} %{time_total}\\n' -H 'content-type: application/json' -d '{"model":"m","max_tokens":5,"messages":[]}' http://127.0.0.1:3129/hang/v1/messages; cat /tmp/b; echo`,
    ].join('\n');
    const r = await clawjail(['run', '--profile', file, '--', ...sh(script)], { as: AS, env: ENV });
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(8);
    const downBody = { error: { message: `route "down": the upstream refused the connection (ECONNREFUSED); is it running? (upstream http://127.0.0.1:${closedPort}).`, type: 'server_error', param: null, code: 'upstream_unreachable' } };
    for (const i of [0, 2]) {
      const [status, seconds] = lines[i]!.split(' ');
      expect(status).toBe('502');
      expect(Number(seconds)).toBeLessThan(1);
      expect(JSON.parse(lines[i + 1]!)).toEqual(downBody);
    }
    const [status, seconds] = lines[4]!.split(' ');
    expect(status).toBe('502');
    expect(Number(seconds)).toBeLessThan(1);
    expect(JSON.parse(lines[5]!)).toMatchObject({ error: { code: 'upstream_reset', type: 'server_error' } });
    expect(B.requests).toHaveLength(1);
    const [hangStatus, hangSeconds] = lines[6]!.split(' ');
    expect(hangStatus).toBe('504');
    expect(Number(hangSeconds)).toBeGreaterThanOrEqual(0.35);
    expect(Number(hangSeconds)).toBeLessThan(1);
    expect(JSON.parse(lines[7]!)).toEqual({
      type: 'error',
      error: { type: 'timeout_error', message: `route "hang": timed out after 400 ms waiting for an answer from the upstream (upstream ${A.url}).` },
      request_id: null,
    });
    expect(A.requests).toHaveLength(1);
  });

  it('streams chunk by chunk through the unix socket and the proxy (curl, timestamps taken inside)', async () => {
    A.set({ chunks: ['one ', 'two ', 'three ', 'four ', 'five'], chunkDelayMs: 150 });
    // python stamps each SSE line as it arrives on the pipe from `curl -N`
    const stamp = [
      'import sys, time, json',
      't0 = time.monotonic()',
      'for line in sys.stdin:',
      '    if line.startswith("data: {"):',
      '        c = json.loads(line[6:])["choices"][0]["delta"].get("content")',
      '        if c: print(json.dumps([sys.argv[1], round((time.monotonic() - t0) * 1000), c]), flush=True)',
    ].join('\n');
    const body = `-H 'content-type: application/json' -d '{"model":"m","stream":true,"messages":[{"role":"user","content":"count"}]}'`;
    const script = [
      `curl -sSN --unix-socket /run/clawjail/inference.sock http://localhost/v1/chat/completions ${body} | python3 -u -c '${stamp}' sock`,
      `curl -sSN http://inference.local/v1/chat/completions ${body} | python3 -u -c '${stamp}' proxy`,
    ].join('\n');
    const r = await clawjail(['run', ...routeA(), '--', ...sh(script)], { as: AS, env: ENV });
    expect(r.stderr).toBe('');
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as [string, number, string]);
    for (const way of ['sock', 'proxy']) {
      const mine = rows.filter((x) => x[0] === way);
      expect(mine.map((x) => x[2]), way).toEqual(['one ', 'two ', 'three ', 'four ', 'five']);
      const times = mine.map((x) => x[1]);
      // 150 ms apart upstream; a buffering hop would deliver them together (gaps near 0), and 50 ms
      // leaves room for scheduling jitter on a loaded machine
      for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!, `${way} gap ${i}`).toBeGreaterThanOrEqual(50);
      expect(times[4]! - times[0]!, way).toBeGreaterThanOrEqual(450);
    }
  });

  it('a caller that hangs up mid-stream stops the upstream request (socket, port and proxy)', async () => {
    A.set({ chunks: Array.from({ length: 20 }, (_, i) => `w${i} `), chunkDelayMs: 200 });
    const body = `-H 'content-type: application/json' -d '{"model":"m","stream":true,"messages":[]}'`;
    const script = [
      `curl -sSN -m 0.6 --unix-socket /run/clawjail/inference.sock http://localhost/v1/chat/completions ${body} > /dev/null 2>&1; echo sock $?`,
      `curl -sSN -m 0.6 http://127.0.0.1:3129/v1/chat/completions ${body} > /dev/null 2>&1; echo port $?`,
      `curl -sSN -m 0.6 http://inference.local/v1/chat/completions ${body} > /dev/null 2>&1; echo proxy $?`,
    ].join('\n');
    const r = await clawjail(['run', ...routeA(), '--', ...sh(script)], { as: AS, env: ENV });
    // 28: curl's own timeout, i.e. the stream was still running when the caller left
    expect(r.stdout.trim().split('\n')).toEqual(['sock 28', 'port 28', 'proxy 28']);
    expect(A.requests).toHaveLength(3);
    for (const q of A.requests) {
      const closed = await Promise.race([q.closed, new Promise((res) => setTimeout(() => res('still open after 2 s'), 2000))]);
      expect(closed).toEqual({ aborted: true });
      // 20 chunks at 200 ms would take 4 s; the upstream stopped after about three
      expect(q.chunkTimes.length).toBeLessThan(8);
    }
  });

  it('an upstream error that echoes the key reaches the caller with the key redacted', async () => {
    A.set({ error: { status: 401, body: { error: { message: `Incorrect API key provided: ${KEY_A}.`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } } } });
    const script = [CALL, `call port http://127.0.0.1:3129/v1/chat/completions ${chat('m')}`, `call proxy http://inference.local/v1/chat/completions ${chat('m')}`].join('\n');
    const r = await clawjail(['run', ...routeA(), '--', ...sh(script)], { as: AS, env: ENV });
    expect(r.stdout).not.toContain(KEY_A);
    const calls = parseCalls(r.stdout);
    for (const way of ['port', 'proxy']) {
      expect(calls[way], way).toEqual({
        status: 401,
        error: '',
        body: { error: { message: 'Incorrect API key provided: [redacted].', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } },
      });
    }
  });

  describe.skipIf(NODE24_SKIP !== undefined)(`Node 24${NODE24_SKIP ? ` (skipped: ${NODE24_SKIP})` : ''}`, () => {
    it('fetch reads a stream chunk by chunk: headers first, then each piece as the upstream sends it', async () => {
      A.set({ chunks: ['one ', 'two ', 'three ', 'four ', 'five'], chunkDelayMs: 150 });
      const script = `
const t0 = performance.now();
const r = await fetch(process.env.OPENAI_BASE_URL + '/chat/completions', {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ model: 'm', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'count' }] }),
});
const headersAt = performance.now() - t0;
const dec = new TextDecoder();
let buf = '';
const pieces = [];
let done = false;
let usage;
for await (const chunk of r.body) {
  const t = Math.round(performance.now() - t0);
  buf += dec.decode(chunk, { stream: true });
  for (let i; (i = buf.indexOf('\\n\\n')) >= 0; buf = buf.slice(i + 2)) {
    const data = buf.slice(0, i).replace(/^data: /, '');
    if (data === '[DONE]') { done = true; continue; }
    const j = JSON.parse(data);
    if (j.usage) usage = j.usage;
    const c = j.choices[0]?.delta?.content;
    if (c) pieces.push([t, c]);
  }
}
console.log(JSON.stringify({ status: r.status, type: r.headers.get('content-type'), headersAt: Math.round(headersAt), pieces, done, usage }));`;
      const r = await clawjail(['run', ...nodeBind, ...routeA(), '--', NODE24_BIN, '--input-type=module', '-e', script], { as: AS, env: ENV });
      expect(r.stderr).toBe('');
      const out = JSON.parse(r.stdout) as { status: number; type: string; headersAt: number; pieces: [number, string][]; done: boolean; usage: unknown };
      expect(out.status).toBe(200);
      expect(out.type).toBe('text/event-stream; charset=utf-8');
      expect(out.pieces.map((p) => p[1])).toEqual(['one ', 'two ', 'three ', 'four ', 'five']);
      const times = out.pieces.map((p) => p[0]);
      expect(times[0]! - out.headersAt).toBeGreaterThanOrEqual(50);
      for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!, `gap ${i}`).toBeGreaterThanOrEqual(50);
      expect(out.done).toBe(true);
      expect(out.usage).toEqual({ prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 });
    });
  });
});

describe('credentials at launch (CLI)', () => {
  it('a missing or empty credential variable stops the launch with 125, naming the route and the variable', async () => {
    const unset = await clawjail(['run', ...routeA(), '--', 'echo', 'RAN'], { as: AS, env: {} });
    expect(unset.exitCode).toBe(125);
    expect(unset.stdout).toBe('');
    expect(unset.stderr).toContain('inference route "oa" has no API key: environment variable CJ_TEST_KEY_A is not set');
    expect(unset.stderr).toContain('export CJ_TEST_KEY_A=<key>');
    const empty = await clawjail(['run', ...routeA(), '--', 'echo', 'RAN'], { as: AS, env: { CJ_TEST_KEY_A: '' } });
    expect(empty.exitCode).toBe(125);
    expect(empty.stdout).toBe('');
    expect(empty.stderr).toContain('inference route "oa" has no API key: environment variable CJ_TEST_KEY_A is empty');
    const file = profileFile('nofile.json', { inference: { routes: [{ name: 'filed', api: 'anthropic', upstream: B.baseUrl, credential: { file: join(work, 'no-such-key') } }] } });
    const missingFile = await clawjail(['run', '--profile', file, '--', 'echo', 'RAN'], { as: AS });
    expect(missingFile.exitCode).toBe(125);
    expect(missingFile.stdout).toBe('');
    expect(missingFile.stderr).toContain(`inference route "filed" has no API key: file ${join(work, 'no-such-key')} cannot be read (ENOENT)`);
  });

  it('refuses to pass the credential variable in with --env, and --dry-run prints no key', async () => {
    for (const flag of ['CJ_TEST_KEY_A', `CJ_TEST_KEY_A=${KEY_A}`]) {
      const r = await clawjail(['run', '--env', flag, ...routeA(), '--', 'echo', 'RAN'], { as: AS, env: ENV });
      expect(r.exitCode, flag).toBe(125);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain("refusing to put CJ_TEST_KEY_A into the sandbox's environment: it is the credential of inference route 'oa'");
      expect(r.stderr).not.toContain(KEY_A);
    }
    const dry = await clawjail(['run', '--dry-run', ...routeA(), '--', 'true'], { as: AS, env: ENV });
    expect(dry.exitCode).toBe(0);
    expect((JSON.parse(dry.stdout) as { services: unknown }).services).toMatchObject({ inference: { port: 3129, socket: '/run/clawjail/inference.sock' } });
    expect(dry.stdout).not.toContain(KEY_A);
  });
});
