import { parse, usageError } from './args.js';

const HELP = `Usage:
  clawjail approvals [--name N] [--json]      list destinations waiting for a decision
  clawjail approve ID [--always] [--name N]   let it through (--always also adds a rule to the profile)
  clawjail deny ID [--name N]                 refuse it

Without --name, approve and deny look for the ID in every running sandbox of this user.
`;

export async function approvalsCommand(cmd: 'approvals' | 'approve' | 'deny', argv: string[]): Promise<number> {
  const { values, positionals } = parse(cmd, argv, {
    name: { type: 'string' },
    json: { type: 'boolean' },
    always: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (cmd === 'approvals' && positionals.length) throw usageError(`approvals takes no arguments (got ${positionals.join(' ')})`, cmd);
  if (cmd !== 'approvals' && positionals.length !== 1) throw usageError(`${cmd} takes exactly one approval ID`, cmd);
  if (cmd !== 'approve' && values.always) throw usageError('--always goes with approve', cmd);
  const { runApprovalsCommand } = await import('../services/control/index.js');
  return runApprovalsCommand(
    {
      command: cmd,
      ...(positionals[0] ? { id: positionals[0] } : {}),
      ...(values.always ? { always: true } : {}),
      ...(values.name ? { name: values.name } : {}),
      ...(values.json ? { json: true } : {}),
    },
    process.stdout,
  );
}
