import { cacheGet, cachePut } from '../cache.js';
import { ClawjailError } from '../errors.js';
import type { HostFacts } from '../host/probe.js';
import { inPlaceSeccomp } from '../plan/in-place.js';
import type { ModeDecision } from '../plan/mode.js';
import type { Profile } from '../profile/schema.js';

type CompiledFilter = { program: Buffer; instructions: number; detail?: string };
const seccompCache = new Map<string, CompiledFilter>();
const seccompKey = (config: Profile['seccomp'], arch: string) => `${arch}\0${JSON.stringify(config)}`;

/** The seccomp section a mode compiles: in-place adds its own denials to the profile's. */
export function seccompFor(profile: Profile, mode: ModeDecision['mode']): Profile['seccomp'] {
  return mode === 'in-place' ? inPlaceSeccomp(profile.seccomp) : profile.seccomp;
}

/**
 * The filter depends only on the profile's seccomp section and the arch, so it is compiled once
 * (memory, then the on-disk cache) and the compiler is loaded only on a miss.
 */
export async function precompileSeccomp(config: Profile['seccomp'], host: HostFacts): Promise<void> {
  if (config.mode === 'off') return;
  const key = seccompKey(config, host.arch);
  if (seccompCache.has(key)) return;
  const disk = cacheGet<{ program: string; instructions: number; detail?: string }>('seccomp', key);
  if (disk) {
    seccompCache.set(key, { ...disk, program: Buffer.from(disk.program, 'base64') });
    return;
  }
  const { compileSeccomp } = await import('../plan/seccomp/index.js');
  const out = compileSeccomp(config, host.arch as 'x86_64');
  const c = { program: out.program, instructions: out.instructions, detail: `${out.denied.length} calls denied outright, ${out.argumentChecked.length} argument-checked` };
  if (seccompCache.size > 32) seccompCache.clear();
  seccompCache.set(key, c);
  cachePut('seccomp', key, { ...c, program: c.program.toString('base64') });
}

/** The plan builders' compileSeccomp: the filter precompileSeccomp made (planning stays synchronous). */
export function compileSeccompCached(config: Profile['seccomp'], arch: string): CompiledFilter {
  const c = seccompCache.get(seccompKey(config, arch));
  if (!c) throw new ClawjailError('ERR_CLAWJAIL_PLAN', 'seccomp filter was not compiled before planning', { hint: 'this is a bug in clawjail' });
  return c;
}
