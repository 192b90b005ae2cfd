/**
 * Errors carry a stable `code` (an errno name such as `EPERM`, or `ERR_CLAWJAIL_*`) that callers
 * branch on; the message is for people and ends with what they can do about it.
 */
export type ClawjailErrorCode =
  | 'ERR_CLAWJAIL_USAGE'
  | 'ERR_CLAWJAIL_PROFILE'
  | 'ERR_CLAWJAIL_LAYER_REQUIRED'
  | 'ERR_CLAWJAIL_NATIVE'
  | 'ERR_CLAWJAIL_SETUP'
  | 'ERR_CLAWJAIL_PLAN'
  | 'ERR_CLAWJAIL_CREDENTIAL_MISSING'
  | 'ERR_CLAWJAIL_NOT_FOUND'
  | 'ERR_CLAWJAIL_NOT_EXECUTABLE'
  | 'ERR_CLAWJAIL_SERVICE'
  | 'ERR_CLAWJAIL_CONTROL_DIR'
  | 'ERR_CLAWJAIL_OPENCLAW'
  | 'ERR_CLAWJAIL_IDENTITY'
  | (string & {});

export interface ClawjailErrorDetails {
  errno?: number;
  syscall?: string;
  step?: string;
  path?: string;
  /** What the user can do; appended to the message. */
  hint?: string;
  /** Process exit status the CLI should use (125 unless the error maps to 126/127). */
  exitCode?: number;
  cause?: unknown;
}

export class ClawjailError extends Error {
  readonly code: ClawjailErrorCode;
  readonly errno?: number;
  readonly syscall?: string;
  readonly step?: string;
  readonly path?: string;
  readonly hint?: string;
  readonly exitCode: number;

  constructor(code: ClawjailErrorCode, message: string, details: ClawjailErrorDetails = {}) {
    super(details.hint ? `${message}\n  hint: ${details.hint}` : message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'ClawjailError';
    this.code = code;
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.syscall !== undefined) this.syscall = details.syscall;
    if (details.step !== undefined) this.step = details.step;
    if (details.path !== undefined) this.path = details.path;
    if (details.hint !== undefined) this.hint = details.hint;
    this.exitCode = details.exitCode ?? 125;
  }
}

export function isClawjailError(e: unknown): e is ClawjailError {
  return e instanceof ClawjailError;
}
