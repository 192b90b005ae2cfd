import http from 'node:http';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { launch, type Sandbox } from '../../src/index.js';
import { waitForValue } from '../helpers/wait.js';

/** Everything the workload wrote to stdout: the stream ends once every writer inside is gone. */
async function output(sb: Sandbox): Promise<string> {
  let out = '';
  for await (const chunk of sb.stdout!) out += (chunk as Buffer).toString();
  await sb.exited;
  return out;
}

const get = (url: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    http.get(url, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    }).on('error', reject);
  });

describe('launch() as a library', () => {
  it('returns a handle with pid, report, piped stdio and the exit status', async () => {
    const sb = await launch({ command: ['sh', '-c', 'echo out; echo err >&2; exit 7'], stdio: 'pipe', name: 'lib-basic' });
    expect(sb.pid).toBeGreaterThan(1);
    expect(sb.name).toBe('lib-basic');
    expect(sb.report.layers.map((l) => l.layer)).toEqual(expect.arrayContaining(['namespaces', 'filesystem', 'landlock', 'seccomp', 'network']));
    let err = '';
    sb.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const errEnded = new Promise((r) => sb.stderr!.on('end', r));
    const out = await output(sb);
    await errEnded;
    expect(out).toBe('out\n');
    expect(err).toBe('err\n');
    expect(await sb.exited).toEqual({ code: 7, signal: null, status: 7 });
  });

  it('kill() reaches the workload; the status says which signal', async () => {
    const sb = await launch({ command: ['sleep', '100'], stdio: 'pipe' });
    // The helper started with an empty environment: nothing of the supervisor's (API keys) is in it.
    expect(readFileSync(`/proc/${sb.pid}/environ`).length).toBe(0);
    sb.kill('SIGKILL');
    expect(await sb.exited).toEqual({ code: null, signal: 'SIGKILL', status: 137 });
  });

  it('two concurrent sandboxes see neither each other\'s files, processes nor sockets', async () => {
    const a = await launch({
      name: 'tenant-a',
      stdio: 'pipe',
      overrides: [{ landlock: { bindPorts: [7000] } }],
      command: [
        'python3',
        '-c',
        [
          'import socket, os, time, sys',
          'open("/sandbox/a-secret", "w").write("a"); open("/tmp/a-secret", "w").write("a")',
          't = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("127.0.0.1", 7000)); t.listen()',
          'u = socket.socket(socket.AF_UNIX); u.bind("\\0cj-tenant-a"); u.listen()',
          'print("ready", flush=True); time.sleep(30)',
        ].join('\n'),
      ],
    });
    try {
      await new Promise<void>((resolve) => a.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
      const b = await launch({
        name: 'tenant-b',
        stdio: 'pipe',
        overrides: [{ landlock: { connectPorts: [7000] } }],
        command: [
          'python3',
          '-c',
          [
            'import socket, os, errno',
            'def tcp():',
            '    s = socket.socket()',
            '    try:',
            '        s.connect(("127.0.0.1", 7000)); return "CONNECTED"',
            '    except OSError as e:',
            '        return errno.errorcode[e.errno]',
            'def abstract():',
            '    s = socket.socket(socket.AF_UNIX)',
            '    try:',
            '        s.connect("\\0cj-tenant-a"); return "CONNECTED"',
            '    except OSError as e:',
            '        return errno.errorcode[e.errno]',
            'procs = [p for p in os.listdir("/proc") if p.isdigit()]',
            'cmdlines = [open(f"/proc/{p}/cmdline").read() for p in procs if os.path.exists(f"/proc/{p}/cmdline")]',
            'print(os.listdir("/sandbox"), os.listdir("/tmp"), any(("time.sleep(" + "30)") in c for c in cmdlines), tcp(), abstract())',
          ].join('\n'),
        ],
      });
      const out = await output(b);
      expect(out.trim()).toBe("[] [] False ECONNREFUSED ECONNREFUSED");
      expect((await b.exited).status).toBe(0);
    } finally {
      a.kill('SIGKILL');
      await a.exited;
    }
  });

  it('serves the egress proxy inside: a request at t=0 gets the proxy\'s answer, not a refused connection', async () => {
    const sb = await launch({
      stdio: 'pipe',
      command: ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-x', 'http://127.0.0.1:3128', 'http://not-allowed.example/'],
    });
    const out = await output(sb);
    expect(out).toBe('403');
  });

  it('publishes a port: the host reaches a server inside through the init\'s connection', async () => {
    const sb = await launch({
      stdio: 'pipe',
      overrides: [{ publish: [{ hostPort: 0, port: 8000 }], landlock: { bindPorts: [8000] } }],
      command: ['sh', '-c', 'echo published-content > /sandbox/file && exec python3 -m http.server 8000 --bind 127.0.0.1 --directory /sandbox'],
    });
    try {
      const hostPort = sb.published[0]!.hostPort;
      expect(hostPort).toBeGreaterThan(0);
      const r = await waitForValue(async () => {
        const res = await get(`http://127.0.0.1:${hostPort}/file`);
        return res.status === 200 ? res : undefined;
      });
      expect(r.body).toBe('published-content\n');
      // The library's own connect() goes through the same init request.
      const sock = await sb.connect(8000);
      sock.end('GET /file HTTP/1.0\r\n\r\n');
      let raw = '';
      for await (const chunk of sock) raw += (chunk as Buffer).toString();
      expect(raw).toContain('published-content');
      // Nothing listens on 8001 inside: the connect request fails with the inside errno.
      await expect(sb.connect(8001)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    } finally {
      sb.kill('SIGKILL');
      await sb.exited;
    }
  });

  it('rejects with a coded error and leaves nothing behind when setup fails', async () => {
    await expect(launch({ command: ['true'], overrides: [{ filesystem: { ro: [{ src: '/no/such/path' }] } }] })).rejects.toMatchObject({
      code: 'ERR_CLAWJAIL_PROFILE',
      exitCode: 125,
    });
    await expect(launch({ command: ['no-such-binary-here'] })).rejects.toMatchObject({ code: 'ERR_CLAWJAIL_NOT_FOUND', exitCode: 127, step: 'exec', errno: 2 });
  });
});
