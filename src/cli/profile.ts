import { z } from 'zod';
import { parse, usageError } from './args.js';

const HELP = `Usage:
  clawjail profile show [--profile P]   the merged, validated profile as JSON
  clawjail profile schema               every field, with its meaning, as JSON Schema
`;

export async function profileCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse('profile', argv, { profile: { type: 'string', short: 'p' }, schema: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const sub = values.schema ? 'schema' : positionals[0];
  if (sub === 'schema') {
    const { ProfileSchema } = await import('../profile/schema.js');
    process.stdout.write(JSON.stringify(z.toJSONSchema(ProfileSchema, { io: 'input', unrepresentable: 'any' }), null, 2) + '\n');
    return 0;
  }
  if (sub === 'show') {
    const { loadProfile } = await import('../profile/load.js');
    const loaded = loadProfile(values.profile ? { profile: values.profile } : {});
    process.stdout.write(JSON.stringify({ sources: loaded.sources, profile: loaded.profile }, null, 2) + '\n');
    return 0;
  }
  throw usageError(sub ? `unknown profile subcommand '${sub}'` : 'profile needs a subcommand: show or schema', 'profile');
}
