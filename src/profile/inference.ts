import { z } from 'zod';

// Owned by the inference-routing work (issue 5). Minimal here so the launcher core can read routes.
export const InferenceSchema = z
  .object({
    routes: z.array(z.object({ name: z.string() }).passthrough()).default([]).describe('Model routes served by the inference router.'),
  })
  .strict()
  .describe('Model inference routing; credentials stay in the supervisor.');

export type InferenceConfig = z.infer<typeof InferenceSchema>;
