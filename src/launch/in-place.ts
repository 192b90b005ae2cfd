import { ClawjailError } from '../errors.js';
import { addon } from '../native.js';
import type { InPlacePorts } from '../plan/in-place.js';
import type { Profile } from '../profile/schema.js';
import type { Cleanup } from './teardown.js';

/**
 * In-place mode: the egress proxy and the inference router listen on the container's loopback, at
 * ports the kernel picks, before the plan names them. `take()` hands the fds to the services.
 */
export function listenInPlace(profile: Profile, cleanups: Cleanup[]): { ports: InPlacePorts; names: string[]; take(): number[] } {
  const wanted: ('egress' | 'inference')[] = [];
  if (profile.network.mode === 'proxy') wanted.push('egress');
  if (profile.inference.routes.length > 0) wanted.push('inference');
  const open: { name: string; fd: number; port: number }[] = [];
  let taken = false;
  cleanups.push(() => {
    if (!taken) for (const l of open) addon().closeFd(l.fd);
  });
  try {
    for (const name of wanted) open.push({ name, ...addon().listenLoopback() });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { errno?: number };
    throw new ClawjailError('ERR_CLAWJAIL_SERVICE', `cannot listen on 127.0.0.1 for the sandbox's services: ${err.message}`, {
      hint: 'the container needs a loopback interface (it has one unless started with --network none and lo down)',
      step: 'services.listen',
      ...(typeof err.errno === 'number' ? { errno: err.errno } : {}),
      cause: e,
    });
  }
  const ports: InPlacePorts = {};
  for (const l of open) ports[l.name as 'egress' | 'inference'] = l.port;
  return {
    ports,
    names: open.map((l) => l.name),
    take: () => {
      taken = true;
      return open.map((l) => l.fd);
    },
  };
}
