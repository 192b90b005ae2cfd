import net from 'node:net';
import type { Readable } from 'node:stream';

/** Resolves with the first line of `stream` that satisfies `match` (rejects if the stream ends first). */
export function waitForLine(stream: Readable, match: (line: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (match(line)) {
          stream.off('data', onData);
          stream.off('end', onEnd);
          resolve(line);
          return;
        }
      }
    };
    const onEnd = () => reject(new Error(`stream ended before a matching line; rest: ${JSON.stringify(buf)}`));
    stream.on('data', onData);
    stream.once('end', onEnd);
  });
}

/** A TCP port free on 127.0.0.1 at the time of the call. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Resolves once `cond` holds (it may be async), checking it every `everyMs`; rejects after `ms`.
 * For state the test cannot subscribe to (a counter in another module, a process list): it
 * synchronises on the state itself, never on a guess of how long something takes.
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms = 5_000, everyMs = 10): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Like waitFor, for a value: resolves with the first defined result of `f` (errors count as "not yet"). */
export async function waitForValue<T>(f: () => Promise<T | undefined>, ms = 5_000, everyMs = 50): Promise<T> {
  let value: T | undefined;
  await waitFor(async () => (value = await f().catch(() => undefined)) !== undefined, ms, everyMs);
  return value as T;
}
