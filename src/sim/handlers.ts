import { common, minimal, type MavLinkData } from 'node-mavlink';
import type { Frame } from '../mavlink/framer.js';
import type { SimChannel } from './channel.js';
import { moveNE } from './geo.js';
import { fromCommandInt, fromCommandLong, handleCommand, type CommandHost, type NormalizedCommand } from './commands.js';
import { fromItemFloat, fromItemInt, type MissionProtocol, type Peer } from './mission.js';
import { CopterMode } from './modes.js';
import { STREAM_GROUPS, type StreamGroup } from './options.js';
import type { ParamEntry, ParamTable } from './params.js';
import { MESSAGE_BY_ID, type TelemetryContext } from './telemetry.js';
import type { SimVehicle } from './vehicle.js';

/** What message handling needs from the core. */
export interface HandlerHost {
  readonly sysid: number;
  readonly compid: number;
  readonly vehicle: SimVehicle;
  readonly params: ParamTable;
  readonly missionProto: MissionProtocol;
  sendTo(ch: SimChannel, msg: MavLinkData): void;
  sendAll(msg: MavLinkData): void;
  /** PARAM_SET from a GCS: set, persist, apply side effects. Undefined for unknown names. */
  setParam(name: string, value: number): ParamEntry | undefined;
  startReboot(): void;
  sendBanner(): void;
  telemetryContext(): TelemetryContext;
}

/** REQUEST_DATA_STREAM ids → SRn groups (ids 1..12 as in MAV_DATA_STREAM). */
const DATA_STREAMS: Record<number, StreamGroup> = {
  1: 'RAW_SENS', 2: 'EXT_STAT', 3: 'RC_CHAN', 4: 'RAW_CTRL', 6: 'POSITION', 10: 'EXTRA1', 11: 'EXTRA2', 12: 'EXTRA3',
};

export function paramValue(entry: ParamEntry, count: number): common.ParamValue {
  const m = new common.ParamValue();
  m.paramId = entry.def.name;
  m.paramValue = entry.value;
  m.paramType = entry.def.type;
  m.paramCount = count;
  m.paramIndex = entry.index;
  return m;
}

/** True when a message is addressed to us (or broadcast), or carries no target at all. */
export function targetsUs(msg: MavLinkData, sysid: number, compid: number): boolean {
  const t = msg as Partial<Record<'targetSystem' | 'targetComponent', unknown>>;
  if (typeof t.targetSystem === 'number' && t.targetSystem !== 0 && t.targetSystem !== sysid) return false;
  if (typeof t.targetComponent === 'number' && t.targetComponent !== 0 && t.targetComponent !== compid) return false;
  return true;
}

/** Handles one decoded message from a GCS on link `ch`. `nowMs` is real time. */
export function dispatch(host: HandlerHost, ch: SimChannel, frame: Frame, msg: MavLinkData, nowMs: number): void {
  if (!targetsUs(msg, host.sysid, host.compid)) return;
  const peer: Peer = { channelId: ch.id, sysid: frame.sysid, compid: frame.compid };
  const mp = host.missionProto;
  switch (frame.msgid) {
    case common.CommandLong.MSG_ID:
      return runCommand(host, ch, peer, fromCommandLong(msg as common.CommandLong));
    case common.CommandInt.MSG_ID:
      return runCommand(host, ch, peer, fromCommandInt(msg as common.CommandInt));
    case common.SetMode.MSG_ID: {
      const m = msg as common.SetMode;
      const result = (m.baseMode & minimal.MavModeFlag.CUSTOM_MODE_ENABLED) !== 0 ? host.vehicle.setMode(m.customMode) : common.MavResult.UNSUPPORTED;
      return host.sendTo(ch, commandAck(peer, common.MavCmd.DO_SET_MODE, result));
    }
    case common.ParamRequestList.MSG_ID:
      ch.paramCursor = 0;
      ch.paramCredit = 1;
      return;
    case common.ParamRequestRead.MSG_ID: {
      const m = msg as common.ParamRequestRead;
      const entry = m.paramIndex >= 0 ? host.params.byIndex(m.paramIndex) : host.params.byName(m.paramId);
      if (entry !== undefined) host.sendTo(ch, paramValue(entry, host.params.count));
      return;
    }
    case common.ParamSet.MSG_ID: {
      const m = msg as common.ParamSet;
      const entry = host.setParam(m.paramId, m.paramValue);
      if (entry !== undefined) host.sendAll(paramValue(entry, host.params.count));
      return;
    }
    case common.RequestDataStream.MSG_ID:
      return requestDataStream(host, ch, msg as common.RequestDataStream);
    case common.MissionCount.MSG_ID:
      return mp.handleCount(peer, msg as common.MissionCount, nowMs);
    case common.MissionItemInt.MSG_ID:
      return mp.handleItem(peer, fromItemInt(msg as common.MissionItemInt), nowMs);
    case common.MissionItem.MSG_ID:
      return mp.handleItem(peer, fromItemFloat(msg as common.MissionItem), nowMs);
    case common.MissionRequestList.MSG_ID:
      return mp.handleRequestList(peer, (msg as common.MissionRequestList).missionType);
    case common.MissionRequestInt.MSG_ID: {
      const m = msg as common.MissionRequestInt;
      return mp.handleRequest(peer, m.seq, m.missionType, true);
    }
    case common.MissionRequest.MSG_ID: {
      const m = msg as common.MissionRequest;
      return mp.handleRequest(peer, m.seq, m.missionType, false);
    }
    case common.MissionClearAll.MSG_ID:
      return mp.handleClearAll(peer, (msg as common.MissionClearAll).missionType);
    case common.MissionAck.MSG_ID:
      return mp.handleAck(peer, (msg as common.MissionAck).missionType);
    case common.MissionSetCurrent.MSG_ID:
      host.vehicle.auto.setCurrent((msg as common.MissionSetCurrent).seq, host.vehicle);
      return;
    case common.SetPositionTargetGlobalInt.MSG_ID:
      return positionTarget(host.vehicle, msg as common.SetPositionTargetGlobalInt);
    case common.SetPositionTargetLocalNed.MSG_ID:
      return localPositionTarget(host.vehicle, msg as common.SetPositionTargetLocalNed);
    case common.TimeSync.MSG_ID:
      return timesync(host, ch, peer, msg as common.TimeSync);
    default:
      return;
  }
}

function commandAck(peer: Peer, command: number, result: common.MavResult): common.CommandAck {
  const ack = new common.CommandAck();
  ack.command = command;
  ack.result = result;
  ack.targetSystem = peer.sysid;
  ack.targetComponent = peer.compid;
  return ack;
}

function runCommand(host: HandlerHost, ch: SimChannel, peer: Peer, cmd: NormalizedCommand): void {
  const after: Array<() => void> = [];
  const ctx = host.telemetryContext();
  const cmdHost: CommandHost = {
    vehicle: host.vehicle,
    setMessageInterval: (msgid, us) => ch.streams.setInterval(msgid, us),
    requestMessage: (msgid) => {
      const spec = MESSAGE_BY_ID.get(msgid);
      const m = spec?.build(ctx);
      if (m === undefined) return false;
      after.push(() => host.sendTo(ch, m));
      return true;
    },
    reportMessageInterval: (msgid) => {
      const spec = MESSAGE_BY_ID.get(msgid);
      const mi = new common.MessageInterval();
      mi.messageId = msgid;
      const ms = spec === undefined ? 0 : ch.streams.intervalMs(spec);
      mi.intervalUs = spec === undefined ? 0 : ms <= 0 ? -1 : Math.round(ms * 1000);
      after.push(() => host.sendTo(ch, mi));
    },
    reboot: () => after.push(() => host.startReboot()),
    sendBanner: () => after.push(() => host.sendBanner()),
  };
  const result = handleCommand(cmd, cmdHost);
  host.sendTo(ch, commandAck(peer, cmd.command, result));
  for (const fn of after) fn();
}

function requestDataStream(host: HandlerHost, ch: SimChannel, m: common.RequestDataStream): void {
  let hz: number;
  if (m.startStop === 0) hz = 0;
  else if (m.reqMessageRate > 0) hz = Math.min(m.reqMessageRate, 50);
  else return;
  // MAV_DATA_STREAM_ALL sets every group below PARAMS, as ArduPilot does.
  const groups = m.reqStreamId === 0 ? STREAM_GROUPS.slice(0, STREAM_GROUPS.indexOf('PARAMS')) : [DATA_STREAMS[m.reqStreamId]];
  for (const g of groups) if (g !== undefined) host.setParam(`SR${ch.slot}_${g}`, hz);
}

/** GUIDED position/velocity targets; ignored in other modes, as ArduPilot does. */
function positionTarget(v: SimVehicle, m: common.SetPositionTargetGlobalInt): void {
  if (v.mode !== CopterMode.GUIDED) return;
  const mask = m.typeMask;
  const T = common.PositionTargetTypemask;
  const posIgnored = (mask & (T.X_IGNORE | T.Y_IGNORE | T.Z_IGNORE)) === (T.X_IGNORE | T.Y_IGNORE | T.Z_IGNORE);
  const velIgnored = (mask & (T.VX_IGNORE | T.VY_IGNORE | T.VZ_IGNORE)) === (T.VX_IGNORE | T.VY_IGNORE | T.VZ_IGNORE);
  const yaw = (mask & T.YAW_IGNORE) === 0 ? m.yaw : undefined;
  if (!posIgnored) {
    const absolute = m.coordinateFrame === common.MavFrame.GLOBAL_INT || m.coordinateFrame === common.MavFrame.GLOBAL;
    const alt = (mask & T.Z_IGNORE) !== 0 ? v.k.alt : absolute ? m.alt : v.home.alt + m.alt;
    const lat = (mask & T.X_IGNORE) !== 0 ? v.k.lat : m.latInt / 1e7;
    const lon = (mask & T.Y_IGNORE) !== 0 ? v.k.lon : m.lonInt / 1e7;
    v.guidedGoto(lat, lon, alt, yaw);
  } else if (!velIgnored) {
    v.guidedVelocity(m.vx, m.vy, m.vz);
  }
}

/** Frames of SET_POSITION_TARGET_LOCAL_NED (plain numbers: the field is typed as an enum). */
const LOCAL_NED = 1;
const LOCAL_OFFSET_NED = 7;
const BODY_NED = 8;
const BODY_OFFSET_NED = 9;

/**
 * SET_POSITION_TARGET_LOCAL_NED in GUIDED: LOCAL_NED positions are from home (the EKF origin),
 * LOCAL_OFFSET_NED from the vehicle, BODY_* rotated by its yaw (QGC's "change altitude" uses this).
 */
function localPositionTarget(v: SimVehicle, m: common.SetPositionTargetLocalNed): void {
  if (v.mode !== CopterMode.GUIDED) return;
  const frame = m.coordinateFrame as number;
  if (frame !== LOCAL_NED && frame !== LOCAL_OFFSET_NED && frame !== BODY_NED && frame !== BODY_OFFSET_NED) return;
  const T = common.PositionTargetTypemask;
  const mask = m.typeMask;
  const posIgnored = (mask & (T.X_IGNORE | T.Y_IGNORE | T.Z_IGNORE)) === (T.X_IGNORE | T.Y_IGNORE | T.Z_IGNORE);
  const velIgnored = (mask & (T.VX_IGNORE | T.VY_IGNORE | T.VZ_IGNORE)) === (T.VX_IGNORE | T.VY_IGNORE | T.VZ_IGNORE);
  const body = frame === BODY_NED || frame === BODY_OFFSET_NED;
  const rotate = (fwd: number, right: number): [number, number] =>
    body ? [fwd * Math.cos(v.k.yaw) - right * Math.sin(v.k.yaw), fwd * Math.sin(v.k.yaw) + right * Math.cos(v.k.yaw)] : [fwd, right];
  const yaw = (mask & T.YAW_IGNORE) === 0 ? m.yaw : undefined;
  if (!posIgnored) {
    const x = (mask & T.X_IGNORE) !== 0 ? 0 : m.x;
    const y = (mask & T.Y_IGNORE) !== 0 ? 0 : m.y;
    const [north, east] = rotate(x, y);
    if (frame === LOCAL_NED) {
      const p = moveNE(v.home, north, east);
      const alt = (mask & T.Z_IGNORE) !== 0 ? v.k.alt : v.home.alt - m.z;
      v.guidedGoto((mask & T.X_IGNORE) !== 0 ? v.k.lat : p.lat, (mask & T.Y_IGNORE) !== 0 ? v.k.lon : p.lon, alt, yaw);
    } else {
      const p = moveNE(v.k, north, east);
      v.guidedGoto(p.lat, p.lon, v.k.alt - ((mask & T.Z_IGNORE) !== 0 ? 0 : m.z), yaw);
    }
  } else if (!velIgnored) {
    const [vn, ve] = rotate(m.vx, m.vy);
    v.guidedVelocity(vn, ve, m.vz);
  }
}

function timesync(host: HandlerHost, ch: SimChannel, peer: Peer, m: common.TimeSync): void {
  if (BigInt(m.tc1) !== 0n) return; // a reply to someone's request, not a request
  const r = new common.TimeSync();
  r.tc1 = BigInt(Math.round(host.vehicle.timeBootMs * 1e6));
  r.ts1 = m.ts1;
  r.targetSystem = peer.sysid;
  r.targetComponent = peer.compid;
  host.sendTo(ch, r);
}
