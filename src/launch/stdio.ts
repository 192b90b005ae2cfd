import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import { addon } from '../native.js';

/** One stream of the workload: the supervisor's own (inherit), a pipe to the Sandbox handle, /dev/null, or a file descriptor. */
export type StdioSpec = 'inherit' | 'pipe' | 'ignore' | number;

/**
 * The workload's stdio as fds for the helper, and the supervisor's ends for 'pipe'. The helper's
 * own stdio is the workload's: it passes them on untouched.
 */
export function openStdio(spec: StdioSpec | [StdioSpec, StdioSpec, StdioSpec] | undefined) {
  const specs: StdioSpec[] = Array.isArray(spec) ? spec : [spec ?? 'inherit', spec ?? 'inherit', spec ?? 'inherit'];
  const childFds: number[] = [];
  const childOnly: number[] = [];
  const parentFds: number[] = [];
  const streams: (net.Socket | null)[] = [null, null, null];
  specs.forEach((s, i) => {
    if (s === 'inherit') childFds.push(i);
    else if (typeof s === 'number') childFds.push(s);
    else if (s === 'ignore') {
      const fd = openSync('/dev/null', i === 0 ? 'r' : 'w');
      childFds.push(fd);
      childOnly.push(fd);
    } else {
      const [r, w] = addon().pipe();
      const [child, parent] = i === 0 ? [r, w] : [w, r];
      childFds.push(child);
      childOnly.push(child);
      parentFds.push(parent);
      streams[i] = new net.Socket({ fd: parent, readable: i !== 0, writable: i === 0 });
    }
  });
  return {
    childFds,
    parentStreams: { stdin: streams[0], stdout: streams[1], stderr: streams[2] } as { stdin: net.Socket | null; stdout: net.Socket | null; stderr: net.Socket | null },
    closeChildEnds: () => childOnly.forEach((fd) => (fd > 2 ? closeSync(fd) : undefined)),
    // Output pipes end by themselves when the workload exits; stdin is ours to close.
    closeParentEnds: (): void => void streams[0]?.destroy(),
  };
}

export type Stdio = ReturnType<typeof openStdio>;
