import { common, minimal, type MavLinkData } from 'node-mavlink';
import { ardupilotmegaDialect } from '../../src/mavlink/dialect.js';
import { Codec, FrameWriter } from '../../src/mavlink/codec.js';
import { describeFrame, Framer, type Frame } from '../../src/mavlink/framer.js';
import { PolicyEngine, type PolicyEngineOptions, type Verdict, type VerdictRecord } from '../../src/policy/engine.js';
import { defaultPolicy } from '../../src/policy/load.js';
import { policySchema, type Policy, type PolicyInput } from '../../src/policy/schema.js';
import { DEFAULT_POLICY } from '../../src/policy/default-policy.js';

export const dialect = ardupilotmegaDialect();
export const codec = new Codec(dialect);

/** The autopilot (1,1), a GCS (255,190) and a companion (1,191) as senders. */
export const autopilot = new FrameWriter(codec, 1, 1);
export const gcs = new FrameWriter(codec, 255, 190);
export const companionWriter = new FrameWriter(codec, 1, 191);

export function frameOf(msg: MavLinkData, w: FrameWriter = gcs): Frame {
  return describeFrame(w.encode(msg));
}

export class Clock {
  t = 1_000_000;
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface TestEngine {
  engine: PolicyEngine;
  clock: Clock;
  records: VerdictRecord[];
}

export function makeEngine(policy: Policy = defaultPolicy(), opts: Partial<PolicyEngineOptions> = {}): TestEngine {
  const clock = new Clock();
  const records: VerdictRecord[] = [];
  const engine = new PolicyEngine({
    policy, codec, nowMs: clock.now, sessionId: () => 'sess-1', onVerdict: (v) => records.push(v), ...opts,
  });
  return { engine, clock, records };
}

/** The default policy with changes (validated like a file). */
export function policyWith(change: (p: PolicyInput) => void): Policy {
  const input = structuredClone(DEFAULT_POLICY);
  change(input);
  return policySchema.parse(input);
}

export function heartbeat(opts: { armed: boolean; customMode?: number; type?: number; autopilotType?: number }, w: FrameWriter = autopilot): Frame {
  const hb = new minimal.Heartbeat();
  hb.type = (opts.type ?? 2) as minimal.MavType; // QUADROTOR
  hb.autopilot = (opts.autopilotType ?? 3) as minimal.MavAutopilot; // ARDUPILOTMEGA
  hb.baseMode = ((opts.armed ? 128 : 0) | 1) as minimal.MavModeFlag;
  hb.customMode = opts.customMode ?? 0;
  hb.systemStatus = (opts.armed ? 4 : 3) as minimal.MavState;
  hb.mavlinkVersion = 3;
  return frameOf(hb, w);
}

export function extSysState(landedState: number, w: FrameWriter = autopilot): Frame {
  const m = new common.ExtendedSysState();
  m.vtolState = 0 as common.MavVtolState;
  m.landedState = landedState as common.MavLandedState;
  return frameOf(m, w);
}

export const LANDED = { ON_GROUND: 1, IN_AIR: 2, TAKEOFF: 3, LANDING: 4 } as const;

export function disarmedOnGround(e: PolicyEngine): void {
  e.observe(heartbeat({ armed: false }));
  e.observe(extSysState(LANDED.ON_GROUND));
}

export function armedInAir(e: PolicyEngine, customMode = 4): void {
  e.observe(heartbeat({ armed: true, customMode }));
  e.observe(extSysState(LANDED.IN_AIR));
}

export function armedOnGround(e: PolicyEngine): void {
  e.observe(heartbeat({ armed: true }));
  e.observe(extSysState(LANDED.ON_GROUND));
}

export function commandLong(command: number, params: number[] = [], opts: { confirmation?: number; targetSystem?: number; targetComponent?: number } = {}, w: FrameWriter = gcs): Frame {
  const c = new common.CommandLong();
  c.targetSystem = opts.targetSystem ?? 1;
  c.targetComponent = opts.targetComponent ?? 1;
  c.command = command as common.MavCmd;
  c.confirmation = opts.confirmation ?? 0;
  [c._param1, c._param2, c._param3, c._param4, c._param5, c._param6, c._param7] = [0, 1, 2, 3, 4, 5, 6].map((i) => params[i] ?? 0) as [number, number, number, number, number, number, number];
  return frameOf(c, w);
}

export function commandInt(command: number, params: number[] = [], w: FrameWriter = gcs): Frame {
  const c = new common.CommandInt();
  c.targetSystem = 1;
  c.targetComponent = 1;
  c.command = command as common.MavCmd;
  c.frame = 6 as common.MavFrame;
  [c._param1, c._param2, c._param3, c._param4, c._param5, c._param6, c._param7] = [0, 1, 2, 3, 4, 5, 6].map((i) => params[i] ?? 0) as [number, number, number, number, number, number, number];
  return frameOf(c, w);
}

export function paramSet(name: string, value: number, w: FrameWriter = gcs): Frame {
  const m = new common.ParamSet();
  m.targetSystem = 1;
  m.targetComponent = 1;
  m.paramId = name;
  m.paramValue = value;
  m.paramType = 9 as common.MavParamType; // REAL32
  return frameOf(m, w);
}

export function paramValue(name: string, value: number, index = 7, count = 900, w: FrameWriter = autopilot): Frame {
  const m = new common.ParamValue();
  m.paramId = name;
  m.paramValue = value;
  m.paramType = 9 as common.MavParamType;
  m.paramCount = count;
  m.paramIndex = index;
  return frameOf(m, w);
}

/** A MAVLink FTP request with `opcode` (seq, session as given). */
export function ftp(opcode: number, seq = 41, session = 2): Frame {
  const m = new common.FileTransferProtocol();
  m.targetNetwork = 0;
  m.targetSystem = 1;
  m.targetComponent = 1;
  const p = new Array<number>(251).fill(0);
  p[0] = seq & 0xff;
  p[1] = seq >> 8;
  p[2] = session;
  p[3] = opcode;
  p[4] = 4;
  [...Buffer.from('/APM')].forEach((b, i) => (p[12 + i] = b));
  m.payload = p;
  return frameOf(m);
}

export interface Reply {
  name: string;
  sysid: number;
  compid: number;
  msg: MavLinkData;
}

/** Decode reply frames, checking each is a complete, CRC-valid frame. */
export function decodeReplies(replies: readonly Buffer[]): Reply[] {
  return replies.map((bytes) => {
    const framer = new Framer(dialect);
    const frames: Frame[] = [];
    framer.push(bytes, (f) => frames.push(f));
    if (frames.length !== 1 || framer.stats.crcErrors !== 0) throw new Error(`reply is not exactly one valid frame: ${bytes.toString('hex')}`);
    const f = frames[0]!;
    const msg = codec.decode(f);
    if (msg === undefined) throw new Error(`undecodable reply ${f.msgid}`);
    return { name: dialect.messageName(f.msgid), sysid: f.sysid, compid: f.compid, msg };
  });
}

export function denied(v: Verdict): Extract<Verdict, { action: 'deny' | 'confirm' }> {
  if (v.action === 'allow') throw new Error(`expected a refusal, got allow (rule ${v.rule})`);
  return v;
}

export function allowed(v: Verdict): Extract<Verdict, { action: 'allow' }> {
  if (v.action !== 'allow') throw new Error(`expected allow, got ${v.action} (rule ${v.rule}: ${v.reason})`);
  return v;
}
