// An orchestrator in its own process, for tests that must SIGKILL it or run it as another user.
//   node tenants-fixture.mjs PACKAGE_ROOT CONFIG.json
// Prints JSON lines on stdout: {"started": [...status]}, {"ready": [...status]}, then one
// {"tenant", "stream", "line"} per line of tenant output, and {"tree": [pids]} on request.
// Also listens on a unix socket (argv[4], if given) so tests can show a host socket exists.
import net from 'node:net';
import { readFileSync } from 'node:fs';

const [root, configPath, hostSocket] = process.argv.slice(2);
const { createOrchestrator } = await import(`${root}/dist/index.js`);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

if (hostSocket) await new Promise((r) => net.createServer((s) => s.end('host-socket\n')).listen(hostSocket, r));
const pending = new Map();
const orch = createOrchestrator({
  // Tenants' profiles turn approvals on (so each has a control socket); every request for an
  // unlisted destination is denied at once.
  onApproval: () => 'deny',
  config: JSON.parse(readFileSync(configPath, 'utf8')),
  onOutput: (tenant, stream, chunk) => {
    const text = (pending.get(tenant + stream) ?? '') + chunk.toString();
    const lines = text.split('\n');
    pending.set(tenant + stream, lines.pop());
    for (const line of lines) out({ tenant, stream, line });
  },
});
orch.on('event', (e) => (e.kind === 'audit' ? undefined : out({ event: e })));
try {
  out({ started: await orch.start() });
  out({ ready: await Promise.all(orch.list().map((t) => orch.ready(t.name))) });
} catch (e) {
  out({ error: { code: e.code, message: e.message } });
  process.exit(1);
}
process.on('SIGTERM', async () => {
  await orch.close(3000);
  out({ closed: true });
  process.exit(0);
});
