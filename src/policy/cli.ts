import type { Command } from '../cli/commands.js';
import { ErrorCodes, ExitCodes, MavmqError } from '../errors.js';
import type { PolicyCheckResult } from './load.js';

/**
 * `mavmq policy check FILE`: every problem with its path, YAML line and a hint (exit 5, via
 * MavmqError(E_POLICY_INVALID) and runCli), or "ok" and a summary of what the policy does (exit 0).
 * This module stays light (the CLI table imports it eagerly): the validator, which pulls in the
 * MAVLink dialect, loads when the command runs.
 */
export async function checkPolicyFile(file: string): Promise<PolicyCheckResult> {
  const { checkPolicyFile: check } = await import('./load.js');
  return check(file);
}

export const policyCheckCommand: Command = {
  name: 'policy check',
  summary: 'validate a command-safety policy file and list every problem with its path, line and a hint',
  usage: 'FILE',
  options: {},
  examples: ['mavmq policy check config/policy.yaml', 'mavmq policy check /etc/mavmq/policy.yaml'],
  run: async (args, io) => {
    const file = args.positionals[0];
    if (file === undefined) throw new MavmqError(ErrorCodes.USAGE, 'give the policy FILE to check');
    const { summary } = await checkPolicyFile(file);
    io.out(summary.join('\n'));
    return ExitCodes.OK;
  },
};
