import net from 'node:net';
import { ClawjailError } from '../errors.js';
import type { LaunchPlan } from '../plan/plan.js';
import type { InitChannel } from '../services/channel.js';
import type { Cleanup } from './teardown.js';

/**
 * Listens on each published host port; a client's connection is joined to a connection init makes
 * inside the sandbox on request (the channel), so nothing of the sandbox's netns is exposed but
 * that port. Returns the bound ports (hostPort is the kernel's choice when 0 was asked).
 */
export async function publishPorts(plan: LaunchPlan, channel: InitChannel, cleanups: Cleanup[]) {
  const out: { hostAddress: string; hostPort: number; port: number }[] = [];
  for (const p of plan.publish) {
    const server = net.createServer((client) => {
      client.pause();
      channel.connect(p.port).then(
        (inner) => {
          client.pipe(inner).pipe(client);
          client.resume();
          const end = () => {
            client.destroy();
            inner.destroy();
          };
          client.on('error', end);
          inner.on('error', end);
          client.on('close', end);
          inner.on('close', end);
        },
        () => client.destroy(),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new ClawjailError(e.code ?? 'ERR_CLAWJAIL_SERVICE', `cannot publish ${p.hostAddress}:${p.hostPort} → ${p.port}: ${e.code ?? e.message}`, { hint: 'choose another host port (--publish HOSTPORT:PORT)' })),
      );
      server.listen(p.hostPort, p.hostAddress, () => resolve());
    });
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const addr = server.address() as net.AddressInfo;
    out.push({ hostAddress: p.hostAddress, hostPort: addr.port, port: p.port });
  }
  return out;
}
