import { readFile } from 'node:fs/promises';
import { issuesToProblems, parseYamlSource } from '../config/loader.js';
import { ErrorCodes, MavmqError } from '../errors.js';
import { DEFAULT_POLICY } from './default-policy.js';
import { asList, policySchema, type Policy } from './schema.js';

/**
 * Policy files: YAML -> one zod pass that reports every problem with its path, YAML line and a
 * hint (the config loader's machinery), as MavmqError(E_POLICY_INVALID) -> exit code 5.
 */

/** The built-in policy (config/policy.yaml without the comments). A fresh copy on every call. */
export function defaultPolicy(): Policy {
  return policySchema.parse(DEFAULT_POLICY);
}

/** Load and validate a policy file; without a file, the built-in default policy. */
export async function loadPolicy(file?: string): Promise<Policy> {
  if (file === undefined) return defaultPolicy();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new MavmqError(ErrorCodes.POLICY_INVALID, `cannot read policy ${file}: ${(err as Error).message}`, {
      cause: err, problems: [{ path: file, message: (err as Error).message, hint: 'check the path and that the mavmq user can read it' }],
    });
  }
  return parsePolicy(text, file);
}

/** Validate policy text (`file` names it in problems). */
export function parsePolicy(text: string, file: string): Policy {
  let src: ReturnType<typeof parseYamlSource>;
  try {
    src = parseYamlSource(text, file);
  } catch (err) {
    if (err instanceof MavmqError) {
      throw new MavmqError(ErrorCodes.POLICY_INVALID, err.message.replace(/^config /, 'policy '), {
        cause: err, problems: err.problems.map((p) => (p.hint === 'see config/air.example.yaml' ? { ...p, hint: 'see config/policy.yaml' } : p)),
      });
    }
    throw err;
  }
  const r = policySchema.safeParse(src.raw);
  if (r.success) return r.data;
  // In file order: structural problems and name problems come from two passes.
  const lineOf = (path: string): number => Number(/:(\d+)\)?$/.exec(path)?.[1] ?? Infinity);
  const problems = issuesToProblems(policySchema, r.error.issues, src).map((p, i) => ({ p, i }))
    .sort((a, b) => lineOf(a.p.path) - lineOf(b.p.path) || a.i - b.i).map(({ p }) => p);
  throw new MavmqError(ErrorCodes.POLICY_INVALID, `policy ${file} has ${problems.length} problem${problems.length === 1 ? '' : 's'}`, { problems });
}

export interface PolicyCheckResult {
  policy: Policy;
  /** Human summary lines for `mavmq policy check`. */
  summary: string[];
}

/** `mavmq policy check FILE`: validate, list every problem (throws), or summarize what the policy does. */
export async function checkPolicyFile(file: string): Promise<PolicyCheckResult> {
  const policy = await loadPolicy(file);
  const rules = policy.rules;
  const summary = [
    `${file}: ok${policy.dryRun ? ' (DRY RUN: verdicts are only logged, every frame passes)' : ''}`,
    `  messages: ${policy.messages.allow.length} allowed, ${policy.messages.deny.length} always refused, the rest refused`,
    `  commands: default ${policy.commands.default}, ${policy.commands.rateLimit.perSecond}/s burst ${policy.commands.rateLimit.burst} per command`,
    `  stream rates: ${policy.streamRates.action} at ${policy.streamRates.maxHz} Hz`,
    `  rules (${rules.length}, first match wins):`,
    ...rules.map((r) => {
      const what = [
        r.message !== undefined ? `message ${asList(r.message).join('|')}` : '',
        r.command !== undefined ? `command ${asList(r.command).join('|')}` : '',
        r.params !== undefined ? Object.entries(r.params).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('|') : v}`).join(' ') : '',
        r.param !== undefined ? `param ${r.param.join('|')}` : '',
        r.when?.armed !== undefined ? (r.when.armed ? 'armed' : 'disarmed') : '',
        r.when?.inAir !== undefined ? (r.when.inAir ? 'in air' : 'on ground') : '',
        r.when?.mode !== undefined ? `mode ${r.when.mode.join('|')}` : '',
      ].filter((s) => s !== '').join(', ');
      return `    ${r.action.padEnd(7)} ${r.name}: ${what}`;
    }),
  ];
  return { policy, summary };
}
