import { z } from 'zod';

import { isKnownSyscall, suggestSyscalls } from '../policy/seccomp/syscalls.js';
import { errnoNumber, resolveArgValue, suggestErrnos, type ArgWidth } from '../policy/seccomp/values.js';

/*
 * The seccomp section of a profile. Semantics (stated once, here; the compiler in
 * src/plan/seccomp/ implements exactly this):
 *
 * - Default allow with a deny list, as Docker's and bubblewrap's filters are used in practice:
 *   a system call is allowed unless a `deny` entry matches it.
 * - An `allow` entry is an exception: when an allow entry matches, the call is allowed even if a
 *   deny entry matches too. This is how a profile layered on the default one (lists are
 *   appended) re-enables something, and how "deny X except with these arguments" is written:
 *   deny `personality`, allow `personality` with arg0 == 0.
 * - An entry matches when its syscall name matches and all of its `args` conditions hold (no
 *   conditions: always). When several deny entries match, the first one listed gives the errno.
 * - Always, whatever the entries say: a foreign architecture (including i386 on x86_64) and x32
 *   system calls (numbers with bit 0x40000000) kill the process; numbers above the highest one
 *   in the generated table (system calls newer than the headers it was built from, which no one
 *   has reviewed; open_tree_attr, new mount API in Linux 6.15, is one) fail with ENOSYS so libc
 *   falls back. Regenerate the tables from newer headers to review and admit them.
 * - mode `log` turns every failure above into SECCOMP_RET_LOG (allowed, logged by the kernel);
 *   mode `off` installs no filter.
 */

const WIDTH_HELP =
  'Bits compared: 32 for arguments declared int/unsigned int in the kernel (socket family, ioctl request, personality): ' +
  'the kernel ignores their upper half, so a 64-bit comparison could be evaded by setting high bits. ' +
  '64 (the default) for long, size and pointer arguments (clone flags, mmap prot).';

// Plain z.number(): exactness is checked by resolveArgValue, whose message says to use a string.
const ArgValueSchema = z.union([z.number(), z.string().min(1)]);

export const SeccompConditionSchema = z
  .object({
    index: z.number().int().min(0).max(5).describe('Argument position, 0..5, in the order of the raw system call (man 2 syscall).'),
    op: z
      .enum(['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'masked-eq'])
      .describe('Comparison, unsigned: arg OP value. masked-eq: (arg & mask) == value, e.g. mask CLONE_NEWUSER value 0 means "flag not set".'),
    value: ArgValueSchema.describe(
      'Number, or a string: decimal, 0x hex, negative (two\'s complement at `width`), or constant names joined by | such as "CLONE_NEWUSER | CLONE_NEWNS" (AF_*, NETLINK_*, CLONE_*, TIOC*, PER_*).',
    ),
    mask: ArgValueSchema.optional().describe('Only with op masked-eq: the bits of the argument that are compared; same syntax as value.'),
    width: z.union([z.literal(32), z.literal(64)]).default(64).describe(WIDTH_HELP),
  })
  .strict()
  .superRefine((c, ctx) => {
    let value: bigint | undefined;
    let mask: bigint | undefined;
    try {
      value = resolveArgValue(c.value, c.width as ArgWidth);
    } catch (e) {
      ctx.addIssue({ code: 'custom', path: ['value'], message: (e as Error).message });
    }
    if (c.op === 'masked-eq') {
      if (c.mask === undefined) {
        ctx.addIssue({ code: 'custom', path: ['mask'], message: 'op masked-eq needs a mask: the bits to compare, e.g. mask: CLONE_NEWUSER, value: 0 for "CLONE_NEWUSER not set"' });
        return;
      }
      try {
        mask = resolveArgValue(c.mask, c.width as ArgWidth);
      } catch (e) {
        ctx.addIssue({ code: 'custom', path: ['mask'], message: (e as Error).message });
        return;
      }
      if (mask === 0n) ctx.addIssue({ code: 'custom', path: ['mask'], message: 'a mask of 0 compares nothing, so the condition always holds; drop the condition instead' });
      if (value !== undefined && (value & ~mask) !== 0n) {
        ctx.addIssue({ code: 'custom', path: ['value'], message: `value 0x${value.toString(16)} has bits outside mask 0x${mask.toString(16)}, so it can never match; clear those bits from the value` });
      }
    } else if (c.mask !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['mask'], message: `mask only applies to op masked-eq (this condition uses ${c.op}); remove it or change op to masked-eq` });
    }
  })
  .describe('One argument condition; all conditions of an entry must hold for it to match.');

const SyscallNameSchema = z
  .string()
  .min(1)
  .superRefine((name, ctx) => {
    if (isKnownSyscall(name)) return;
    const close = suggestSyscalls(name);
    ctx.addIssue({
      code: 'custom',
      message:
        `unknown system call "${name}" (not in the x86_64 or aarch64 tables)` +
        (close.length ? `; did you mean ${close.join(', ')}?` : '') +
        ' Use the name from man 2 syscalls, without a sys_ prefix.',
    });
  })
  .describe('System call name as in man 2 syscalls (e.g. ptrace, clone, socket). Names that exist on only one architecture (iopl) are skipped on the other.');

const ArgsSchema = z
  .array(SeccompConditionSchema)
  .max(12)
  .default([])
  .describe('Argument conditions, all of which must hold; empty: the entry matches every call.');

const ReasonSchema = z.string().min(1).describe('Why this entry exists; shown by --dry-run and kept next to the rule so a reviewer can judge it.');

export const SeccompDenySchema = z
  .object({
    syscall: SyscallNameSchema,
    args: ArgsSchema,
    errno: z
      .string()
      .default('EPERM')
      .superRefine((name, ctx) => {
        if (errnoNumber(name) !== undefined) return;
        const close = suggestErrnos(name);
        ctx.addIssue({ code: 'custom', message: `unknown errno "${name}"${close.length ? `; did you mean ${close.join(', ')}?` : ''} Use a name such as EPERM or ENOSYS.` });
      })
      .describe('errno the denied call fails with: EPERM (default), or ENOSYS where libc must fall back to an older call (clone3 → clone, io_uring → plain I/O).'),
    reason: ReasonSchema,
  })
  .strict()
  .describe('A call to fail. Matches when the name matches and every args condition holds.');

export const SeccompAllowSchema = z
  .object({
    syscall: SyscallNameSchema,
    args: ArgsSchema,
    reason: ReasonSchema,
  })
  .strict()
  .describe('An exception to the deny entries: a matching call is allowed even if a deny entry matches too.');

export const SeccompSchema = z
  .object({
    mode: z
      .enum(['enforce', 'required', 'log', 'off'])
      .default('enforce')
      .describe('enforce: denied calls fail, and a host without seccomp refuses the launch; required: the same, spelled like landlock.mode (also forbids a fallback that would weaken it); log: denied calls are allowed and logged by the kernel (SECCOMP_RET_LOG), for trying out a profile; off: no filter.'),
    deny: z.array(SeccompDenySchema).default([]).describe('Calls to fail; everything else is allowed. The default profile lists its entries with reasons.'),
    allow: z.array(SeccompAllowSchema).default([]).describe('Exceptions that win over deny entries, e.g. allow ptrace for a debugging profile.'),
  })
  .strict()
  .describe('seccomp-BPF system call filter, compiled by clawjail (default allow with a deny list; allow entries are exceptions).');

export type SeccompConfig = z.infer<typeof SeccompSchema>;
export type SeccompConfigInput = z.input<typeof SeccompSchema>;
export type SeccompDeny = z.infer<typeof SeccompDenySchema>;
export type SeccompAllow = z.infer<typeof SeccompAllowSchema>;
export type SeccompCondition = z.infer<typeof SeccompConditionSchema>;
