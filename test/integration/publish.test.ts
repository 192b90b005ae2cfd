import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { clawjail, clawjailProcess, py, USERS } from '../helpers/cli.js';
import { freePort, waitForLine } from '../helpers/wait.js';

const get = (url: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });

// A server inside that binds the published port (landlock is on: the default profile, ABI 4+ on
// this host), says so, answers one request and exits.
const SERVE_ONE = [
  'import http.server',
  'class H(http.server.BaseHTTPRequestHandler):',
  '    def do_GET(self):',
  '        body = b"from-inside"',
  '        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)',
  '    def log_message(self, *a): pass',
  's = http.server.HTTPServer(("127.0.0.1", 8000), H)',
  'print("ready", flush=True)',
  's.handle_request()',
].join('\n');

describe.each(USERS)('--publish as %s', (as) => {
  it('a server inside binds the published port under landlock and the host reaches it', async () => {
    const hostPort = await freePort();
    const p = clawjailProcess(['run', '--publish', `${hostPort}:8000`, '--', ...py(SERVE_ONE)], { as });
    await waitForLine(p.stdout!, (l) => l === 'ready');
    const r = await get(`http://127.0.0.1:${hostPort}/`);
    expect(r).toEqual({ status: 200, body: 'from-inside' });
    const done = await p;
    expect(done.stderr).toBe('');
    expect(done.exitCode).toBe(0);
  });

  it('landlock still refuses binding a port that is not published (EACCES)', async () => {
    const r = await clawjail(['run', '--publish', '0:8000', '--', ...py('import socket, errno\ns = socket.socket()\ntry:\n    s.bind(("127.0.0.1", 8001)); print("OK")\nexcept OSError as e:\n    print(errno.errorcode[e.errno])')], { as });
    expect(r.stdout.trim()).toBe('EACCES');
  });

  it.each([
    [3128, 'the egress proxy'],
    [3129, 'the inference router'],
  ])('refuses to publish the sandbox service port %i (exit 125, names it)', async (port, what) => {
    const r = await clawjail(['run', '--publish', `0:${port}`, '--', 'true'], { as });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain(`refusing to publish port ${port}: it is ${what}`);
    expect(r.stderr).toContain('hint: publish the port of your own server inside instead');
  });
});
