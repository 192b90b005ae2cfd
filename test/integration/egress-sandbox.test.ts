import { readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { probeHost } from '../../src/host/probe.js';
import { clawjail, sh, USERS } from '../helpers/cli.js';
import {
  outcome,
  parseReqs,
  REQ,
  runLibrary,
  startUpstream,
  supervisorOwnedDir,
  waitForPending,
  worldReadableDir,
  writeWorldReadable,
  type As,
  type LoopbackUpstream,
} from '../helpers/egress-sandbox-kit.js';
import { node24, NODE24_BIN, NODE24_DIR } from '../helpers/node24.js';
import { makeTestCert } from '../helpers/tls-cert.js';
import { freePort } from '../helpers/wait.js';

// The egress policy seen from inside real sandboxes. Upstreams listen on the host's loopback,
// which the sandbox (its own netns, only `lo`) cannot reach except through the proxy, and the
// proxy only when a rule names 127.0.0.1 on that port: so every "200" below went through the
// proxy, and every refusal is checked against the upstream's own record of what reached it.

const n24 = await node24();
const NODE24_SKIP = 'skip' in n24 ? n24.skip : undefined;
if (NODE24_SKIP) console.warn(`egress-sandbox: Node 24 fetch test skipped: ${NODE24_SKIP}`);

// With landlock's TCP rules (ABI >= 4) a connect() to a port that is not a service port is
// refused by landlock itself (EACCES) before routing; without them the empty netns answers.
const LANDLOCK_TCP = probeHost().landlock.abi >= 4;

/** Names the throwaway certificate carries; the injected resolver maps them to loopback. */
const CERT_NAMES = ['localhost', 'a.x.test', 'deep.a.x.test', 'x.test', 'evil-x.test', 'api.x.test'];

let HTTP: LoopbackUpstream;
let TLS: LoopbackUpstream;
/** A loopback port with nothing listening, and another one no rule names. */
let NP: number;
let OP: number;
let caDir: string;
const CA = '/ca/ca.pem';

beforeAll(async () => {
  const cert = await makeTestCert(CERT_NAMES, ['127.0.0.1']);
  HTTP = await startUpstream();
  TLS = await startUpstream(cert);
  NP = await freePort();
  OP = await freePort();
  caDir = worldReadableDir('cj-egress-ca-');
  writeWorldReadable(join(caDir, 'ca.pem'), cert.cert);
});

afterAll(async () => {
  await Promise.all([HTTP?.close(), TLS?.close()]);
  if (caDir) rmSync(caDir, { recursive: true, force: true });
});

beforeEach(() => {
  HTTP.reset();
  TLS.reset();
});

const script = (...lines: string[]) => sh([REQ, ...lines].join('\n'));
const allow = (...rules: string[]) => rules.flatMap((r) => ['--allow-host', r]);
const ok = { status: 200, connect: 0, exit: 0, reason: '-' };
const okTls = { status: 200, connect: 200, exit: 0, reason: '-' };
/** Plain HTTP refused: curl gets the 403 as the response and exits 0. */
const refused = (reason: string) => ({ status: 403, connect: 0, exit: 0, reason });
/** CONNECT refused: no response from the destination (000), curl exits 56 (CURLE_RECV_ERROR). */
const refusedTls = (reason: string) => ({ status: 0, connect: 403, exit: 56, reason });

/** Waits until the upstream has seen `n` connections close (the proxy's side closes a moment after curl exits). */
async function connectionsClosed(up: LoopbackUpstream, n: number): Promise<void> {
  const deadline = Date.now() + 3000;
  while (up.connections.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

function auditEvents(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const decisions = (events: Record<string, unknown>[]) =>
  events.filter((e) => e.kind === 'egress.decision').map((e) => ({ host: e.host, port: e.port, decision: e.decision, reason: e.reason }));

describe.each(USERS)('egress from inside a sandbox launched as %s', (as: As) => {
  const run = (args: string[], opts: Parameters<typeof clawjail>[1] = {}) => cli(['run', ...args], opts);
  const cli = async (args: string[], opts: Parameters<typeof clawjail>[1] = {}) => {
    const r = await clawjail(args, { as, ...opts });
    return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode };
  };

  it('a request at t=0 works: curl is the first and only thing the workload runs', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await run([...allow(`127.0.0.1:${HTTP.port}`), '--', 'curl', '-sS', '--noproxy', '', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${HTTP.port}/t0-${i}`]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('200');
      expect(r.exitCode).toBe(0);
    }
    expect(HTTP.requests.map((q) => q.url)).toEqual(['/t0-0', '/t0-1', '/t0-2']);
  });

  it('allowed destinations work: plain HTTP forwarded, HTTPS through CONNECT to a name and to the IP literal', async () => {
    const r = await run([
      ...allow(`127.0.0.1:${HTTP.port}`, `127.0.0.1:${TLS.port}`, `localhost:${TLS.port}`),
      '--ro', `${caDir}:/ca`,
      '--',
      ...script(
        `req http http://127.0.0.1:${HTTP.port}/plain`,
        `req https-name https://localhost:${TLS.port}/tls-name --cacert ${CA}`,
        // curl sends no SNI to an IP literal; the proxy lets a tunnel to an IP go without one.
        `req https-ip https://127.0.0.1:${TLS.port}/tls-ip --cacert ${CA}`,
      ),
    ]);
    const q = parseReqs(r.stdout);
    expect(outcome(q.http)).toEqual(ok);
    expect(JSON.parse(q.http!.body)).toEqual({ path: '/plain', host: `127.0.0.1:${HTTP.port}`, sni: null });
    expect(outcome(q['https-name'])).toEqual(okTls);
    expect(JSON.parse(q['https-name']!.body)).toEqual({ path: '/tls-name', host: `localhost:${TLS.port}`, sni: 'localhost' });
    expect(outcome(q['https-ip'])).toEqual(okTls);
    expect(JSON.parse(q['https-ip']!.body)).toEqual({ path: '/tls-ip', host: `127.0.0.1:${TLS.port}`, sni: null });
  });

  it('refuses what no rule allows: another host, another port, names vs IP rules, an allowed name resolving to loopback', async () => {
    const r = await run([
      ...allow(`127.0.0.1:${HTTP.port}`, `127.0.0.1:${TLS.port}`, `localhost:${TLS.port}`, `localhost:${NP}`),
      '--ro', `${caDir}:/ca`,
      '--',
      ...script(
        'req host-http http://not-listed.test/',
        'req host-https https://not-listed.test/',
        // localhost is allowed, but only on TLS.port and NP
        `req port https://localhost:${OP}/ --cacert ${CA}`,
        // the rule 127.0.0.1:HTTP.port names an address, never the name that resolves to it
        `req ip-rule-vs-name http://localhost:${HTTP.port}/`,
        // the rule localhost:NP names a name, never the IP literal; a loopback literal needs an IP rule
        `req name-rule-vs-ip http://127.0.0.1:${NP}/`,
        // allowed by name, but the host's resolver answers 127.0.0.1 (and ::1), named by no IP rule on NP
        `req name-to-loopback http://localhost:${NP}/`,
      ),
    ]);
    const q = parseReqs(r.stdout);
    expect(outcome(q['host-http'])).toEqual(refused('not-allowlisted'));
    expect(outcome(q['host-https'])).toEqual(refusedTls('not-allowlisted'));
    expect(outcome(q.port)).toEqual(refusedTls('not-allowlisted'));
    expect(outcome(q['ip-rule-vs-name'])).toEqual(refused('not-allowlisted'));
    expect(outcome(q['name-rule-vs-ip'])).toEqual(refused('private-address'));
    // 403, not 502: the proxy never tried to connect to the (closed) port
    expect(outcome(q['name-to-loopback'])).toEqual(refused('private-address'));
    expect(HTTP.accepted() + TLS.accepted()).toBe(0);
  });

  it('deny beats allow (rules from a profile file the supervisor reads)', async () => {
    const dir = worldReadableDir('cj-egress-deny-');
    try {
      const profile = writeWorldReadable(
        join(dir, 'deny.yaml'),
        YAML.stringify({
          network: {
            allow: [
              { host: '127.0.0.1', ports: [HTTP.port, TLS.port] },
              { host: 'localhost', ports: [TLS.port] },
            ],
            deny: [{ host: '127.0.0.1', ports: [HTTP.port] }, { host: 'localhost' }],
          },
        }),
      );
      const r = await run([
        '--profile', profile, '--ro', `${caDir}:/ca`,
        '--',
        ...script(
          `req ip-denied http://127.0.0.1:${HTTP.port}/`,
          `req name-denied https://localhost:${TLS.port}/ --cacert ${CA}`,
          `req not-denied https://127.0.0.1:${TLS.port}/still-allowed --cacert ${CA}`,
        ),
      ]);
      const q = parseReqs(r.stdout);
      expect(outcome(q['ip-denied'])).toEqual(refused('denied'));
      expect(outcome(q['name-denied'])).toEqual(refusedTls('denied'));
      expect(outcome(q['not-denied'])).toEqual(okTls);
      expect(HTTP.accepted()).toBe(0);
      expect(TLS.requests.map((x) => x.url)).toEqual(['/still-allowed']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('library resolve: *.x.test vs x.test and evil-x.test, names resolving to loopback or metadata, SNI must match', async () => {
    const hosts: Record<string, string[]> = {};
    for (const n of ['a.x.test', 'deep.a.x.test', 'x.test', 'evil-x.test', 'lo.y.test']) hosts[n] = ['127.0.0.1'];
    hosts['meta.y.test'] = ['169.254.169.254'];
    const tunnel = [
      'import socket, ssl',
      'def tunnel(target, sni):',
      '    s = socket.create_connection(("127.0.0.1", 3128))',
      '    s.sendall(("CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n" % (target, target)).encode())',
      '    head = b""',
      '    while not head.endswith(b"\\r\\n\\r\\n"):',
      '        c = s.recv(1)',
      '        if not c: break',
      '        head += c',
      '    ctx = ssl.create_default_context(cafile="/ca/ca.pem")',
      '    ctx.check_hostname = sni is not None',
      '    try:',
      '        t = ctx.wrap_socket(s, server_hostname=sni)',
      '        t.sendall(b"GET /sni HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")',
      '        return head.split(b" ")[1].decode() + " " + t.recv(100).split(b"\\r\\n")[0].decode()',
      '    except ssl.SSLError as e:',
      '        return head.split(b" ")[1].decode() + " " + e.reason',
      `print("sni-match", tunnel("a.x.test:${TLS.port}", "a.x.test"))`,
      `print("sni-mismatch", tunnel("a.x.test:${TLS.port}", "evil-x.test"))`,
      `print("sni-missing", tunnel("a.x.test:${TLS.port}", None))`,
    ].join('\n');
    const dir = await supervisorOwnedDir(as, 'cj-egress-lib-');
    const log = join(dir, 'audit.jsonl');
    const r = await runLibrary(as, {
      hosts,
      options: {
        auditLog: log,
        overrides: [
          {
            filesystem: { ro: [{ src: caDir, dest: '/ca' }] },
            network: {
              allow: [
                { host: '*.x.test', ports: [HTTP.port, TLS.port] },
                { host: '127.0.0.1', ports: [HTTP.port, TLS.port] },
                { host: 'meta.y.test', ports: [HTTP.port] },
                { host: 'lo.y.test', ports: [NP] },
              ],
            },
          },
        ],
        command: script(
          `req sub https://a.x.test:${TLS.port}/sub --cacert ${CA}`,
          `req deep https://deep.a.x.test:${TLS.port}/deep --cacert ${CA}`,
          `req sub-http http://a.x.test:${HTTP.port}/sub-http`,
          `req bare https://x.test:${TLS.port}/ --cacert ${CA}`,
          `req lookalike https://evil-x.test:${TLS.port}/ --cacert ${CA}`,
          `req metadata http://meta.y.test:${HTTP.port}/latest/meta-data/`,
          `req loopback https://lo.y.test:${NP}/ --cacert ${CA}`,
          `python3 -c '${tunnel.replace(/'/g, `'"'"'`)}'`,
        ),
      },
    });
    expect(r.error).toBeUndefined();
    const q = parseReqs(r.stdout);
    expect(outcome(q.sub)).toEqual(okTls);
    expect(JSON.parse(q.sub!.body).sni).toBe('a.x.test');
    expect(outcome(q.deep)).toEqual(okTls);
    expect(outcome(q['sub-http'])).toEqual(ok);
    // `*.x.test` matches neither the bare suffix nor a name that merely ends in "x.test"
    expect(outcome(q.bare)).toEqual(refusedTls('not-allowlisted'));
    expect(outcome(q.lookalike)).toEqual(refusedTls('not-allowlisted'));
    expect(outcome(q.metadata)).toEqual(refused('private-address'));
    expect(outcome(q.loopback)).toEqual(refusedTls('private-address'));
    // CONNECT is accepted (200), then the ClientHello is read: a different SNI, or none to a
    // name, gets a TLS access_denied alert and is never forwarded.
    const sni = Object.fromEntries(r.stdout.split('\n').filter((l) => l.startsWith('sni-')).map((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)]));
    expect(sni).toEqual({ 'sni-match': '200 HTTP/1.1 200 OK', 'sni-mismatch': '200 TLSV1_ALERT_ACCESS_DENIED', 'sni-missing': '200 TLSV1_ALERT_ACCESS_DENIED' });
    expect(TLS.requests.map((x) => [x.url, x.servername])).toEqual([['/sub', 'a.x.test'], ['/deep', 'deep.a.x.test'], ['/sni', 'a.x.test']]);
    expect(HTTP.requests.map((x) => x.url)).toEqual(['/sub-http']);
    expect(r.status).toBe(0);
    const T = TLS.port;
    expect(decisions(auditEvents(log))).toEqual([
      { host: 'a.x.test', port: T, decision: 'allow', reason: 'allowlisted' },
      { host: 'deep.a.x.test', port: T, decision: 'allow', reason: 'allowlisted' },
      { host: 'a.x.test', port: HTTP.port, decision: 'allow', reason: 'allowlisted' },
      { host: 'x.test', port: T, decision: 'deny', reason: 'not-allowlisted' },
      { host: 'evil-x.test', port: T, decision: 'deny', reason: 'not-allowlisted' },
      { host: 'meta.y.test', port: HTTP.port, decision: 'deny', reason: 'private-address' },
      { host: 'lo.y.test', port: NP, decision: 'deny', reason: 'private-address' },
      // each tunnel is allowed on its CONNECT line, then judged again on its first bytes
      { host: 'a.x.test', port: T, decision: 'allow', reason: 'allowlisted' },
      { host: 'a.x.test', port: T, decision: 'allow', reason: 'allowlisted' },
      { host: 'a.x.test', port: T, decision: 'deny', reason: 'sni-mismatch' },
      { host: 'a.x.test', port: T, decision: 'allow', reason: 'allowlisted' },
      { host: 'a.x.test', port: T, decision: 'deny', reason: 'sni-mismatch' },
    ]);
    rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(NODE24_SKIP !== undefined)(`Node 24 fetch reaches allowed hosts with nothing but the sandbox env${NODE24_SKIP ? ` (skipped: ${NODE24_SKIP})` : ''}`, async () => {
    if ('skip' in n24) return;
    const code = [
      `const h = await fetch('http://api.x.test:${HTTP.port}/n24-http');`,
      "console.log('http', h.status, (await h.json()).path);",
      `const s = await fetch('https://api.x.test:${TLS.port}/n24-https');`,
      "console.log('https', s.status, JSON.stringify(await s.json()));",
      // Node 24 tunnels plain http:// through CONNECT as well, so a refusal is a fetch error.
      "try { await fetch('http://not-listed.test/'); console.log('refused: no'); } catch (e) { console.log('refused', e.cause?.cause?.code, e.cause?.cause?.message); }",
      "console.log('env', Object.keys(process.env).filter((k) => /proxy/i.test(k)).sort().join(','));",
    ].join('\n');
    const dir = await supervisorOwnedDir(as, 'cj-egress-n24-');
    const log = join(dir, 'audit.jsonl');
    const r = await runLibrary(as, {
      hosts: { 'api.x.test': ['127.0.0.1'] },
      options: {
        auditLog: log,
        overrides: [
          {
            filesystem: { ro: [{ src: n24.dir, dest: NODE24_DIR }, { src: caDir, dest: '/ca' }] },
            // the throwaway CA is the only thing added; the proxy comes from the sandbox's own env
            env: { set: { NODE_EXTRA_CA_CERTS: CA } },
            network: { allow: [{ host: 'api.x.test', ports: [HTTP.port, TLS.port] }, { host: '127.0.0.1', ports: [HTTP.port, TLS.port] }] },
          },
        ],
        command: [NODE24_BIN, '--input-type=module', '-e', code],
      },
    });
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual([
      'http 200 /n24-http',
      `https 200 ${JSON.stringify({ path: '/n24-https', host: `api.x.test:${TLS.port}`, sni: 'api.x.test' })}`,
      'refused UND_ERR_ABORTED Proxy response (403) !== 200 when HTTP Tunneling',
      'env ALL_PROXY,HTTPS_PROXY,HTTP_PROXY,NODE_USE_ENV_PROXY,NO_PROXY,all_proxy,http_proxy,https_proxy,no_proxy',
    ]);
    expect(r.status).toBe(0);
    expect(decisions(auditEvents(log))).toEqual([
      { host: 'api.x.test', port: HTTP.port, decision: 'allow', reason: 'allowlisted' },
      { host: 'api.x.test', port: TLS.port, decision: 'allow', reason: 'allowlisted' },
      { host: 'not-listed.test', port: 80, decision: 'deny', reason: 'not-allowlisted' },
    ]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('an empty allowlist blocks HTTP, HTTPS and DNS', async () => {
    const r = await run([
      '--ro', `${caDir}:/ca`,
      '--',
      ...script(
        `req http-name http://localhost:${HTTP.port}/`,
        `req https-name https://localhost:${TLS.port}/ --cacert ${CA}`,
        `req http-ip http://127.0.0.1:${HTTP.port}/`,
        'req public http://example.com/',
        'req public-tls https://example.com/',
        'getent hosts example.com; echo "getent $?"',
        'getent hosts localhost >/dev/null; echo "getent-files $?"',
        `python3 -c '${[
          'import socket, errno',
          'try:',
          '    socket.getaddrinfo("example.com", 443); print("gai OK")',
          'except socket.gaierror as e:',
          '    print("gai", e.errno)',
          'u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
          'try:',
          '    u.sendto(b"\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07example\\x03com\\x00\\x00\\x01\\x00\\x01", ("8.8.8.8", 53)); print("udp53 OK")',
          'except OSError as e:',
          '    print("udp53", errno.errorcode[e.errno])',
        ].join('\n')}'`,
      ),
    ]);
    const q = parseReqs(r.stdout);
    expect(outcome(q['http-name'])).toEqual(refused('not-allowlisted'));
    expect(outcome(q['https-name'])).toEqual(refusedTls('not-allowlisted'));
    expect(outcome(q['http-ip'])).toEqual(refused('private-address'));
    expect(outcome(q.public)).toEqual(refused('not-allowlisted'));
    expect(outcome(q['public-tls'])).toEqual(refusedTls('not-allowlisted'));
    const lines = r.stdout.split('\n').filter((l) => !l.includes('\t') && l);
    // getent 2: "not found" (resolv.conf names no server, so glibc asks 127.0.0.1:53 in the
    // sandbox's own netns and gets a refusal); /etc/hosts still answers for localhost.
    // EAI_AGAIN (-3) from python for the same reason; a query sent straight to a public resolver
    // has no route at all: only lo exists (landlock does not cover UDP).
    expect(lines).toEqual(['getent 2', 'getent-files 0', 'gai -3', 'udp53 ENETUNREACH']);
    expect(HTTP.accepted() + TLS.accepted()).toBe(0);
  });

  it('a program that ignores the proxy env fails closed: /dev/tcp, nc, a raw python socket', async () => {
    const p = HTTP.port;
    const direct = [
      `bash -c 'echo > /dev/tcp/127.0.0.1/${p}' 2>&1; echo "devtcp $?"`,
      `nc -v -w 2 127.0.0.1 ${p} </dev/null 2>&1; echo "nc $?"`,
      `python3 -c '${['import socket, errno', 'for a in [("127.0.0.1", ' + p + '), ("192.0.2.1", 80)]:', '    s = socket.socket()', '    try:', '        s.connect(a); print("py", a[1], "OK")', '    except OSError as e:', '        print("py", a[1], errno.errorcode[e.errno])'].join('\n')}'`,
    ];
    // The proxy would allow this destination: the direct path must fail anyway. (A rule naming
    // exactly 127.0.0.1 would forward that port on purpose; a CIDR rule is the proxy's alone.)
    // bash >= 5.1 names the line of a -c script in its messages; older ones do not.
    const lines = (out: string) => out.trim().split('\n').filter((l) => !l.includes('\t')).map((l) => l.replace(/^bash: line 1: /, 'bash: '));
    const r = await run([...allow(`127.0.0.0/8:${p}`), '--', ...sh(direct.join('\n'))]);
    // Landlock refuses a TCP connect to any port but the service ports: EACCES, whatever the address.
    const denied = LANDLOCK_TCP ? 'Permission denied' : 'Connection refused';
    expect(lines(r.stdout)).toEqual([
      `bash: connect: ${denied}`,
      `bash: /dev/tcp/127.0.0.1/${p}: ${denied}`,
      'devtcp 1',
      `nc: connect to 127.0.0.1 port ${p} (tcp) failed: ${denied}`,
      'nc 1',
      `py ${p} ${LANDLOCK_TCP ? 'EACCES' : 'ECONNREFUSED'}`,
      `py 80 ${LANDLOCK_TCP ? 'EACCES' : 'ENETUNREACH'}`,
    ]);
    // Without landlock the network namespace alone still holds: 127.0.0.1 is the sandbox's own
    // loopback, where nothing listens on that port (ECONNREFUSED), and there is no route to any
    // other address (ENETUNREACH). The proxy still works in the same sandbox.
    const bare = await run([...allow(`127.0.0.0/8:${p}`), '--landlock', 'off', '--', ...script(...direct, `req proxied http://127.0.0.1:${p}/proxied`)]);
    expect(lines(bare.stdout)).toEqual([
      'bash: connect: Connection refused',
      `bash: /dev/tcp/127.0.0.1/${p}: Connection refused`,
      'devtcp 1',
      `nc: connect to 127.0.0.1 port ${p} (tcp) failed: Connection refused`,
      'nc 1',
      `py ${p} ECONNREFUSED`,
      'py 80 ENETUNREACH',
    ]);
    expect(outcome(parseReqs(bare.stdout).proxied)).toEqual(ok);
    // The one connection the upstream ever saw is the proxied one.
    expect(HTTP.accepted()).toBe(1);
    expect(HTTP.requests.map((x) => x.url)).toEqual(['/proxied']);
  });

  it('--no-network: no proxy variables and nothing listening on 3128', async () => {
    const probe = [
      'env | grep -ci proxy',
      `python3 -c '${['import socket, errno', 's = socket.socket()', 'try:', '    s.connect(("127.0.0.1", 3128)); print("3128 OK")', 'except OSError as e:', '    print("3128", errno.errorcode[e.errno])'].join('\n')}'`,
      'curl -sS -x http://127.0.0.1:3128 http://example.com/ 2>/dev/null; echo "curl $?"',
    ].join('\n');
    const r = await run(['--no-network', '--', ...sh(probe)]);
    // landlock: with no service there is no port to allow, so even 3128 is EACCES
    expect(r.stdout.trim().split('\n')).toEqual(['0', `3128 ${LANDLOCK_TCP ? 'EACCES' : 'ECONNREFUSED'}`, 'curl 7']);
    // without landlock: nothing listens on 3128 (ECONNREFUSED), so there is no proxy at all
    const bare = await run(['--no-network', '--landlock', 'off', '--', ...sh(probe)]);
    expect(bare.stdout.trim().split('\n')).toEqual(['0', '3128 ECONNREFUSED', 'curl 7']);
  });

  it('--audit-log: one decision per request (host, port, decision, reason) and a close event with byte counts', async () => {
    const dir = await supervisorOwnedDir(as, 'cj-egress-audit-');
    const log = join(dir, 'audit.jsonl');
    try {
      const r = await run([
        ...allow(`127.0.0.1:${HTTP.port}`, `127.0.0.1:${TLS.port}`, `localhost:${TLS.port}`),
        '--audit-log', log, '--ro', `${caDir}:/ca`, '--name', `cj-egress-audit-${as}`,
        '--',
        ...script(
          `req http http://127.0.0.1:${HTTP.port}/audited`,
          `req https https://localhost:${TLS.port}/audited --cacert ${CA}`,
          'req no http://not-listed.test/x',
          'req no-tls https://not-listed.test/',
        ),
      ]);
      expect(r.exitCode).toBe(0);
      await connectionsClosed(HTTP, 1);
      await connectionsClosed(TLS, 1);
      const events = auditEvents(log);
      expect(decisions(events)).toEqual([
        { host: '127.0.0.1', port: HTTP.port, decision: 'allow', reason: 'allowlisted' },
        { host: 'localhost', port: TLS.port, decision: 'allow', reason: 'allowlisted' },
        { host: 'not-listed.test', port: 80, decision: 'deny', reason: 'not-allowlisted' },
        { host: 'not-listed.test', port: 443, decision: 'deny', reason: 'not-allowlisted' },
      ]);
      for (const e of events.filter((x) => x.kind === 'egress.decision')) {
        expect(e.sandbox).toBe(`cj-egress-audit-${as}`);
        expect(typeof e.time).toBe('string');
      }
      const closes = events.filter((e) => e.kind === 'egress.close');
      // Byte counts are those of the proxy's upstream socket: exactly what the upstream read and wrote.
      expect(closes.map((e) => ({ host: e.host, port: e.port, ip: e.ip, bytesOut: e.bytesOut, bytesIn: e.bytesIn }))).toEqual([
        { host: '127.0.0.1', port: HTTP.port, ip: '127.0.0.1', bytesOut: HTTP.connections[0]!.bytesRead, bytesIn: HTTP.connections[0]!.bytesWritten },
        { host: 'localhost', port: TLS.port, ip: '127.0.0.1', bytesOut: TLS.connections[0]!.bytesRead, bytesIn: TLS.connections[0]!.bytesWritten },
      ]);
      expect(HTTP.connections[0]!.bytesWritten).toBeGreaterThan(0);
      expect(TLS.connections[0]!.bytesRead).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('approvals', () => {
    let dir: string;
    let env: Record<string, string>;
    beforeEach(async () => {
      dir = await supervisorOwnedDir(as, 'cj-egress-appr-');
      env = { CLAWJAIL_RUNTIME_DIR: join(dir, 'run') };
    });
    afterEach(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });
    const profileWith = (timeoutMs: number) =>
      [
        '# written by egress-sandbox.test.ts',
        'network:',
        '  allow:',
        '    # the upstreams live on loopback: only an IP rule lets an approved name reach them',
        '    - host: 127.0.0.1',
        `      ports: [${HTTP.port}, ${TLS.port}]`,
        '  approvals:',
        `    timeoutMs: ${timeoutMs}`,
        '',
      ].join('\n');

    it('a held request waits, is listed, and `approve --always` lets it through and persists the rule', async () => {
      const profile = join(dir, 'profile.yaml');
      writeWorldReadable(profile, profileWith(8000));
      const name = `cj-egress-always-${as}`;
      const log = join(dir, 'audit.jsonl');
      const running = run(['--approvals', '--profile', profile, '--name', name, '--audit-log', log, '--', ...script(`req first http://localhost:${HTTP.port}/first`, `req second http://localhost:${HTTP.port}/second`)], { env });
      const { entry, listed } = await waitForPending(as, name, env, (p) => p.host === 'localhost');
      expect(listed).toHaveLength(1);
      expect(entry).toMatchObject({ host: 'localhost', port: HTTP.port, via: 'http', requests: 1 });
      expect(HTTP.accepted()).toBe(0);
      const approve = await cli(['approve', entry.id, '--always', '--name', name], { as, env });
      expect(approve.stderr).toBe('');
      expect(approve.stdout).toContain(`rule added to ${profile}`);
      expect(approve.exitCode).toBe(0);
      const r = await running;
      const q = parseReqs(r.stdout);
      expect(outcome(q.first)).toEqual(ok);
      expect(outcome(q.second)).toEqual(ok);
      expect(HTTP.requests.map((x) => x.url)).toEqual(['/first', '/second']);
      // The second request matched the new rule at once: no second hold.
      expect(decisions(auditEvents(log))).toEqual([
        { host: 'localhost', port: HTTP.port, decision: 'hold', reason: 'not-allowlisted' },
        { host: 'localhost', port: HTTP.port, decision: 'allow', reason: 'approved' },
        { host: 'localhost', port: HTTP.port, decision: 'allow', reason: 'allowlisted' },
      ]);
      // The profile file now carries the rule, and its comments survived.
      const text = readFileSync(profile, 'utf8');
      expect(text).toContain('# written by egress-sandbox.test.ts');
      expect((YAML.parse(text) as { network: { allow: unknown[] } }).network.allow).toEqual([
        { host: '127.0.0.1', ports: [HTTP.port, TLS.port] },
        { host: 'localhost', ports: [HTTP.port] },
      ]);
      // A new sandbox from the same profile passes without asking.
      const again = await run(['--approvals', '--profile', profile, '--name', name, '--audit-log', log, '--', ...script(`req again http://localhost:${HTTP.port}/again`)], { env });
      expect(outcome(parseReqs(again.stdout).again)).toEqual(ok);
      expect(decisions(auditEvents(log)).slice(3)).toEqual([{ host: 'localhost', port: HTTP.port, decision: 'allow', reason: 'allowlisted' }]);
    });

    it('`deny ID` answers 403 denied; an unanswered request gets 403 approval-timeout', async () => {
      const profile = join(dir, 'profile.yaml');
      writeWorldReadable(profile, profileWith(2000));
      const name = `cj-egress-deny-${as}`;
      const started = Date.now();
      const running = run(
        ['--approvals', '--profile', profile, '--name', name, '--ro', `${caDir}:/ca`, '--', ...script(`req denied http://localhost:${HTTP.port}/d`, `req timeout https://localhost:${TLS.port}/t --cacert ${CA}`)],
        { env },
      );
      const first = await waitForPending(as, name, env, (p) => p.port === HTTP.port);
      const deny = await cli(['deny', first.entry.id, '--name', name], { as, env });
      expect(deny.exitCode).toBe(0);
      expect(deny.stdout).toContain(`denied ${first.entry.id}`);
      const second = await waitForPending(as, name, env, (p) => p.port === TLS.port);
      expect(second.entry).toMatchObject({ host: 'localhost', via: 'connect' });
      const timedOutAt = Date.now();
      const r = await running;
      const q = parseReqs(r.stdout);
      expect(outcome(q.denied)).toEqual(refused('denied'));
      expect(outcome(q.timeout)).toEqual(refusedTls('approval-timeout'));
      // the profile's 2 s timeout applied, not the 30 s default
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(Date.now() - timedOutAt).toBeLessThan(4000);
      expect(HTTP.accepted() + TLS.accepted()).toBe(0);
      expect(readFileSync(profile, 'utf8')).toBe(profileWith(2000));
    });

    it('the library onApproval callback answers held requests', async () => {
      const r = await runLibrary(as, {
        hosts: { 'ok.x.test': ['127.0.0.1'], 'no.x.test': ['127.0.0.1'] },
        verdicts: { 'ok.x.test': 'allow', 'no.x.test': 'deny' },
        env,
        options: {
          overrides: [{ network: { allow: [{ host: '127.0.0.1', ports: [HTTP.port] }], approvals: { enabled: true, timeoutMs: 5000 } } }],
          command: script(`req ok http://ok.x.test:${HTTP.port}/ok`, `req no http://no.x.test:${HTTP.port}/no`),
        },
      });
      expect(r.error).toBeUndefined();
      const q = parseReqs(r.stdout);
      expect(outcome(q.ok)).toEqual(ok);
      expect(outcome(q.no)).toEqual(refused('denied'));
      expect(r.approvals.map((p) => ({ host: p.host, port: p.port, via: p.via }))).toEqual([
        { host: 'ok.x.test', port: HTTP.port, via: 'http' },
        { host: 'no.x.test', port: HTTP.port, via: 'http' },
      ]);
      expect(HTTP.requests.map((x) => x.url)).toEqual(['/ok']);
    });
  });
});
