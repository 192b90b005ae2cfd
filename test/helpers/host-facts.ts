import type { HostFacts } from '../../src/host/probe.js';

/** Host facts for pure-planner tests: an unprivileged caller on a kernel with every layer, no cgroup v2. */
export const hostFacts = (over: Partial<HostFacts> = {}): HostFacts => ({
  kernelRelease: '6.18.0',
  arch: 'x86_64',
  uid: 1000,
  gid: 1000,
  isRoot: false,
  userns: { available: true },
  landlock: { abi: 7 },
  seccomp: { available: true, alreadyFiltered: false },
  cgroup: { controllers: [], writable: false, reason: 'cgroup v2 is not mounted' },
  container: { inContainer: false, evidence: [] },
  rlimits: { nofile: { soft: 1024, hard: 4096 }, nproc: { soft: 'unlimited', hard: 'unlimited' } },
  ...over,
});
