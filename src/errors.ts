/**
 * One error class for the whole program, with stable codes. Codes are part of the CLI contract:
 * scripts and tests match on them, never on messages.
 */
export const ErrorCodes = {
  USAGE: 'E_USAGE',
  CONFIG_INVALID: 'E_CONFIG_INVALID',
  CONFIG_READ: 'E_CONFIG_READ',
  ENDPOINT_URL: 'E_ENDPOINT_URL',
  TRANSPORT: 'E_TRANSPORT',
  KEY_FILE: 'E_KEY_FILE',
  KEY_PERMISSIONS: 'E_KEY_PERMISSIONS',
  CRYPTO: 'E_CRYPTO',
  POLICY_INVALID: 'E_POLICY_INVALID',
  NOT_YET: 'E_NOT_YET',
  INTERNAL: 'E_INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Process exit codes, documented in the README. */
export const ExitCodes = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  CONFIG_INVALID: 3,
  KEY_PROBLEM: 4,
  POLICY_INVALID: 5,
  NOT_YET: 6,
} as const;

export interface Problem {
  /** Where: a config path like `links.autopilot.url`, a file:line, or a flag. */
  path: string;
  message: string;
  hint?: string;
}

export class MavmqError extends Error {
  readonly code: ErrorCode;
  readonly problems: readonly Problem[];
  constructor(code: ErrorCode, message: string, options: { cause?: unknown; problems?: Problem[] } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MavmqError';
    this.code = code;
    this.problems = options.problems ?? [];
  }
}

export function exitCodeFor(err: unknown): number {
  if (!(err instanceof MavmqError)) return ExitCodes.FAILURE;
  switch (err.code) {
    case ErrorCodes.USAGE:
    case ErrorCodes.ENDPOINT_URL:
      return ExitCodes.USAGE;
    case ErrorCodes.CONFIG_INVALID:
    case ErrorCodes.CONFIG_READ:
      return ExitCodes.CONFIG_INVALID;
    case ErrorCodes.KEY_FILE:
    case ErrorCodes.KEY_PERMISSIONS:
      return ExitCodes.KEY_PROBLEM;
    case ErrorCodes.POLICY_INVALID:
      return ExitCodes.POLICY_INVALID;
    case ErrorCodes.NOT_YET:
      return ExitCodes.NOT_YET;
    default:
      return ExitCodes.FAILURE;
  }
}

export function formatProblems(problems: readonly Problem[]): string {
  return problems.map((p) => `  - ${p.path}: ${p.message}${p.hint ? `\n      hint: ${p.hint}` : ''}`).join('\n');
}
