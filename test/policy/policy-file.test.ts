import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, ExitCodes, MavmqError, exitCodeFor } from '../../src/errors.js';
import { checkPolicyFile, policyCheckCommand } from '../../src/policy/cli.js';
import { defaultPolicy, loadPolicy } from '../../src/policy/load.js';
import { airPolicyConfigSchema, groundPolicyConfigSchema } from '../../src/policy/config.js';
import type { CliIo } from '../../src/cli/commands.js';
import { silentLogger } from '../../src/obs/logger.js';

async function file(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mavmq-policy-'));
  const p = join(dir, 'policy.yaml');
  await writeFile(p, text);
  return p;
}

async function policyError(p: Promise<unknown>): Promise<MavmqError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MavmqError, String(err));
    assert.equal(err.code, ErrorCodes.POLICY_INVALID);
    assert.equal(exitCodeFor(err), ExitCodes.POLICY_INVALID);
    return err;
  }
  assert.fail('expected a policy error');
}

function io(): CliIo & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines, out: (s) => lines.push(s), err: (s) => lines.push(s), env: {}, makeLogger: () => silentLogger(),
    untilSignal: () => Promise.resolve(),
  };
}

describe('policy files', () => {
  test('config/policy.yaml is valid and is exactly the built-in default policy', async () => {
    assert.deepEqual(await loadPolicy('config/policy.yaml'), defaultPolicy());
    assert.deepEqual(await loadPolicy(), defaultPolicy());
  });

  test('a minimal file gets the defaults for everything but the messages', async () => {
    const p = await loadPolicy(await file('messages:\n  allow: [HEARTBEAT, COMMAND_LONG]\n'));
    assert.deepEqual(p.rules, []);
    assert.equal(p.commands.default, 'allow');
    assert.equal(p.commands.rateLimit.perSecond, 5);
    assert.equal(p.streamRates.maxHz, 10);
    assert.equal(p.replies.answerAs, 'target');
    assert.equal(p.dryRun, false);
  });

  test('every problem is listed at once, each with its line and a hint', async () => {
    const text = [
      'version: 1', //                                   1
      'messages:', //                                    2
      '  allow:', //                                     3
      '    - HEARTBEET', //                              4  typo
      '    - COMMAND_LONG', //                           5
      '    - PARAM_SET', //                              6
      '  deny: [COMMAND_LONG]', //                       7  in both
      'commands:', //                                    8
      '  rateLimit: { perSecond: -1, perCommand: { REBOOT: { perSecond: 1, burst: 1 } } }', // 9
      'fileTransfer:', //                                10
      '  allowOpcodes: [ReadFiel]', //                   11
      'rules:', //                                       12
      '  - name: reboot-while-armed', //                 13
      '    command: PREFLIGHT_REBOOT_SHUTDOWN', //       14
      '    when: { armed: true }', //                    15
      '    actoin: deny', //                             16  unknown key (and action missing)
      '  - name: reboot-while-armed', //                 17  duplicate
      '    command: PREFLGHT_REBOOT_SHUTDOWN', //        18  typo
      '    action: refuse', //                           19  bad value
      '  - name: everything', //                         20  no selector
      '    when: { inAir: true }', //                    21
      '    action: deny', //                             22
      '  - name: params', //                             23
      '    param: [ARMING.*]', //                        24  bad glob
      '    action: deny', //                             25
      '    confirmWithinS: 3', //                        26  only for confirm
      '  - name: Bad_Name', //                           27
      '    params: { param1: 0 }', //                    28  needs command
      '    message: ATTITUDE', //                        29  not allowed, so dead
      '    action: confirm', //                          30
      '',
    ].join('\n');
    const f = await file(text);
    const err = await policyError(loadPolicy(f));
    const lines = err.problems.map((p) => `${p.path} | ${p.message} | ${p.hint ?? ''}`);
    const find = (re: RegExp): string => {
      const hit = lines.find((l) => re.test(l));
      assert.ok(hit, `no problem matching ${re}:\n${lines.join('\n')}`);
      return hit;
    };
    assert.match(find(/HEARTBEET/), new RegExp(`${f}:4`));
    assert.match(find(/HEARTBEET/), /did you mean "HEARTBEAT"/);
    assert.match(find(/both messages.allow and messages.deny/), new RegExp(`${f}:7`));
    assert.match(find(/rateLimit\.perSecond/), new RegExp(`${f}:9`));
    assert.match(find(/"REBOOT"/), new RegExp(`${f}:9`));
    assert.match(find(/ReadFiel/), /did you mean "ReadFile"/);
    assert.match(find(/ReadFiel/), new RegExp(`${f}:11`));
    assert.match(find(/unknown key "actoin"/), /did you mean "action"/);
    assert.match(find(/unknown key "actoin"/), new RegExp(`${f}:16`));
    assert.match(find(/used twice/), new RegExp(`${f}:17`));
    assert.match(find(/PREFLGHT/), /did you mean "PREFLIGHT_REBOOT_SHUTDOWN"/);
    assert.match(find(/PREFLGHT/), new RegExp(`${f}:18`));
    assert.match(find(/rules\.1\.action.*\| .*"deny"/), new RegExp(`${f}:19`));
    assert.match(find(/at least one of message, command or param/), new RegExp(`${f}:20`));
    assert.match(find(/parameter name pattern/), new RegExp(`${f}:24`));
    assert.match(find(/only applies to `action: confirm`/), new RegExp(`${f}:26`));
    assert.match(find(/lower-case letters/), new RegExp(`${f}:27`));
    assert.match(find(/give `command` too/), new RegExp(`${f}:28`));
    assert.match(find(/ATTITUDE is not in messages.allow/), new RegExp(`${f}:29`));
    assert.ok(err.problems.length >= 16, `${err.problems.length} problems:\n${lines.join('\n')}`);
    assert.match(err.message, new RegExp(`policy ${f} has ${err.problems.length} problems`));
  });

  test('YAML syntax errors and unreadable files are policy errors too', async () => {
    const bad = await policyError(loadPolicy(await file('messages:\n  allow: [HEARTBEAT\n')));
    assert.match(bad.problems[0]!.path, /policy\.yaml:\d+:\d+/);
    const missing = await policyError(loadPolicy('/nonexistent/policy.yaml'));
    assert.match(missing.message, /cannot read policy/);
    const notMap = await policyError(loadPolicy(await file('- a\n- b\n')));
    assert.match(notMap.problems[0]!.hint ?? '', /config\/policy\.yaml/);
    const empty = await policyError(loadPolicy(await file('')));
    assert.ok(empty.problems.some((p) => p.path.startsWith('messages')));
  });

  test('`mavmq policy check`: ok with a summary, or every problem (exit 5 through runCli)', async () => {
    const out = io();
    assert.equal(await policyCheckCommand.run({ values: {}, positionals: ['config/policy.yaml'] }, out), 0);
    assert.match(out.lines.join('\n'), /config\/policy\.yaml: ok/);
    assert.match(out.lines.join('\n'), /deny {4}reboot-while-armed: command PREFLIGHT_REBOOT_SHUTDOWN, armed/);
    assert.match(out.lines.join('\n'), /confirm force-arm: command COMPONENT_ARM_DISARM, param1=1 param2=2989\|21196/);
    await policyError(policyCheckCommand.run({ values: {}, positionals: [await file('messages: { allow: [NOPE] }\n')] }, io()));
    await assert.rejects(policyCheckCommand.run({ values: {}, positionals: [] }, io()), (e: unknown) => e instanceof MavmqError && e.code === ErrorCodes.USAGE);
    assert.equal(policyCheckCommand.name, 'policy check');
    const { summary } = await checkPolicyFile(await file('dryRun: true\nmessages: { allow: [HEARTBEAT] }\n'));
    assert.match(summary[0]!, /DRY RUN/);
  });

  test('the config section: enforced on the air side by default, off on the ground', () => {
    assert.deepEqual(airPolicyConfigSchema.parse(undefined), { enabled: true });
    assert.deepEqual(groundPolicyConfigSchema.parse(undefined), { enabled: false });
    const c = airPolicyConfigSchema.parse({ file: '/etc/mavmq/policy.yaml', dryRun: true, audit: { file: '/var/lib/mavmq/policy-audit.jsonl' } });
    assert.deepEqual(c.audit, { file: '/var/lib/mavmq/policy-audit.jsonl', maxBytes: 16 * 1024 * 1024, fsyncIntervalMs: 1000, includeRoutine: false });
    assert.equal(airPolicyConfigSchema.safeParse({ fiel: 'x' }).success, false);
  });
});
