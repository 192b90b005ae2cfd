import { z } from 'zod';
import { InferenceSchema } from './inference.js';
import { NetworkSchema } from './network.js';
import { SeccompSchema } from './seccomp.js';

/**
 * The profile: everything a sandbox is allowed to see and do. Files are YAML or JSON, layered on
 * a base profile (`extends`), then CLI flags on top; the merged result is parsed once by this
 * schema, so every error names the field path.
 */

const insidePath = (what: string) =>
  z
    .string()
    .min(1)
    .refine((p) => p.startsWith('/'), { message: `${what} must be an absolute path inside the sandbox (start with /)` })
    .refine((p) => !p.split('/').includes('..'), { message: `${what} must not contain '..'` });

const hostPath = (what: string) =>
  z
    .string()
    .min(1)
    .refine((p) => p.startsWith('/') || p.startsWith('~'), { message: `${what} must be an absolute host path (or start with ~)` })
    .refine((p) => !p.split('/').includes('..'), { message: `${what} must not contain '..'` });

export const BindSchema = z
  .object({
    src: hostPath('bind source').describe('Host path to bind into the sandbox. Symlinks are resolved and the resolved path is reported.'),
    dest: insidePath('bind destination').optional().describe('Path inside the sandbox (default: the same as src).'),
    optional: z.boolean().default(false).describe('Skip the bind (with a warning) when the source does not exist, instead of refusing to start.'),
    landlock: z
      .boolean()
      .default(true)
      .describe('Grant landlock access beneath this bind (read+execute for ro, read/write for rw). false keeps the mount but lets landlock deny every access beneath it.'),
  })
  .strict();

const sizeString = z
  .union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*[kmgKMG]?$/, 'expected a size like 512m, 2g or a byte count')])
  .describe('A size in bytes, or with a k/m/g suffix.');

export const FilesystemSchema = z
  .object({
    sandboxDir: hostPath('sandboxDir')
      .optional()
      .describe('Host directory mounted read-write at /sandbox (the workload\'s HOME and cwd). When absent, a fresh temporary directory is used and removed at exit.'),
    chownSandboxDir: z
      .boolean()
      .default(false)
      .describe('Root callers: give an existing sandboxDir owned by another uid to the sandbox uid (identity.uid), recursively, before the run (like podman\'s :U). Off: such a directory is refused.'),
    keepSandboxDir: z.boolean().default(false).describe('Keep the temporary /sandbox directory at exit (only when sandboxDir is not given); its path is logged.'),
    system: z
      .array(insidePath('system path'))
      .default([])
      .describe('Host system paths made visible read-only at the same place (symlinks such as /bin -> usr/bin reproduced). Missing paths are skipped.'),
    tmpSize: sizeString.default('256m').describe('Size limit of the /tmp tmpfs.'),
    ro: z.array(BindSchema).default([]).describe('Extra read-only binds.'),
    rw: z.array(BindSchema).default([]).describe('Extra read-write binds. Never / itself.'),
  })
  .strict();

export const IdentitySchema = z
  .object({
    uid: z
      .number()
      .int()
      .min(1, 'identity.uid must not be 0: the sandbox never runs as host root')
      .max(0xfffffffe)
      .default(61000)
      .describe('Host uid the sandbox runs as when clawjail itself runs as root (an unprivileged caller always keeps its own uid). Give each tenant its own.'),
    gid: z
      .number()
      .int()
      .min(1, 'identity.gid must not be 0')
      .max(0xfffffffe)
      .default(61000)
      .describe('Host gid, as identity.uid.'),
  })
  .strict();

export const ProcessSchema = z
  .object({
    hostname: z
      .string()
      .regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/, 'hostname must be a single DNS label')
      .default('clawjail')
      .describe('Hostname inside the sandbox (its own UTS namespace).'),
    tty: z.boolean().default(false).describe('Keep the controlling terminal (interactive use). Off: the workload starts in a new session and cannot inject input into the terminal.'),
    cwd: insidePath('cwd').default('/sandbox').describe('Working directory of the workload.'),
  })
  .strict();

export const EnvSchema = z
  .object({
    set: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment names are letters, digits and _'), z.string())
      .default({})
      .describe('Variables set inside the sandbox.'),
    pass: z
      .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment names are letters, digits and _'))
      .default([])
      .describe('Host variables copied in by name (absent ones are skipped). Nothing else from the host environment enters, beyond LANG, LC_*, TERM, TZ and COLORTERM.'),
  })
  .strict();

export const LayerModeSchema = z.enum(['required', 'best-effort', 'off']);

export const LandlockSchema = z
  .object({
    mode: LayerModeSchema.default('best-effort').describe(
      'required: refuse to start unless every requested landlock right is enforced; best-effort: use what the kernel offers and report what is missing; off: no landlock.',
    ),
    maxAbi: z
      .number()
      .int()
      .min(0)
      .max(64)
      .optional()
      .describe('Use at most this landlock ABI even if the kernel offers more (reproducible behaviour across hosts; 0 disables landlock as if the kernel lacked it).'),
    readWrite: z.array(insidePath('landlock path')).default([]).describe('Extra paths inside the sandbox the workload may write beneath (beyond /sandbox, /tmp, /dev/shm and rw binds).'),
    readOnly: z.array(insidePath('landlock path')).default([]).describe('Extra paths the workload may read and execute beneath.'),
    connectPorts: z.array(z.number().int().min(1).max(65535)).default([]).describe('TCP ports the workload may connect to besides the sandbox services (ABI 4+).'),
    bindPorts: z.array(z.number().int().min(1).max(65535)).default([]).describe('TCP ports the workload may listen on (ABI 4+); none by default.'),
    logDenials: z.boolean().default(false).describe('ABI 7+: ask the kernel to audit-log denials of the workload after exec (needs kernel audit).'),
  })
  .strict();

const limitValue = z.union([z.number().int().min(0), z.literal('unlimited')]);
const RlimitSchema = z.union([limitValue, z.object({ soft: limitValue, hard: limitValue }).strict()]);

export const LimitsSchema = z
  .object({
    rlimits: z
      .object({
        core: RlimitSchema.optional().describe('Core file size; 0 keeps memory images of a crashed workload off disk.'),
        nofile: RlimitSchema.optional().describe('Open files per process (clamped to the host hard limit, and reported).'),
        nproc: RlimitSchema.optional().describe('Processes of the sandbox user; on kernels >= 5.14 counted inside the sandbox\'s own user namespace, so it caps a fork bomb.'),
        fsize: RlimitSchema.optional().describe('Largest file the workload may write.'),
        as: RlimitSchema.optional().describe('Address space. Off by default: Node and V8 reserve large virtual ranges, and a limit here breaks them long before memory is really used; use limits.cgroup.memoryMax.'),
        cpu: RlimitSchema.optional().describe('CPU seconds per process.'),
        stack: RlimitSchema.optional().describe('Stack size.'),
        memlock: RlimitSchema.optional().describe('Locked memory.'),
        sigpending: RlimitSchema.optional().describe('Queued signals.'),
        msgqueue: RlimitSchema.optional().describe('POSIX message queue bytes.'),
      })
      .strict()
      .prefault({})
      .describe('setrlimit limits applied to the workload.'),
    cgroup: z
      .object({
        mode: LayerModeSchema.default('best-effort').describe('cgroup v2 limits need a writable, delegated cgroup v2 subtree with the controllers enabled.'),
        memoryMax: sizeString.optional().describe('memory.max: beyond it the kernel OOM-kills inside the sandbox.'),
        pidsMax: z.number().int().positive().optional().describe('pids.max.'),
        cpuMax: z.number().positive().max(1024).optional().describe('CPUs worth of time (cpu.max), e.g. 1.5.'),
      })
      .strict()
      .prefault({})
      .describe('Per-sandbox cgroup v2.'),
  })
  .strict();

export const ModeSchema = z
  .enum(['auto', 'namespaces', 'in-place'])
  .describe(
    'How the sandbox is built. namespaces: its own user/mount/pid/net/ipc/uts namespaces (the full sandbox). in-place: no new namespaces, for containers that forbid them; the workload is confined by landlock, seccomp, rlimits, dropped capabilities and no_new_privs only (see README "Container entrypoint"). auto: namespaces when the host allows them, else in-place with a warning.',
  );

export const InPlaceSchema = z
  .object({
    network: z
      .enum(['required', 'best-effort'])
      .default('required')
      .describe(
        'In-place mode enforces egress with landlock TCP rules (ABI 4+). required: refuse to start without them when egress rules or inference routes are configured; best-effort: start anyway and report "egress not enforced".',
      ),
    rootWorkload: z
      .boolean()
      .default(false)
      .describe(
        'In-place mode, clawjail running as root where identity.uid is not mapped (a user-namespaced container): run the workload as root instead of refusing. Capabilities are still dropped and no_new_privs, landlock and seccomp still apply, but files owned by root stay writable beneath the writable paths.',
      ),
  })
  .strict();

export const PublishSchema = z
  .object({
    hostPort: z.number().int().min(0).max(65535).describe('Port on the host loopback (0: pick a free one; the handle reports it).'),
    port: z.number().int().min(1).max(65535).describe('Port inside the sandbox (127.0.0.1).'),
    hostAddress: z.enum(['127.0.0.1', '::1']).default('127.0.0.1').describe('Host address to listen on; loopback only.'),
  })
  .strict();

export const ProfileSchema = z
  .object({
    extends: z.string().optional().describe('Base profile: a built-in name (default, strict, openclaw), a file path, or "none". Default: "default".'),
    mode: ModeSchema.default('auto'),
    inPlace: InPlaceSchema.prefault({}).describe('Settings that apply only in in-place mode.'),
    name: z
      .string()
      .regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/, 'use letters, digits, ".", "_" and "-", at most 63, starting with a letter or digit')
      .optional()
      .describe('Sandbox name (control socket, logs, audit). Default: clawjail-<pid>.'),
    filesystem: FilesystemSchema.prefault({}),
    identity: IdentitySchema.prefault({}),
    process: ProcessSchema.prefault({}),
    env: EnvSchema.prefault({}),
    landlock: LandlockSchema.prefault({}),
    limits: LimitsSchema.prefault({}),
    network: NetworkSchema.prefault({}),
    inference: InferenceSchema.prefault({}),
    seccomp: SeccompSchema.prefault({}),
    publish: z.array(PublishSchema).default([]).describe('Host loopback ports forwarded into the sandbox.'),
  })
  .strict();

export type Profile = z.infer<typeof ProfileSchema>;
export type Bind = z.infer<typeof BindSchema>;
export type LayerMode = z.infer<typeof LayerModeSchema>;
export type LaunchMode = z.infer<typeof ModeSchema>;
