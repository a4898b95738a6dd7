import { z } from 'zod';
import { ardupilotmegaDialect, type Dialect } from '../mavlink/dialect.js';
import { allCommandNames, commandId, FTP_OPCODES, ftpOpcode, messageId, suggest, type NameRef } from './names.js';

/**
 * The command-safety policy file (config/policy.yaml): its types, defaults and validation.
 * Names are checked against the ardupilotmega dialect (messages) and MAV_CMD (commands), so a typo
 * is an error with a "did you mean" hint, never a rule that silently matches nothing.
 */

const nameRef = z.union([z.string().min(1), z.number().int().min(0)]);
const oneOrMany = z.union([nameRef, z.array(nameRef).min(1)]);
const paramValue = z.union([z.number(), z.array(z.number()).min(1)]);
const ruleName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,47}$/, 'lower-case letters, digits and "-", 1 to 48 characters (it names the rule in logs, counters and the audit log)');
const glob = z.string().regex(/^[A-Za-z0-9_*?]{1,16}$/, 'a parameter name pattern: letters, digits, "_", "*" (any run) and "?" (one character), at most 16 characters');

export const RULE_ACTIONS = ['deny', 'confirm', 'allow'] as const;
export type RuleAction = (typeof RULE_ACTIONS)[number];

const whenSchema = z.strictObject({
  /** Vehicle armed (HEARTBEAT base_mode bit 128). */
  armed: z.boolean().optional(),
  /** In the air (EXTENDED_SYS_STATE landed_state IN_AIR, TAKEOFF or LANDING). */
  inAir: z.boolean().optional(),
  /** Flight mode: HEARTBEAT custom_mode values (vehicle-specific; ArduCopter: 0 STABILIZE, 4 GUIDED, 6 RTL, 9 LAND...). */
  mode: z.array(z.number().int().min(0)).min(1).optional(),
});

const paramsSchema = z.strictObject({
  param1: paramValue.optional(),
  param2: paramValue.optional(),
  param3: paramValue.optional(),
  param4: paramValue.optional(),
  param5: paramValue.optional(),
  param6: paramValue.optional(),
  param7: paramValue.optional(),
});

const ruleSchema = z.strictObject({
  name: ruleName,
  /** Message name(s) the rule applies to. Implied by `command` (COMMAND_LONG/INT) and `param` (PARAM_SET). */
  message: oneOrMany.optional(),
  /** MAV_CMD name(s) or number(s), in COMMAND_LONG or COMMAND_INT. */
  command: oneOrMany.optional(),
  /** Exact command parameter values (float32 compare; a list means any of them). Needs `command`. */
  params: paramsSchema.optional(),
  /** PARAM_SET parameter name patterns (case-insensitive globs). */
  param: z.array(glob).min(1).optional(),
  /** Vehicle state the rule needs. Unknown state counts as matching for deny/confirm, never for allow. */
  when: whenSchema.optional(),
  action: z.enum(RULE_ACTIONS),
  /** Said to the ground in STATUSTEXT ("mavmq: DENIED <reason>", 50 characters max on the wire) and logged. */
  reason: z.string().min(1).max(80).optional(),
  /** confirm only: the same frame again within this many seconds goes through. */
  confirmWithinS: z.number().min(1).max(60).optional(),
});

const rateSchema = z.strictObject({
  perSecond: z.number().positive().max(1000),
  burst: z.number().int().min(1).max(10_000),
});

const commandsSchema = z.strictObject({
  /** Commands no rule decided: allow (the usual) or deny (then allow what you need with `action: allow` rules). */
  default: z.enum(['allow', 'deny']).default('allow'),
  /** Token bucket per MAV_CMD id, over COMMAND_LONG and COMMAND_INT together. */
  rateLimit: z.strictObject({
    perSecond: z.number().positive().max(1000).default(5),
    burst: z.number().int().min(1).max(10_000).default(10),
    /** Per-command overrides, by MAV_CMD name or number. */
    perCommand: z.record(z.string().min(1), rateSchema).default({}),
  }).prefault({}),
}).prefault({});

const streamRatesSchema = z.strictObject({
  /** Highest stream rate the ground may ask for: REQUEST_DATA_STREAM req_message_rate, SET_MESSAGE_INTERVAL interval. */
  maxHz: z.number().positive().max(400).default(10),
  /** clamp: rewrite the request down to maxHz (sender, sequence kept, fresh CRC); deny: refuse it. */
  action: z.enum(['clamp', 'deny']).default('clamp'),
}).prefault({});

const fileTransferSchema = z.strictObject({
  /** MAVLink FTP opcodes the ground may use; anything else (writes, removes, renames...) is refused. */
  allowOpcodes: z.array(nameRef).default(['TerminateSession', 'ResetSessions', 'ListDirectory', 'OpenFileRO', 'ReadFile', 'CalcFileCRC32', 'BurstReadFile']),
}).prefault({});

const stateSchema = z.strictObject({
  /** Telemetry older than this is unknown state (then the conservative answer: armed, in the air). */
  staleAfterMs: z.number().int().min(500).max(600_000).default(5000),
  /** Pin the autopilot's identity; default: the first HEARTBEAT from a real autopilot (not a GCS, not a companion). */
  autopilot: z.strictObject({ sysid: z.number().int().min(1).max(255), compid: z.number().int().min(1).max(255) }).optional(),
}).prefault({});

const repliesSchema = z.strictObject({
  /**
   * Who answers COMMAND_ACK / PARAM_VALUE / FTP NAK: `target` = the component the frame was addressed
   * to (QGroundControl matches acks by the acking component id), `companion` = sysid + companion compid.
   * STATUSTEXT always comes from the companion (compid 191 by default): it says who refused.
   */
  answerAs: z.enum(['target', 'companion']).default('target'),
  statustext: z.boolean().default(true),
  /** At most one STATUSTEXT per rule per this interval (a flood of refusals is not echoed as a flood). */
  statustextMinIntervalMs: z.number().int().min(0).max(60_000).default(1000),
}).prefault({});

const policyObject = z.strictObject({
  version: z.literal(1).default(1),
  /** Compute, log and audit verdicts, but let every frame through. */
  dryRun: z.boolean().default(false),
  messages: z.strictObject({
    /** Messages the ground may send; anything not listed is refused. */
    allow: z.array(nameRef),
    /** Always refused (takes precedence; listing a message in both is an error). */
    deny: z.array(nameRef).default([]),
  }),
  commands: commandsSchema,
  streamRates: streamRatesSchema,
  fileTransfer: fileTransferSchema,
  state: stateSchema,
  replies: repliesSchema,
  /** Evaluated in order for every allowed message; the first rule that matches decides. */
  rules: z.array(ruleSchema).default([]),
});

export type Policy = z.infer<typeof policyObject>;
export type PolicyInput = z.input<typeof policyObject>;

/**
 * Name and cross-field checks. They run even when the structure has problems (`when`), so a file
 * gets every problem in one pass; the value may then be partial, hence the defensive reads.
 */
export const policySchema = policyObject.superRefine((p, ctx) => checkNames(p as unknown, ctx, ardupilotmegaDialect()), { when: () => true });
export type PolicyRule = z.infer<typeof ruleSchema>;

export function asList<T>(v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

type Ctx = z.core.$RefinementCtx<Policy>;
type Loose = Record<string, unknown>;

function obj(v: unknown): Loose | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Loose) : undefined;
}
function refs(v: unknown): { ref: NameRef; at: (string | number)[] }[] {
  const ok = (x: unknown): x is NameRef => typeof x === 'string' || typeof x === 'number';
  if (Array.isArray(v)) return v.flatMap((x, i) => (ok(x) ? [{ ref: x, at: [i] }] : []));
  return ok(v) ? [{ ref: v, at: [] }] : [];
}

function checkNames(input: unknown, ctx: Ctx, dialect: Dialect): void {
  const p = obj(input);
  if (p === undefined) return;
  let knownMessages: string[] | null = null;
  const msg = (ref: NameRef, path: (string | number)[]): number | undefined => {
    const id = messageId(dialect, ref);
    if (id === undefined) {
      if (knownMessages === null) {
        knownMessages = [];
        for (let i = 0; i < 65536; i++) if (dialect.messageClass(i) !== undefined) knownMessages.push(dialect.messageName(i));
      }
      const guess = typeof ref === 'string' ? suggest(ref, knownMessages) : null;
      ctx.addIssue({ code: 'custom', path, message: `unknown MAVLink message ${JSON.stringify(ref)}${guess ? ` (did you mean "${guess}"?)` : ''}` });
    }
    return id;
  };
  const cmd = (ref: NameRef, path: (string | number)[]): number | undefined => {
    const id = commandId(ref);
    if (id === undefined) {
      const guess = typeof ref === 'string' ? suggest(ref.replace(/^MAV_CMD_/i, ''), allCommandNames()) : null;
      ctx.addIssue({ code: 'custom', path, message: `unknown MAV_CMD ${JSON.stringify(ref)}${guess ? ` (did you mean "${guess}"?)` : ''}` });
    }
    return id;
  };

  const messages = obj(p['messages']);
  const allowed = new Set<number>();
  for (const { ref, at } of Array.isArray(messages?.['allow']) ? refs(messages['allow']) : []) {
    const id = msg(ref, ['messages', 'allow', ...at]);
    if (id !== undefined) allowed.add(id);
  }
  for (const { ref, at } of Array.isArray(messages?.['deny']) ? refs(messages['deny']) : []) {
    const id = msg(ref, ['messages', 'deny', ...at]);
    if (id !== undefined && allowed.has(id)) {
      ctx.addIssue({ code: 'custom', path: ['messages', 'deny', ...at], message: `${dialect.messageName(id)} is in both messages.allow and messages.deny (deny wins; remove one)` });
    }
  }
  const perCommand = obj(obj(obj(p['commands'])?.['rateLimit'])?.['perCommand']);
  for (const key of Object.keys(perCommand ?? {})) cmd(key, ['commands', 'rateLimit', 'perCommand', key]);
  const opcodes = obj(p['fileTransfer'])?.['allowOpcodes'];
  for (const { ref, at } of Array.isArray(opcodes) ? refs(opcodes) : []) {
    if (ftpOpcode(ref) === undefined) {
      const guess = typeof ref === 'string' ? suggest(ref, Object.keys(FTP_OPCODES)) : null;
      ctx.addIssue({ code: 'custom', path: ['fileTransfer', 'allowOpcodes', ...at], message: `unknown FTP opcode ${JSON.stringify(ref)}${guess ? ` (did you mean "${guess}"?)` : ''}` });
    }
  }

  const COMMAND_LONG = 76, COMMAND_INT = 75, PARAM_SET = 23;
  const names = new Set<string>();
  const rules = Array.isArray(p['rules']) ? (p['rules'] as unknown[]) : [];
  rules.forEach((raw, i) => {
    const r = obj(raw);
    if (r === undefined) return;
    const at = (...rest: (string | number)[]): (string | number)[] => ['rules', i, ...rest];
    const name = r['name'];
    if (typeof name === 'string') {
      if (names.has(name)) ctx.addIssue({ code: 'custom', path: at('name'), message: `rule name "${name}" is used twice (names identify rules in counters and the audit log)` });
      names.add(name);
    }
    const has = (k: string): boolean => r[k] !== undefined;
    const msgs = refs(r['message']).map(({ ref, at: sub }) => ({ id: msg(ref, at('message', ...sub)), path: at('message', ...sub) }));
    for (const { ref, at: sub } of refs(r['command'])) cmd(ref, at('command', ...sub));
    if (!has('message') && !has('command') && !has('param')) {
      ctx.addIssue({ code: 'custom', path: at(), message: 'a rule needs at least one of message, command or param (a rule that matches every frame is almost certainly a mistake)' });
    }
    if (has('command') && msgs.some((m) => m.id !== undefined && m.id !== COMMAND_LONG && m.id !== COMMAND_INT)) {
      ctx.addIssue({ code: 'custom', path: at('message'), message: 'with `command`, `message` may only be COMMAND_LONG and/or COMMAND_INT (or leave it out: both are implied)' });
    }
    if (has('params') && !has('command')) {
      ctx.addIssue({ code: 'custom', path: at('params'), message: '`params` matches command parameters: give `command` too' });
    }
    if (has('param') && (has('command') || msgs.some((m) => m.id !== undefined && m.id !== PARAM_SET))) {
      ctx.addIssue({ code: 'custom', path: at('param'), message: '`param` matches PARAM_SET parameter names: it cannot be combined with `command` or other messages' });
    }
    if (has('confirmWithinS') && r['action'] !== 'confirm') {
      ctx.addIssue({ code: 'custom', path: at('confirmWithinS'), message: '`confirmWithinS` only applies to `action: confirm`' });
    }
    for (const m of msgs) {
      if (m.id !== undefined && !allowed.has(m.id)) {
        ctx.addIssue({ code: 'custom', path: m.path, message: `${dialect.messageName(m.id)} is not in messages.allow, so this rule can never match` });
      }
    }
    if (has('command') && !allowed.has(COMMAND_LONG) && !allowed.has(COMMAND_INT)) {
      ctx.addIssue({ code: 'custom', path: at('command'), message: 'neither COMMAND_LONG nor COMMAND_INT is in messages.allow, so this rule can never match' });
    }
    if (has('param') && !allowed.has(PARAM_SET)) {
      ctx.addIssue({ code: 'custom', path: at('param'), message: 'PARAM_SET is not in messages.allow, so this rule can never match' });
    }
  });
}
