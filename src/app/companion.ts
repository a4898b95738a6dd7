import { minimal, common } from 'node-mavlink';
import { Codec, FrameWriter } from '../mavlink/codec.js';
import { describeFrame, type Frame } from '../mavlink/framer.js';
import type { Router, RouterPort } from '../mavlink/router.js';
import type { Logger } from '../obs/logger.js';

/**
 * The companion computer's own MAVLink identity: HEARTBEAT as MAV_COMP_ID_ONBOARD_COMPUTER (191),
 * MAV_TYPE_ONBOARD_CONTROLLER, and the message rates this deployment wants from the autopilot.
 * It is a router port like any other: it hears everything and injects its frames via the router.
 */
export interface CompanionOptions {
  router: Router;
  codec: Codec;
  logger: Logger;
  heartbeat: boolean;
  sysid?: number;
  compid: number;
  heartbeatIntervalMs: number;
  /** Message name -> Hz. */
  messageRatesHz: Record<string, number>;
  /** Every frame the companion itself sends (the flight recorder keeps them too). */
  onSend?: (frame: Frame) => void;
  /** How long to wait for a COMMAND_ACK to SET_MESSAGE_INTERVAL before falling back to REQUEST_DATA_STREAM. */
  ackTimeoutMs?: number;
}

export interface AutopilotState {
  sysid: number;
  compid: number;
  autopilot: number;
  type: number;
  baseMode: number;
  customMode: number;
  systemStatus: number;
  armed: boolean;
  lastHeartbeatMs: number;
}

const MAV_TYPE_GCS = 6;
const MAV_TYPE_ONBOARD_CONTROLLER = 18;
const MAV_AUTOPILOT_INVALID = 8;
const MAV_STATE_ACTIVE = 4;
const MAV_MODE_FLAG_SAFETY_ARMED = 128;
const MAV_CMD_SET_MESSAGE_INTERVAL = 511;
const MAV_RESULT_ACCEPTED = 0;

/** REQUEST_DATA_STREAM groups (ArduPilot SRn_*) for the fallback path. */
const STREAM_OF: Record<string, number> = {
  RAW_IMU: 1, SCALED_IMU2: 1, SCALED_PRESSURE: 1, GPS_RAW_INT: 2, SYS_STATUS: 2, MISSION_CURRENT: 2, NAV_CONTROLLER_OUTPUT: 2,
  RC_CHANNELS: 3, SERVO_OUTPUT_RAW: 3, GLOBAL_POSITION_INT: 6, LOCAL_POSITION_NED: 6, ATTITUDE: 10, SIMSTATE: 10,
  VFR_HUD: 11, AHRS: 12, HWSTATUS: 12, BATTERY_STATUS: 12, EXTENDED_SYS_STATE: 12,
};

export class Companion implements RouterPort {
  readonly id = 'companion';
  private writer: FrameWriter | null = null;
  private timer: NodeJS.Timeout | null = null;
  private autopilot: AutopilotState | null = null;
  private pendingAcks = new Map<number, { name: string; hz: number; timer: NodeJS.Timeout }>();
  private ratesRequested = false;

  constructor(private readonly opts: CompanionOptions) {}

  start(signal: AbortSignal): void {
    this.opts.router.addPort(this);
    if (this.opts.heartbeat) {
      this.timer = setInterval(() => this.sendHeartbeat(), this.opts.heartbeatIntervalMs);
      this.timer.unref();
    }
    signal.addEventListener('abort', () => this.stop(), { once: true });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const p of this.pendingAcks.values()) clearTimeout(p.timer);
    this.pendingAcks.clear();
    this.opts.router.removePort(this.id);
  }

  state(): AutopilotState | null {
    return this.autopilot === null ? null : { ...this.autopilot };
  }

  deliver(frame: Frame): void {
    if (frame.msgid === 0) this.onHeartbeat(frame);
    else if (frame.msgid === 77 && this.pendingAcks.size > 0) this.onCommandAck(frame);
  }

  private ensureWriter(): FrameWriter | null {
    if (this.writer) return this.writer;
    const sysid = this.opts.sysid ?? this.autopilot?.sysid;
    if (sysid === undefined) return null;
    this.writer = new FrameWriter(this.opts.codec, sysid, this.opts.compid);
    return this.writer;
  }

  private inject(bytes: Buffer): void {
    const frame = describeFrame(bytes);
    this.opts.router.route(this.id, frame);
    this.opts.onSend?.(frame);
  }

  private sendHeartbeat(): void {
    const w = this.ensureWriter();
    if (!w) return; // until the autopilot's sysid is known (a companion shares its vehicle's sysid)
    const hb = new minimal.Heartbeat();
    hb.type = MAV_TYPE_ONBOARD_CONTROLLER;
    hb.autopilot = MAV_AUTOPILOT_INVALID;
    hb.baseMode = 0 as minimal.MavModeFlag;
    hb.customMode = 0;
    hb.systemStatus = MAV_STATE_ACTIVE;
    hb.mavlinkVersion = 3;
    this.inject(w.encode(hb));
  }

  private onHeartbeat(frame: Frame): void {
    const hb = this.opts.codec.decode<minimal.Heartbeat>(frame);
    if (!hb || hb.type === MAV_TYPE_GCS || hb.autopilot === MAV_AUTOPILOT_INVALID || hb.type === MAV_TYPE_ONBOARD_CONTROLLER) return;
    const first = this.autopilot === null;
    this.autopilot = {
      sysid: frame.sysid, compid: frame.compid, autopilot: hb.autopilot, type: hb.type, baseMode: hb.baseMode,
      customMode: hb.customMode, systemStatus: hb.systemStatus, armed: (hb.baseMode & MAV_MODE_FLAG_SAFETY_ARMED) !== 0,
      lastHeartbeatMs: performance.now(),
    };
    if (first) {
      this.opts.logger.info({ sysid: frame.sysid, compid: frame.compid, autopilot: hb.autopilot }, 'autopilot heard');
      this.sendHeartbeat();
    }
    if (!this.ratesRequested) {
      this.ratesRequested = true;
      this.requestRates();
    }
  }

  private requestRates(): void {
    const w = this.ensureWriter();
    const ap = this.autopilot;
    if (!w || !ap) return;
    const dialect = this.opts.codec.dialect;
    for (const [name, hz] of Object.entries(this.opts.messageRatesHz)) {
      const msgid = dialect.msgidByName(name);
      if (msgid === undefined) {
        this.opts.logger.warn({ message: name }, 'unknown message name in companion.messageRatesHz; skipped');
        continue;
      }
      const cmd = new common.CommandLong();
      cmd.targetSystem = ap.sysid;
      cmd.targetComponent = ap.compid;
      cmd.command = MAV_CMD_SET_MESSAGE_INTERVAL as common.MavCmd;
      cmd._param1 = msgid;
      cmd._param2 = hz <= 0 ? -1 : Math.round(1e6 / hz);
      this.inject(w.encode(cmd));
      const timer = setTimeout(() => {
        this.pendingAcks.delete(msgid);
        this.requestDataStream(name, hz);
      }, this.opts.ackTimeoutMs ?? 1500);
      timer.unref();
      this.pendingAcks.set(msgid, { name, hz, timer });
    }
  }

  private onCommandAck(frame: Frame): void {
    const ack = this.opts.codec.decode<common.CommandAck>(frame);
    if (!ack || ack.command !== (MAV_CMD_SET_MESSAGE_INTERVAL as common.MavCmd)) return;
    // COMMAND_ACK does not say which message it answers; take the oldest pending request.
    const first = this.pendingAcks.entries().next();
    if (first.done) return;
    const [msgid, p] = first.value;
    clearTimeout(p.timer);
    this.pendingAcks.delete(msgid);
    if (ack.result !== (MAV_RESULT_ACCEPTED as common.MavResult)) this.requestDataStream(p.name, p.hz);
  }

  private requestDataStream(name: string, hz: number): void {
    const w = this.ensureWriter();
    const ap = this.autopilot;
    const stream = STREAM_OF[name];
    if (!w || !ap || stream === undefined) {
      this.opts.logger.warn({ message: name }, 'autopilot refused SET_MESSAGE_INTERVAL and no REQUEST_DATA_STREAM group is known');
      return;
    }
    const req = new common.RequestDataStream();
    req.targetSystem = ap.sysid;
    req.targetComponent = ap.compid;
    req.reqStreamId = stream;
    req.reqMessageRate = Math.max(1, Math.round(hz));
    req.startStop = hz > 0 ? 1 : 0;
    this.inject(w.encode(req));
  }
}
