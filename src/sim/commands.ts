import { common, minimal } from 'node-mavlink';
import { MAV_CMD, MAV_FRAME } from './mav.js';
import { CopterMode } from './modes.js';
import { FORCE_ARM_MAGIC, type SimVehicle } from './vehicle.js';

const C = MAV_CMD;
const R = common.MavResult;

/** COMMAND_LONG and COMMAND_INT reduced to one shape. lat/lon in degrees (NaN = not given). */
export interface NormalizedCommand {
  command: number;
  p1: number;
  p2: number;
  p3: number;
  p4: number;
  lat: number;
  lon: number;
  alt: number;
  frame: number;
  isInt: boolean;
}

export function fromCommandLong(m: common.CommandLong): NormalizedCommand {
  return {
    command: m.command, p1: m._param1, p2: m._param2, p3: m._param3, p4: m._param4,
    lat: m._param5, lon: m._param6, alt: m._param7, frame: MAV_FRAME.GLOBAL_RELATIVE_ALT, isInt: false,
  };
}

export function fromCommandInt(m: common.CommandInt): NormalizedCommand {
  return {
    command: m.command, p1: m._param1, p2: m._param2, p3: m._param3, p4: m._param4,
    lat: m._param5 / 1e7, lon: m._param6 / 1e7, alt: m._param7, frame: m.frame, isInt: true,
  };
}

/** What command handling needs beyond the vehicle: the requesting link's streams, reboot, replies. */
export interface CommandHost {
  readonly vehicle: SimVehicle;
  setMessageInterval(msgid: number, intervalUs: number): boolean;
  /** Queue a message (by id) to the requesting link, sent after the COMMAND_ACK. False if we cannot build it. */
  requestMessage(msgid: number): boolean;
  /** Send MESSAGE_INTERVAL for msgid to the requesting link, after the ACK. */
  reportMessageInterval(msgid: number): void;
  /** Reboot after the ACK has gone out. */
  reboot(): void;
  sendBanner(): void;
}

/** Altitude AMSL for a command's altitude in its frame (relative frames are above home). */
function altAmsl(cmd: NormalizedCommand, v: SimVehicle): number {
  if (!Number.isFinite(cmd.alt)) return v.k.alt;
  const absolute = cmd.frame === MAV_FRAME.GLOBAL || cmd.frame === MAV_FRAME.GLOBAL_INT;
  return absolute ? cmd.alt : v.home.alt + cmd.alt;
}

/** Executes a command; the caller sends COMMAND_ACK with the result. */
export function handleCommand(cmd: NormalizedCommand, host: CommandHost): common.MavResult {
  const v = host.vehicle;
  switch (cmd.command) {
    case C.COMPONENT_ARM_DISARM:
      if (cmd.p1 === 1) return v.arm(cmd.p2 === FORCE_ARM_MAGIC);
      if (cmd.p1 === 0) return v.disarm(cmd.p2 === FORCE_ARM_MAGIC);
      return R.UNSUPPORTED;
    case C.DO_SET_MODE:
      if ((Math.round(cmd.p1) & minimal.MavModeFlag.CUSTOM_MODE_ENABLED) === 0) return R.UNSUPPORTED;
      return v.setMode(Math.round(cmd.p2));
    case C.NAV_TAKEOFF:
      return v.takeoff(cmd.alt);
    case C.NAV_LAND:
      return v.setMode(CopterMode.LAND);
    case C.NAV_RETURN_TO_LAUNCH:
      return v.setMode(CopterMode.RTL);
    case C.NAV_LOITER_UNLIM:
      return v.setMode(CopterMode.LOITER);
    case C.MISSION_START:
      if (v.setMode(CopterMode.AUTO) !== R.ACCEPTED) return R.FAILED;
      if (v.armed) v.auto.start(v);
      return R.ACCEPTED;
    case C.DO_SET_MISSION_CURRENT:
      return v.auto.setCurrent(Math.round(cmd.p1), v, cmd.p2 === 1) ? R.ACCEPTED : R.DENIED;
    case C.DO_REPOSITION:
      return reposition(cmd, v);
    case C.DO_CHANGE_SPEED:
      return cmd.p2 === -1 ? R.ACCEPTED : v.changeSpeed(cmd.p2);
    case C.DO_SET_HOME:
      if (cmd.p1 === 1) {
        if (!v.gpsFix) return R.FAILED;
        v.setHome(v.k.lat, v.k.lon, v.k.alt);
        return R.ACCEPTED;
      }
      if (!validLatLon(cmd.lat, cmd.lon)) return R.DENIED;
      v.setHome(cmd.lat, cmd.lon, Number.isFinite(cmd.alt) ? cmd.alt : v.home.alt);
      return R.ACCEPTED;
    case C.PREFLIGHT_REBOOT_SHUTDOWN:
      if (v.armed) return R.FAILED;
      if (cmd.p1 !== 1 && cmd.p1 !== 3) return R.UNSUPPORTED;
      host.reboot();
      return R.ACCEPTED;
    case C.SET_MESSAGE_INTERVAL:
      return host.setMessageInterval(Math.round(cmd.p1), cmd.p2) ? R.ACCEPTED : R.DENIED;
    case C.GET_MESSAGE_INTERVAL:
      host.reportMessageInterval(Math.round(cmd.p1));
      return R.ACCEPTED;
    case C.REQUEST_MESSAGE:
      return host.requestMessage(Math.round(cmd.p1)) ? R.ACCEPTED : R.FAILED;
    case C.REQUEST_AUTOPILOT_CAPABILITIES:
      if (cmd.p1 !== 1) return R.ACCEPTED;
      return host.requestMessage(148) ? R.ACCEPTED : R.FAILED;
    case C.GET_HOME_POSITION:
      return host.requestMessage(common.HomePosition.MSG_ID) ? R.ACCEPTED : R.FAILED;
    case C.DO_SEND_BANNER:
      host.sendBanner();
      return R.ACCEPTED;
    default:
      return R.UNSUPPORTED;
  }
}

function validLatLon(lat: number, lon: number): boolean {
  return Number.isFinite(lat) && Number.isFinite(lon) && Math.abs(lat) <= 90 && Math.abs(lon) <= 180 && !(lat === 0 && lon === 0);
}

/** MAV_CMD_DO_REPOSITION: fly there in GUIDED (switching to GUIDED only when param2 bit 0 asks). */
function reposition(cmd: NormalizedCommand, v: SimVehicle): common.MavResult {
  if (v.mode !== CopterMode.GUIDED) {
    if ((Math.round(cmd.p2) & 1) === 0) return R.DENIED;
    if (v.setMode(CopterMode.GUIDED) !== R.ACCEPTED) return R.FAILED;
  }
  const keep = !Number.isFinite(cmd.lat) || !Number.isFinite(cmd.lon);
  if (!keep && !validLatLon(cmd.lat, cmd.lon)) return R.DENIED;
  const lat = keep ? v.k.lat : cmd.lat;
  const lon = keep ? v.k.lon : cmd.lon;
  if (cmd.p1 > 0) v.changeSpeed(cmd.p1);
  const yaw = Number.isFinite(cmd.p4) ? (cmd.p4 * Math.PI) / 180 : undefined;
  return v.guidedGoto(lat, lon, altAmsl(cmd, v), yaw);
}
