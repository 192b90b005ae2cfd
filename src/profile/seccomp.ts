import { z } from 'zod';

// Owned by the seccomp work (issue 3). Minimal here so the launcher core can read `mode`.
export const SeccompSchema = z
  .object({
    mode: z.enum(['enforce', 'log', 'off']).default('enforce').describe('enforce: denied calls fail; log: denied calls are allowed and logged by the kernel (SECCOMP_RET_LOG); off: no filter.'),
  })
  .strict()
  .describe('seccomp-BPF system call filter, compiled by clawjail.');

export type SeccompConfig = z.infer<typeof SeccompSchema>;
