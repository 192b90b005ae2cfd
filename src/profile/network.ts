import { z } from 'zod';

// Owned by the egress work (issue 4). Kept minimal here so the launcher core can read `mode`.
export const NetworkSchema = z
  .object({
    mode: z
      .enum(['proxy', 'none'])
      .default('proxy')
      .describe('proxy: the only way out is the allowlist proxy inside the sandbox; none: no egress at all (the proxy is not started).'),
  })
  .strict()
  .describe('Egress policy.');

export type NetworkConfig = z.infer<typeof NetworkSchema>;
