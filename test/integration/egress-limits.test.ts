import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { clawjail, py, USERS } from '../helpers/cli.js';
import { startUpstream, supervisorOwnedDir, writeWorldReadable, type As, type LoopbackUpstream } from '../helpers/egress-sandbox-kit.js';

// The proxy's connection limits, attacked from inside real sandboxes: the proxy is then served
// on the listening socket the sandbox's init handed over (created on the first connection), the
// path on which Node's own header timeout never ran (issue 9.3). The attacker is a Python
// program in the sandbox; the upstream on the host's loopback records what reached it.

let HTTP: LoopbackUpstream;

beforeAll(async () => {
  HTTP = await startUpstream();
});
afterAll(async () => {
  await HTTP?.close();
});
beforeEach(() => HTTP.reset());

/** Reads a whole answer (until the proxy closes) and reduces it to status, reason and timing. */
const PY_COMMON = String.raw`
import json, select, socket, sys, time
PROXY = ("127.0.0.1", 3128)
def parse(data):
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin1")
    lines = head.split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines[0].startswith("HTTP/1.1 ") else 0
    reason = next((l.split(": ", 1)[1] for l in lines[1:] if l.lower().startswith("x-clawjail-reason: ")), None)
    return status, reason, data.split(b"\r\n\r\n", 1)[-1].decode("latin1")
def read_all(s):
    data = b""
    while True:
        try:
            c = s.recv(65536)
        except ConnectionResetError:
            break
        if not c:
            break
        data += c
    return data
`;

/**
 * argv: N, upstream port, how long to keep trickling. Opens N requests that never finish their
 * headers (one more header byte every 250 ms), makes one normal request while they are all held,
 * then records for each when the proxy answered or closed it, measured from its own connect.
 */
const SLOWLORIS = String.raw`
N, PORT, HOLD = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
conns = []
for i in range(N):
    s = socket.create_connection(PROXY)
    s.sendall(b"GET http://127.0.0.1:%d/slow-%d HTTP/1.1\r\nHost: x\r\nX-Slow: " % (PORT, i))
    conns.append({"s": s, "at": time.monotonic(), "data": b"", "cut": None, "closed": False})
a = socket.create_connection(PROXY)
a.sendall(b"GET http://127.0.0.1:%d/alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % PORT)
alive = parse(read_all(a))
answered, _, _ = select.select([c["s"] for c in conns], [], [], 0)
held_at_alive = N - len(answered)
start = time.monotonic()
last_trickle = 0.0
while time.monotonic() - start < HOLD and not all(c["closed"] for c in conns):
    open_socks = [c["s"] for c in conns if not c["closed"]]
    readable, _, _ = select.select(open_socks, [], [], 0.05)
    now = time.monotonic()
    for c in conns:
        if c["s"] not in readable:
            continue
        try:
            chunk = c["s"].recv(65536)
        except ConnectionResetError:
            chunk = b""
        if c["cut"] is None:
            c["cut"] = now - c["at"]
        if chunk:
            c["data"] += chunk
        else:
            c["closed"] = True
            c["s"].close()
    if now - last_trickle >= 0.25:
        last_trickle = now
        for c in conns:
            if c["cut"] is None:
                try:
                    c["s"].send(b"s")
                except OSError:
                    pass
statuses, reasons = {}, {}
for c in conns:
    st, rs, _ = parse(c["data"])
    statuses[st] = statuses.get(st, 0) + 1
    reasons[rs] = reasons.get(rs, 0) + 1
cuts = [c["cut"] for c in conns if c["cut"] is not None]
print(json.dumps({
    "alive": {"status": alive[0], "reason": alive[1]},
    "heldAtAlive": held_at_alive,
    "statuses": statuses,
    "reasons": reasons,
    "closed": sum(1 for c in conns if c["closed"]),
    "neverCut": N - len(cuts),
    "cutMinMs": round(min(cuts) * 1000) if cuts else None,
    "cutMaxMs": round(max(cuts) * 1000) if cuts else None,
}))
`;

/**
 * argv: N (the cap), upstream port, extra connections. Holds N half-sent requests, sends the
 * extra ones complete, then finishes the N; at last closes them and asks again until there is
 * room (each refusal is an answer, not a wait).
 */
const OVER_CAP = String.raw`
N, PORT, EXTRA = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
held = []
for i in range(N):
    s = socket.create_connection(PROXY)
    s.sendall(b"GET http://127.0.0.1:%d/held-%d HTTP/1.1\r\nHost: x\r\n" % (PORT, i))
    held.append(s)
over = []
for i in range(EXTRA):
    s = socket.create_connection(PROXY)
    s.sendall(b"GET http://127.0.0.1:%d/over-%d HTTP/1.1\r\nHost: x\r\n\r\n" % (PORT, i))
    st, rs, body = parse(read_all(s))
    s.close()
    over.append({"status": st, "reason": rs, "namesLimit": "network.limits.maxConnections" in body})
answered, _, _ = select.select(held, [], [], 0)
quiet = N - len(answered)
for s in held:
    s.sendall(b"Connection: close\r\n\r\n")
held_statuses = {}
for s in held:
    st, _, _ = parse(read_all(s))
    held_statuses[st] = held_statuses.get(st, 0) + 1
    s.close()
refused_after = 0
for attempt in range(200):
    s = socket.create_connection(PROXY)
    s.sendall(b"GET http://127.0.0.1:%d/room HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % PORT)
    st, rs, _ = parse(read_all(s))
    s.close()
    if st != 503:
        break
    refused_after += 1
print(json.dumps({"over": over, "quietWhileOver": quiet, "held": held_statuses, "room": st, "refusedAfter": refused_after}))
`;

function auditEvents(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe.each(USERS)('egress proxy limits, attacked from inside a sandbox launched as %s', (as: As) => {
  let dir: string;
  beforeEach(async () => {
    dir = await supervisorOwnedDir(as, 'cj-egress-limits-');
  });
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const profileWith = (limits: Record<string, number>): string =>
    writeWorldReadable(
      join(dir, 'profile.yaml'),
      ['network:', '  allow:', '    - host: 127.0.0.1', `      ports: [${HTTP.port}]`, '  limits:', ...Object.entries(limits).map(([k, v]) => `    ${k}: ${v}`), ''].join('\n'),
    );

  const run = async (profile: string, log: string, code: string, args: (string | number)[]) => {
    const r = await clawjail(['run', '--profile', profile, '--audit-log', log, '--', ...py(PY_COMMON + code), ...args.map(String)], { as, timeout: 60_000 });
    return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode };
  };

  it('500 half-sent requests are each cut with 408 header-timeout at the header timeout, while a normal request succeeds', async () => {
    const headersTimeoutMs = 4000;
    const n = 500;
    const profile = profileWith({ headersTimeoutMs, maxConnections: 600 });
    const log = join(dir, 'audit.jsonl');
    const r = await run(profile, log, SLOWLORIS, [n, HTTP.port, 20]);
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    // The normal request went through while every slow one was still held.
    expect(out.alive).toEqual({ status: 200, reason: null });
    expect(out.heldAtAlive).toBe(n);
    expect(HTTP.requests.map((q) => q.url)).toEqual(['/alive']);
    // Every slow request was answered 408 and closed; none lasted to the end of the trickle (20 s).
    expect(out).toMatchObject({ statuses: { 408: n }, reasons: { 'header-timeout': n }, closed: n, neverCut: 0 });
    // Measured from the client's own connect, which precedes the proxy's accept (the timer's
    // start); the slack below is the timer's granularity, the bound above a busy machine's delay.
    expect(out.cutMinMs as number).toBeGreaterThanOrEqual(headersTimeoutMs - 100);
    expect(out.cutMaxMs as number).toBeLessThan(headersTimeoutMs + 5000);
    const events = auditEvents(log).filter((e) => e.kind === 'egress.decision');
    expect(events.filter((e) => e.reason === 'header-timeout' && e.decision === 'deny')).toHaveLength(n);
    expect(events.filter((e) => e.decision === 'allow').map((e) => e.host)).toEqual(['127.0.0.1']);
  }, 90_000);

  it('connection N+1 over network.limits.maxConnections gets 503 too-many-connections while the N held ones are kept and served', async () => {
    const max = 20;
    const profile = profileWith({ maxConnections: max, headersTimeoutMs: 30_000 });
    const log = join(dir, 'audit.jsonl');
    const r = await run(profile, log, OVER_CAP, [max, HTTP.port, 3]);
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { over: unknown[]; quietWhileOver: number; held: Record<string, number>; room: number; refusedAfter: number };
    expect(out.over).toEqual(Array.from({ length: 3 }, () => ({ status: 503, reason: 'too-many-connections', namesLimit: true })));
    // Not one held connection was answered or closed by the refusals…
    expect(out.quietWhileOver).toBe(max);
    // …and each is served once its request is complete.
    expect(out.held).toEqual({ 200: max });
    expect(out.room).toBe(200);
    const urls = HTTP.requests.map((q) => q.url);
    expect(urls.filter((u) => u.startsWith('/over'))).toEqual([]);
    expect(urls.filter((u) => u.startsWith('/held')).sort()).toEqual(Array.from({ length: max }, (_, i) => `/held-${i}`).sort());
    // One event when the cap was reached, one when there was room again: not one per refusal.
    const limits = auditEvents(log).filter((e) => e.kind === 'egress.limit');
    expect(limits.map((e) => ({ state: e.state, max: e.max, open: e.open, refused: e.refused }))).toEqual([
      { state: 'reached', max, open: max, refused: undefined },
      { state: 'cleared', max, open: undefined, refused: 3 + out.refusedAfter },
    ]);
  }, 90_000);
});
