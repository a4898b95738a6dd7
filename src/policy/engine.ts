import { common, minimal, type MavLinkData, type MavLinkDataConstructor } from 'node-mavlink';
import type { Codec } from '../mavlink/codec.js';
import { FrameWriter } from '../mavlink/codec.js';
import { crc16, crc16Byte } from '../mavlink/crc.js';
import { encodeFrame } from '../mavlink/encode.js';
import { describeFrame, paddedPayload, payloadByte, type Frame } from '../mavlink/framer.js';
import { commandId, commandName, FTP_ERR_FILE_PROTECTED, FTP_NAK, FTP_OPCODES, ftpOpcode, globToRegExp, messageId } from './names.js';
import { asList, type Policy, type PolicyRule, type RuleAction } from './schema.js';

/**
 * The command-safety policy engine. Side-agnostic and I/O-free:
 *  - observe(frame): the autopilot's own telemetry -> vehicle state (armed, in air, mode, params).
 *    Called for every autopilot frame: O(1) and allocation-free for every msgid it does not watch
 *    (one typed-array lookup), and allocation-free for HEARTBEAT and EXTENDED_SYS_STATE too.
 *  - check(frame): exactly one verdict per frame from the ground: allow (possibly rewritten),
 *    deny (rule, reason, the frames to answer the ground with) or confirm (same, the sender must
 *    send the same frame again within the rule's window). Never throws: an internal error denies.
 * Without observe() (e.g. on the ground side) the state is unknown, and unknown state counts as
 * matching a deny/confirm rule's `when` (armed, in the air), never an allow rule's.
 */

export type VerdictAction = 'allow' | 'deny' | 'confirm';

export type Verdict =
  | {
    action: 'allow';
    /** The frame to forward: the one checked, or a rewritten copy (stream-rate cap). */
    frame: Frame;
    rule: string;
    rewritten: boolean;
    /** Dry run only: what would have happened to this frame. */
    wouldBe?: { action: 'deny' | 'confirm'; rule: string; reason: string };
  }
  | { action: 'deny' | 'confirm'; rule: string; reason: string; /** Complete frames to send back to the ground. */ replies: Buffer[] };

/** What onVerdict receives and the audit log stores (one JSON line). */
export interface VerdictRecord {
  time: string;
  session: string | null;
  frame: {
    msgid: number;
    name: string;
    sysid: number;
    compid: number;
    targetSystem?: number;
    targetComponent?: number;
    command?: number;
    commandName?: string;
    /** COMMAND_LONG/INT param1..7; non-finite values as strings ("NaN"). */
    params?: (number | string)[];
    paramId?: string;
    paramValue?: number | string;
    ftpOpcode?: number;
  };
  rule: string;
  verdict: VerdictAction;
  reason: string | null;
  /** Allowed after a stream-rate rewrite (in dry run: would have been). */
  rewritten: boolean;
  dryRun: boolean;
  /** An ordinary allowed message (no rule, not a command/param/mode/mission change): audit logs skip these by default. */
  routine: boolean;
}

export interface VehicleStateView {
  autopilot: { sysid: number; compid: number } | null;
  /** null = unknown (no telemetry, or older than state.staleAfterMs). */
  armed: boolean | null;
  inAir: boolean | null;
  mode: number | null;
  landedState: number | null;
  paramsKnown: number;
}

export interface RuleCounts {
  allow: number;
  deny: number;
  confirm: number;
}

export interface PolicyStats {
  dryRun: boolean;
  frames: number;
  allow: number;
  deny: number;
  confirm: number;
  rewritten: number;
  byRule: Record<string, RuleCounts>;
  repliesSent: number;
  statustextSuppressed: number;
  callbackErrors: number;
  internalErrors: number;
  state: VehicleStateView;
}

export interface PolicyEngineOptions {
  policy: Policy;
  codec: Codec;
  /** Source of STATUSTEXT (and of every reply with replies.answerAs: companion). Default 191. */
  companionCompid?: number;
  /** Overrides the policy's dryRun. */
  dryRun?: boolean;
  /** Monotonic milliseconds for state age, token buckets and confirmation windows. Default performance.now. */
  nowMs?: () => number;
  /** Wall clock for record timestamps. Default Date.now. */
  wallClockMs?: () => number;
  /** The relay's current session id, for the audit log. */
  sessionId?: () => string | null;
  /** Called once per check(), synchronously; exceptions are swallowed (and counted). */
  onVerdict?: (v: VerdictRecord) => void;
}

// Message ids the engine knows by heart.
const HEARTBEAT = 0;
const PARAM_VALUE = 22;
const PARAM_SET = 23;
const SET_MODE = 11;
const REQUEST_DATA_STREAM = 66;
const COMMAND_INT = 75;
const COMMAND_LONG = 76;
const MISSION_COUNT = 44;
const MISSION_CLEAR_ALL = 45;
const MISSION_SET_CURRENT = 41;
const FILE_TRANSFER_PROTOCOL = 110;
const EXTENDED_SYS_STATE = 245;

const MAV_TYPE_GCS = 6;
const MAV_TYPE_ONBOARD_CONTROLLER = 18;
const MAV_AUTOPILOT_INVALID = 8;
const MAV_MODE_FLAG_SAFETY_ARMED = 128;
const MAV_RESULT_TEMPORARILY_REJECTED = 1;
/** MAV_RESULT_DENIED is 2 (4 is MAV_RESULT_FAILED). */
export const MAV_RESULT_DENIED = 2;
const MAV_SEVERITY_WARNING = 4;
const MAV_CMD_SET_MESSAGE_INTERVAL = 511;
/** COMMAND_LONG.confirmation: GCSs increment it on retransmissions of the same command. */
const COMMAND_LONG_CONFIRMATION_OFFSET = fieldOffset(common.CommandLong, 'confirmation');
/** COMMAND_LONG and COMMAND_INT share the offset of `command`. */
const CMD_ID_OFFSET = fieldOffset(common.CommandLong, 'command');
if (CMD_ID_OFFSET !== fieldOffset(common.CommandInt, 'command')) throw new Error('COMMAND_LONG/COMMAND_INT layouts differ');
/** FILE_TRANSFER_PROTOCOL: payload[251] at 3; inside it opcode is byte 3 (seq u16, session, opcode). */
const FTP_PAYLOAD_OFFSET = fieldOffset(common.FileTransferProtocol, 'payload');

const HB_CUSTOM_MODE = fieldOffset(minimal.Heartbeat, 'custom_mode');
const HB_TYPE = fieldOffset(minimal.Heartbeat, 'type');
const HB_AUTOPILOT = fieldOffset(minimal.Heartbeat, 'autopilot');
const HB_BASE_MODE = fieldOffset(minimal.Heartbeat, 'base_mode');
const ESS_LANDED_STATE = fieldOffset(common.ExtendedSysState, 'landed_state');
const PV_VALUE = fieldOffset(common.ParamValue, 'param_value');
const PV_COUNT = fieldOffset(common.ParamValue, 'param_count');
const PV_INDEX = fieldOffset(common.ParamValue, 'param_index');
const PV_ID = fieldOffset(common.ParamValue, 'param_id');
const PV_TYPE = fieldOffset(common.ParamValue, 'param_type');

/** msgids observe() looks at (all < 256): one typed-array lookup decides. */
const WATCHED = new Uint8Array(256);
WATCHED[HEARTBEAT] = 1;
WATCHED[PARAM_VALUE] = 1;
WATCHED[EXTENDED_SYS_STATE] = 1;

/** Allowed messages that are still worth an audit line without a rule. */
const NOTABLE = new Set([COMMAND_LONG, COMMAND_INT, PARAM_SET, SET_MODE, REQUEST_DATA_STREAM, MISSION_COUNT, MISSION_CLEAR_ALL, MISSION_SET_CURRENT]);

const MAX_TRACKED_PARAMS = 4096;
const MAX_PENDING_CONFIRMATIONS = 64;
const MAX_WRITERS = 32;
const STATUSTEXT_LENGTH = 50;
const LIST_UNLISTED = 0;
const LIST_ALLOW = 1;
const LIST_DENY = 2;

function fieldOffset(clazz: MavLinkDataConstructor<MavLinkData>, source: string): number {
  const f = clazz.FIELDS.find((x) => x.source === source);
  if (f === undefined) throw new Error(`${clazz.MSG_NAME}.${source}: no such field`);
  return f.offset;
}

const f32 = new DataView(new ArrayBuffer(4));
function readF32(frame: Frame, off: number): number {
  for (let i = 0; i < 4; i++) f32.setUint8(i, payloadByte(frame, off + i));
  return f32.getFloat32(0, true);
}
function readU16(frame: Frame, off: number): number {
  return payloadByte(frame, off) | (payloadByte(frame, off + 1) << 8);
}
function readU32(frame: Frame, off: number): number {
  return (readU16(frame, off) | (readU16(frame, off + 2) << 16)) >>> 0;
}

interface CompiledRule {
  name: string;
  action: RuleAction;
  reason: string;
  confirmMs: number;
  commands: Set<number> | null;
  /** [param index 0..6, accepted values] */
  params: [number, number[]][];
  paramGlobs: RegExp[] | null;
  armed: boolean | undefined;
  inAir: boolean | undefined;
  modes: Set<number> | null;
}

interface Facts {
  msgid: number;
  name: string;
  sysid: number;
  compid: number;
  /** -1 when the message has no such field. */
  targetSystem: number;
  targetComponent: number;
  command?: number;
  params?: number[];
  confirmation?: number;
  paramId?: string;
  paramValue?: number;
  ftpOpcode?: number;
  ftpSeq?: number;
  ftpSession?: number;
}

interface Outcome {
  verdict: VerdictAction;
  rule: string;
  reason: string | null;
  facts: Facts;
  /** A rewritten frame to forward instead. */
  frame?: Frame;
  confirmS?: number;
}

interface TrackedParam {
  /** As the autopilot spells it. */
  name: string;
  value: number;
  type: number;
  count: number;
  index: number;
}

interface Bucket {
  tokens: number;
  atMs: number;
}

export class PolicyEngine {
  readonly dryRun: boolean;
  private readonly policy: Policy;
  private readonly codec: Codec;
  private readonly companionCompid: number;
  private readonly now: () => number;
  private readonly wallMs: () => number;
  private readonly sessionId: () => string | null;
  private readonly onVerdict: ((v: VerdictRecord) => void) | undefined;

  // Compiled policy.
  private readonly lists = new Uint8Array(1 << 16);
  private readonly rulesByMsgid = new Map<number, CompiledRule[]>();
  private readonly ftpAllowed = new Set<number>();
  private readonly rates = new Map<number, { perSecond: number; burst: number }>();
  private readonly staleMs: number;

  // Vehicle state.
  private apSysid = -1;
  private apCompid = -1;
  private readonly pinned: boolean;
  private lastHeartbeatMs = -Infinity;
  private baseMode = 0;
  private customMode = 0;
  private lastExtStateMs = -Infinity;
  private landedState = 0;
  private readonly params = new Map<string, TrackedParam>();

  // Verdict machinery.
  private readonly buckets = new Map<number, Bucket>();
  private readonly pending = new Map<string, number>();
  private readonly lastStatusMs = new Map<string, number>();
  private readonly writers = new Map<number, FrameWriter>();
  private readonly counts = { frames: 0, allow: 0, deny: 0, confirm: 0, rewritten: 0, repliesSent: 0, statustextSuppressed: 0, callbackErrors: 0, internalErrors: 0 };
  private readonly byRule = new Map<string, RuleCounts>();

  constructor(opts: PolicyEngineOptions) {
    this.policy = opts.policy;
    this.codec = opts.codec;
    this.companionCompid = opts.companionCompid ?? 191;
    this.dryRun = opts.dryRun ?? opts.policy.dryRun;
    this.now = opts.nowMs ?? (() => performance.now());
    this.wallMs = opts.wallClockMs ?? Date.now;
    this.sessionId = opts.sessionId ?? (() => null);
    this.onVerdict = opts.onVerdict;
    this.staleMs = opts.policy.state.staleAfterMs;
    const pin = opts.policy.state.autopilot;
    this.pinned = pin !== undefined;
    if (pin) {
      this.apSysid = pin.sysid;
      this.apCompid = pin.compid;
    }
    this.compile();
  }

  private compile(): void {
    const dialect = this.codec.dialect;
    const p = this.policy;
    for (const ref of p.messages.allow) {
      const id = messageId(dialect, ref);
      if (id !== undefined && id < this.lists.length) this.lists[id] = LIST_ALLOW;
    }
    for (const ref of p.messages.deny) {
      const id = messageId(dialect, ref);
      if (id !== undefined && id < this.lists.length) this.lists[id] = LIST_DENY;
    }
    for (const ref of p.fileTransfer.allowOpcodes) {
      const op = ftpOpcode(ref);
      if (op !== undefined) this.ftpAllowed.add(op);
    }
    for (const [ref, r] of Object.entries(p.commands.rateLimit.perCommand)) {
      const id = commandId(ref);
      if (id !== undefined) this.rates.set(id, r);
    }
    for (const r of p.rules) {
      const rule = compileRule(r);
      const msgids = new Set<number>();
      for (const ref of asList(r.message)) {
        const id = messageId(dialect, ref);
        if (id !== undefined) msgids.add(id);
      }
      if (r.message === undefined && r.command !== undefined) [COMMAND_LONG, COMMAND_INT].forEach((id) => msgids.add(id));
      if (r.message === undefined && r.param !== undefined) msgids.add(PARAM_SET);
      for (const id of msgids) {
        const list = this.rulesByMsgid.get(id) ?? [];
        list.push(rule);
        this.rulesByMsgid.set(id, list);
      }
    }
  }

  // ---------------------------------------------------------------- observe

  /** Autopilot telemetry in. Every frame from the autopilot link may be passed; most return at once. */
  observe(frame: Frame): void {
    const id = frame.msgid;
    if (id > 255 || WATCHED[id] === 0 || !frame.checked) return;
    if (id === HEARTBEAT) this.onHeartbeat(frame);
    else if (frame.sysid !== this.apSysid || frame.compid !== this.apCompid) return;
    else if (id === EXTENDED_SYS_STATE) {
      this.landedState = payloadByte(frame, ESS_LANDED_STATE);
      this.lastExtStateMs = this.now();
    } else if (id === PARAM_VALUE) this.onParamValue(frame);
  }

  private onHeartbeat(frame: Frame): void {
    const type = payloadByte(frame, HB_TYPE);
    if (type === MAV_TYPE_GCS || type === MAV_TYPE_ONBOARD_CONTROLLER || payloadByte(frame, HB_AUTOPILOT) === MAV_AUTOPILOT_INVALID) return;
    const now = this.now();
    if (frame.sysid !== this.apSysid || frame.compid !== this.apCompid) {
      // Another autopilot: adopt it only if none is pinned and ours has gone silent (first heard, or replaced).
      if (this.pinned || now - this.lastHeartbeatMs <= this.staleMs) return;
      this.apSysid = frame.sysid;
      this.apCompid = frame.compid;
      this.lastExtStateMs = -Infinity;
      this.params.clear();
    }
    this.lastHeartbeatMs = now;
    this.baseMode = payloadByte(frame, HB_BASE_MODE);
    this.customMode = readU32(frame, HB_CUSTOM_MODE);
  }

  private onParamValue(frame: Frame): void {
    let name = '';
    for (let i = 0; i < 16; i++) {
      const c = payloadByte(frame, PV_ID + i);
      if (c === 0) break;
      name += String.fromCharCode(c);
    }
    if (name === '') return;
    const key = name.toUpperCase();
    const known = this.params.get(key);
    const value = readF32(frame, PV_VALUE);
    const type = payloadByte(frame, PV_TYPE);
    const count = readU16(frame, PV_COUNT);
    const index = readU16(frame, PV_INDEX);
    if (known) {
      known.name = name;
      known.value = value;
      known.type = type;
      known.count = count;
      known.index = index;
    } else if (this.params.size < MAX_TRACKED_PARAMS) {
      this.params.set(key, { name, value, type, count, index });
    }
  }

  /** The vehicle state as the rules see it now. */
  state(): VehicleStateView {
    const now = this.now();
    return {
      autopilot: this.apSysid >= 0 ? { sysid: this.apSysid, compid: this.apCompid } : null,
      armed: this.armedAt(now),
      inAir: this.inAirAt(now),
      mode: this.modeAt(now),
      landedState: now - this.lastExtStateMs <= this.staleMs ? this.landedState : null,
      paramsKnown: this.params.size,
    };
  }

  private armedAt(now: number): boolean | null {
    return now - this.lastHeartbeatMs <= this.staleMs ? (this.baseMode & MAV_MODE_FLAG_SAFETY_ARMED) !== 0 : null;
  }

  private inAirAt(now: number): boolean | null {
    if (now - this.lastExtStateMs > this.staleMs) return null;
    const s = this.landedState;
    if (s === 1) return false; // ON_GROUND
    if (s === 2 || s === 3 || s === 4) return true; // IN_AIR, TAKEOFF, LANDING
    return null; // UNDEFINED (or unknown values)
  }

  private modeAt(now: number): number | null {
    return now - this.lastHeartbeatMs <= this.staleMs ? this.customMode : null;
  }

  // ---------------------------------------------------------------- check

  /** Exactly one verdict for a frame from the ground. Never throws. */
  check(frame: Frame): Verdict {
    let now = 0;
    let o: Outcome;
    try {
      now = this.now();
      o = this.evaluate(frame, now);
    } catch (err) {
      this.counts.internalErrors++;
      o = { verdict: 'deny', rule: 'internal-error', reason: `internal error: ${(err as Error).message ?? String(err)}`.slice(0, 200), facts: bareFacts(frame) };
    }
    return this.finish(frame, o, now);
  }

  private evaluate(frame: Frame, now: number): Outcome {
    const dialect = this.codec.dialect;
    const msgid = frame.msgid;
    const facts = bareFacts(frame);
    facts.name = dialect.messageName(msgid);
    const tso = dialect.targetSystemOffset(msgid);
    const tco = dialect.targetComponentOffset(msgid);
    if (tso >= 0) facts.targetSystem = payloadByte(frame, tso);
    if (tco >= 0) facts.targetComponent = payloadByte(frame, tco);
    // The command id straight from the payload, so even a refused or malformed command gets its COMMAND_ACK.
    if (msgid === COMMAND_LONG || msgid === COMMAND_INT) facts.command = readU16(frame, CMD_ID_OFFSET);
    const deny = (rule: string, reason: string): Outcome => ({ verdict: 'deny', rule, reason, facts });

    const listed = msgid < this.lists.length ? this.lists[msgid] : LIST_UNLISTED;
    if (listed === LIST_DENY) return deny('message-denied', `${facts.name} refused by policy`);
    if (listed !== LIST_ALLOW) return deny('message-not-allowed', `${facts.name} not allowed`);
    if (!this.wellFormed(frame)) return deny('malformed', `malformed ${facts.name}`);

    const rules = this.rulesByMsgid.get(msgid);
    const isCommand = msgid === COMMAND_LONG || msgid === COMMAND_INT;
    const inspect = rules !== undefined || isCommand || msgid === PARAM_SET || msgid === REQUEST_DATA_STREAM || msgid === FILE_TRANSFER_PROTOCOL;
    if (!inspect) return { verdict: 'allow', rule: 'message-allowed', reason: null, facts };

    let msg: MavLinkData | undefined;
    try {
      msg = this.codec.decode(frame);
    } catch {
      msg = undefined;
    }
    if (msg === undefined) return deny('malformed', `undecodable ${facts.name}`);
    fillFacts(facts, msgid, msg, frame);

    if (msgid === FILE_TRANSFER_PROTOCOL && !this.ftpAllowed.has(facts.ftpOpcode ?? -1)) {
      return deny('file-transfer-write', `FTP ${ftpName(facts.ftpOpcode ?? -1)}`);
    }

    let decided: string | null = null;
    let confirmedReason: string | null = null;
    for (const rule of rules ?? []) {
      if (!this.matches(rule, facts, now)) continue;
      if (rule.action === 'deny') return deny(rule.name, rule.reason);
      if (rule.action === 'confirm') {
        if (!this.confirmed(rule, frame, facts, now)) {
          return { verdict: 'confirm', rule: rule.name, reason: rule.reason, facts, confirmS: rule.confirmMs / 1000 };
        }
        confirmedReason = `confirmed: ${rule.reason}`;
      }
      decided = rule.name;
      break;
    }

    if (isCommand) {
      const cmd = facts.command ?? -1;
      if (decided === null && this.policy.commands.default === 'deny') return deny('command-default', `${commandName(cmd)} not allowed`);
      if (!this.takeToken(cmd, now)) return deny('rate-limit', `rate limit ${commandName(cmd)}`);
    }

    let rewritten: Frame | undefined;
    if (msgid === REQUEST_DATA_STREAM || (isCommand && facts.command === MAV_CMD_SET_MESSAGE_INTERVAL)) {
      const capped = this.capStreamRate(msgid, msg);
      if (capped) {
        const out = this.policy.streamRates.action === 'clamp' && !frame.signed ? this.rewrite(frame, msg) : null;
        if (out === null) {
          return deny('stream-rate-cap', frame.signed && this.policy.streamRates.action === 'clamp'
            ? `signed stream request over ${this.policy.streamRates.maxHz} Hz`
            : `stream rate over ${this.policy.streamRates.maxHz} Hz`);
        }
        rewritten = out;
        decided ??= 'stream-rate-cap';
      }
    }

    const rule = decided ?? (isCommand ? 'command-default' : 'message-allowed');
    return { verdict: 'allow', rule, reason: confirmedReason, facts, ...(rewritten ? { frame: rewritten } : {}) };
  }

  private wellFormed(frame: Frame): boolean {
    const dialect = this.codec.dialect;
    const extra = dialect.crcExtra(frame.msgid);
    if (extra < 0 || frame.payloadLength > dialect.maxPayloadLength(frame.msgid)) return false;
    const crcAt = frame.payloadOffset + frame.payloadLength;
    if (frame.bytes.length < crcAt + 2) return false;
    const crc = crc16Byte(crc16(frame.bytes, 1, crcAt), extra);
    return crc === ((frame.bytes[crcAt] as number) | ((frame.bytes[crcAt + 1] as number) << 8));
  }

  private matches(r: CompiledRule, f: Facts, now: number): boolean {
    if (r.commands !== null && (f.command === undefined || !r.commands.has(f.command))) return false;
    for (const [i, values] of r.params) {
      const v = f.params?.[i];
      if (v === undefined || !values.some((want) => want === v || Math.fround(want) === v)) return false;
    }
    if (r.paramGlobs !== null) {
      const id = f.paramId;
      if (id === undefined || !r.paramGlobs.some((re) => re.test(id))) return false;
    }
    // Unknown state matches a refusing rule (assume armed, in the air), never an allowing one.
    const unknownMatches = r.action !== 'allow';
    if (r.armed !== undefined) {
      const a = this.armedAt(now);
      if (a === null ? !unknownMatches : a !== r.armed) return false;
    }
    if (r.inAir !== undefined) {
      const a = this.inAirAt(now);
      if (a === null ? !unknownMatches : a !== r.inAir) return false;
    }
    if (r.modes !== null) {
      const m = this.modeAt(now);
      if (m === null ? !unknownMatches : !r.modes.has(m)) return false;
    }
    return true;
  }

  /**
   * Second of a pair within the window: true (and the pair is used up). A retransmission (COMMAND_LONG
   * confirmation > 0, what a GCS sends when an ack is late) never confirms: only a new send by the operator.
   */
  private confirmed(rule: CompiledRule, frame: Frame, f: Facts, now: number): boolean {
    const key = this.confirmKey(frame);
    const expires = this.pending.get(key);
    const live = expires !== undefined && now <= expires;
    if (live && (f.confirmation ?? 0) === 0) {
      this.pending.delete(key);
      return true;
    }
    if (!live) {
      this.pending.delete(key);
      if (this.pending.size >= MAX_PENDING_CONFIRMATIONS) {
        const oldest = this.pending.keys().next();
        if (!oldest.done) this.pending.delete(oldest.value);
      }
      this.pending.set(key, now + rule.confirmMs);
    }
    return false;
  }

  /** Same sender, same message, same fields (COMMAND_LONG.confirmation aside). */
  private confirmKey(frame: Frame): string {
    const payload = paddedPayload(frame, this.codec.dialect.maxPayloadLength(frame.msgid));
    if (frame.msgid === COMMAND_LONG) payload[COMMAND_LONG_CONFIRMATION_OFFSET] = 0;
    return `${frame.sysid}.${frame.compid}.${frame.msgid}.${payload.toString('hex')}`;
  }

  private takeToken(cmd: number, now: number): boolean {
    const spec = this.rates.get(cmd) ?? this.policy.commands.rateLimit;
    let b = this.buckets.get(cmd);
    if (b === undefined) {
      b = { tokens: spec.burst, atMs: now };
      this.buckets.set(cmd, b);
    } else {
      const elapsed = Math.max(0, now - b.atMs);
      b.tokens = Math.min(spec.burst, b.tokens + (elapsed * spec.perSecond) / 1000);
      b.atMs = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Lowers an over-limit stream request in place; true if it was over the limit. */
  private capStreamRate(msgid: number, msg: MavLinkData): boolean {
    const maxHz = this.policy.streamRates.maxHz;
    if (msgid === REQUEST_DATA_STREAM) {
      const m = msg as common.RequestDataStream;
      if (m.startStop === 0 || m.reqMessageRate <= maxHz) return false;
      m.reqMessageRate = Math.max(1, Math.floor(maxHz));
      return true;
    }
    // SET_MESSAGE_INTERVAL: param2 = interval in us; 0 = default rate, -1 = off, other negatives are invalid.
    const m = msg as common.CommandLong | common.CommandInt;
    const minIntervalUs = Math.ceil(1e6 / maxHz);
    if (!(m._param2 > 0 && m._param2 < minIntervalUs)) return false;
    m._param2 = minIntervalUs;
    return true;
  }

  /** Re-encode with the sender's identity, sequence and MAVLink version; fresh CRC. */
  private rewrite(frame: Frame, msg: MavLinkData): Frame | null {
    const clazz = msg.constructor as MavLinkDataConstructor<MavLinkData>;
    let payload = this.codec.payloadOf(msg);
    if (frame.version === 1) payload = payload.subarray(0, v1Length(clazz));
    const bytes = encodeFrame(this.codec.dialect, { version: frame.version, seq: frame.seq, sysid: frame.sysid, compid: frame.compid, msgid: frame.msgid }, payload);
    return describeFrame(bytes);
  }

  // ---------------------------------------------------------------- verdict out

  private finish(frame: Frame, o: Outcome, now: number): Verdict {
    this.counts.frames++;
    this.counts[o.verdict]++;
    if (o.verdict === 'allow' && o.frame !== undefined) this.counts.rewritten++;
    let rc = this.byRule.get(o.rule);
    if (rc === undefined) {
      rc = { allow: 0, deny: 0, confirm: 0 };
      this.byRule.set(o.rule, rc);
    }
    rc[o.verdict]++;

    const enforce = !this.dryRun;
    const replies = enforce && o.verdict !== 'allow' ? this.safeReplies(o, now) : [];
    if (this.onVerdict) {
      try {
        this.onVerdict(this.record(o));
      } catch {
        this.counts.callbackErrors++;
      }
    }
    if (o.verdict === 'allow') return { action: 'allow', frame: enforce && o.frame ? o.frame : frame, rule: o.rule, rewritten: enforce && o.frame !== undefined };
    const reason = o.reason ?? o.rule;
    if (!enforce) return { action: 'allow', frame, rule: o.rule, rewritten: false, wouldBe: { action: o.verdict, rule: o.rule, reason } };
    return { action: o.verdict, rule: o.rule, reason, replies };
  }

  private record(o: Outcome): VerdictRecord {
    const f = o.facts;
    const frame: VerdictRecord['frame'] = { msgid: f.msgid, name: f.name, sysid: f.sysid, compid: f.compid };
    if (f.targetSystem >= 0) frame.targetSystem = f.targetSystem;
    if (f.targetComponent >= 0) frame.targetComponent = f.targetComponent;
    if (f.command !== undefined) {
      frame.command = f.command;
      frame.commandName = commandName(f.command);
    }
    if (f.params !== undefined) frame.params = f.params.map(jsonNumber);
    if (f.paramId !== undefined) frame.paramId = f.paramId;
    if (f.paramValue !== undefined) frame.paramValue = jsonNumber(f.paramValue);
    if (f.ftpOpcode !== undefined) frame.ftpOpcode = f.ftpOpcode;
    let session: string | null = null;
    try {
      session = this.sessionId();
    } catch {
      session = null;
    }
    return {
      time: new Date(this.wallMs()).toISOString(),
      session,
      frame,
      rule: o.rule,
      verdict: o.verdict,
      reason: o.reason,
      rewritten: o.verdict === 'allow' && o.frame !== undefined,
      dryRun: this.dryRun,
      routine: o.verdict === 'allow' && o.rule === 'message-allowed' && !NOTABLE.has(f.msgid),
    };
  }

  private safeReplies(o: Outcome, now: number): Buffer[] {
    try {
      const out = this.replies(o, now);
      this.counts.repliesSent += out.length;
      return out;
    } catch {
      this.counts.internalErrors++;
      return [];
    }
  }

  private replies(o: Outcome, now: number): Buffer[] {
    const f = o.facts;
    const out: Buffer[] = [];
    const answer = this.policy.replies.answerAs === 'target' ? this.targetWriter(f) : this.companionWriter(f);
    if ((f.msgid === COMMAND_LONG || f.msgid === COMMAND_INT) && f.command !== undefined) {
      const ack = new common.CommandAck();
      ack.command = f.command as common.MavCmd;
      ack.result = (o.verdict === 'confirm' ? MAV_RESULT_TEMPORARILY_REJECTED : MAV_RESULT_DENIED) as common.MavResult;
      ack.progress = 0;
      ack.resultParam2 = 0;
      ack.targetSystem = f.sysid;
      ack.targetComponent = f.compid;
      out.push(answer.encode(ack));
    } else if (f.msgid === PARAM_SET && f.paramId !== undefined) {
      // The unchanged value, as the autopilot last reported it: the GCS shows the write as reverted.
      const known = this.params.get(f.paramId.toUpperCase());
      const toAutopilot = f.targetComponent === 0 || f.targetComponent === this.apCompid;
      if (known && toAutopilot) {
        const pv = new common.ParamValue();
        pv.paramId = known.name;
        pv.paramValue = known.value;
        pv.paramType = known.type as common.MavParamType;
        pv.paramCount = known.count;
        pv.paramIndex = known.index;
        out.push(answer.encode(pv));
      }
    } else if (f.msgid === FILE_TRANSFER_PROTOCOL && f.ftpOpcode !== undefined && f.ftpOpcode !== FTP_NAK) {
      out.push(answer.encode(this.ftpNak(f)));
    }
    if (this.policy.replies.statustext) {
      const last = this.lastStatusMs.get(o.rule);
      if (last !== undefined && now - last < this.policy.replies.statustextMinIntervalMs) {
        this.counts.statustextSuppressed++;
      } else {
        this.lastStatusMs.set(o.rule, now);
        const st = new common.StatusText();
        st.severity = MAV_SEVERITY_WARNING as common.MavSeverity;
        const reason = o.reason ?? o.rule;
        st.text = (o.verdict === 'confirm' ? `mavmq: CONFIRM (resend <${o.confirmS ?? 0}s) ${reason}` : `mavmq: DENIED ${reason}`).slice(0, STATUSTEXT_LENGTH);
        st.id = 0;
        st.chunkSeq = 0;
        out.push(this.companionWriter(f).encode(st));
      }
    }
    return out;
  }

  private ftpNak(f: Facts): common.FileTransferProtocol {
    const nak = new common.FileTransferProtocol();
    nak.targetNetwork = 0;
    nak.targetSystem = f.sysid;
    nak.targetComponent = f.compid;
    const p = new Array<number>(251).fill(0);
    const seq = ((f.ftpSeq ?? 0) + 1) & 0xffff; // a response carries the request's seq + 1
    p[0] = seq & 0xff;
    p[1] = seq >> 8;
    p[2] = f.ftpSession ?? 0;
    p[3] = FTP_NAK;
    p[4] = 1; // size: one error byte
    p[5] = f.ftpOpcode ?? 0; // req_opcode
    p[12] = FTP_ERR_FILE_PROTECTED;
    nak.payload = p;
    return nak;
  }

  private targetWriter(f: Facts): FrameWriter {
    const sysid = f.targetSystem > 0 ? f.targetSystem : this.apSysid > 0 ? this.apSysid : 1;
    const compid = f.targetComponent > 0 ? f.targetComponent : this.apCompid > 0 ? this.apCompid : 1;
    return this.writer(sysid, compid);
  }

  private companionWriter(f: Facts): FrameWriter {
    const sysid = this.apSysid > 0 ? this.apSysid : f.targetSystem > 0 ? f.targetSystem : 1;
    return this.writer(sysid, this.companionCompid);
  }

  private writer(sysid: number, compid: number): FrameWriter {
    const key = (sysid << 8) | compid;
    let w = this.writers.get(key);
    if (w === undefined) {
      if (this.writers.size >= MAX_WRITERS) this.writers.clear();
      w = new FrameWriter(this.codec, sysid, compid);
      this.writers.set(key, w);
    }
    return w;
  }

  // ---------------------------------------------------------------- stats

  stats(): PolicyStats {
    const byRule: Record<string, RuleCounts> = {};
    for (const [k, v] of this.byRule) byRule[k] = { ...v };
    return { dryRun: this.dryRun, ...this.counts, byRule, state: this.state() };
  }
}

function compileRule(r: PolicyRule): CompiledRule {
  const commands = r.command === undefined ? null : new Set(asList(r.command).map((c) => commandId(c) ?? -1));
  const params: [number, number[]][] = [];
  if (r.params) {
    for (let i = 0; i < 7; i++) {
      const v = r.params[`param${i + 1}` as keyof typeof r.params];
      if (v !== undefined) params.push([i, asList(v)]);
    }
  }
  return {
    name: r.name,
    action: r.action,
    reason: r.reason ?? r.name,
    confirmMs: (r.confirmWithinS ?? 5) * 1000,
    commands,
    params,
    paramGlobs: r.param === undefined ? null : r.param.map(globToRegExp),
    armed: r.when?.armed,
    inAir: r.when?.inAir,
    modes: r.when?.mode === undefined ? null : new Set(r.when.mode),
  };
}

function bareFacts(frame: Frame): Facts {
  return { msgid: frame.msgid, name: `MSG_${frame.msgid}`, sysid: frame.sysid, compid: frame.compid, targetSystem: -1, targetComponent: -1 };
}

function fillFacts(f: Facts, msgid: number, msg: MavLinkData, frame: Frame): void {
  if (msgid === COMMAND_LONG) {
    const m = msg as common.CommandLong;
    f.command = m.command;
    f.params = [m._param1, m._param2, m._param3, m._param4, m._param5, m._param6, m._param7];
    f.confirmation = m.confirmation;
  } else if (msgid === COMMAND_INT) {
    const m = msg as common.CommandInt;
    f.command = m.command;
    f.params = [m._param1, m._param2, m._param3, m._param4, m._param5, m._param6, m._param7];
  } else if (msgid === PARAM_SET) {
    const m = msg as common.ParamSet;
    f.paramId = m.paramId.replace(/\0.*$/s, '');
    f.paramValue = m.paramValue;
  } else if (msgid === FILE_TRANSFER_PROTOCOL) {
    f.ftpSeq = payloadByte(frame, FTP_PAYLOAD_OFFSET) | (payloadByte(frame, FTP_PAYLOAD_OFFSET + 1) << 8);
    f.ftpSession = payloadByte(frame, FTP_PAYLOAD_OFFSET + 2);
    f.ftpOpcode = payloadByte(frame, FTP_PAYLOAD_OFFSET + 3);
  }
}

function ftpName(op: number): string {
  const e = Object.entries(FTP_OPCODES).find(([, v]) => v === op);
  return e ? e[0] : `opcode ${op}`;
}

function jsonNumber(v: number): number | string {
  return Number.isFinite(v) ? v : String(v);
}

function v1Length(clazz: MavLinkDataConstructor<MavLinkData>): number {
  let n = 0;
  for (const f of clazz.FIELDS) if (!f.extension) n += f.length === 0 ? f.size : f.length * f.size;
  return n;
}
