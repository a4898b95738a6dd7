import { ardupilotmega, common, minimal, standard, type MavLinkData } from 'node-mavlink';
import { bearingRad, distanceM, I16, I32, intField, offsetNE, toE7, U16, U32, wrap2Pi } from './geo.js';
import { modeIsGuidedFlag } from './modes.js';
import type { StreamGroup } from './options.js';
import type { SimVehicle } from './vehicle.js';

/** What a message builder may look at. */
export interface TelemetryContext {
  vehicle: SimVehicle;
  /** Wall-clock time (ms since the epoch) for SYSTEM_TIME. */
  wallClockMs: number;
  sysid: number;
}

export interface MessageSpec {
  readonly id: number;
  readonly name: string;
  /** The SRn stream group that sets its default rate; null = its own default rate (or request only). */
  readonly group: StreamGroup | null;
  /** Default rate in Hz for group-less messages. */
  readonly defaultHz?: number;
  build(ctx: TelemetryContext): MavLinkData | undefined;
}

const RAD2DEG = 180 / Math.PI;
const SENSORS = common.MavSysStatusSensor;
const PRESENT_SENSORS = SENSORS.SENSOR_3D_GYRO | SENSORS.SENSOR_3D_ACCEL | SENSORS.SENSOR_3D_MAG | SENSORS.SENSOR_ABSOLUTE_PRESSURE
  | SENSORS.SENSOR_GPS | SENSORS.SENSOR_ANGULAR_RATE_CONTROL | SENSORS.SENSOR_ATTITUDE_STABILIZATION | SENSORS.SENSOR_YAW_POSITION
  | SENSORS.SENSOR_Z_ALTITUDE_CONTROL | SENSORS.SENSOR_XY_POSITION_CONTROL | SENSORS.SENSOR_MOTOR_OUTPUTS | SENSORS.AHRS
  | SENSORS.SENSOR_BATTERY | SENSORS.PREARM_CHECK;

/** ArduCopter 4.5.7 (official), as AUTOPILOT_VERSION encodes it. */
export const FLIGHT_SW_VERSION = (4 << 24) | (5 << 16) | (7 << 8) | 255;
export const CAPABILITIES = standard.MavProtocolCapability.MAVLINK2 | standard.MavProtocolCapability.MISSION_FLOAT
  | standard.MavProtocolCapability.PARAM_FLOAT | standard.MavProtocolCapability.MISSION_INT | standard.MavProtocolCapability.COMMAND_INT
  | standard.MavProtocolCapability.SET_POSITION_TARGET_GLOBAL_INT | standard.MavProtocolCapability.SET_POSITION_TARGET_LOCAL_NED
  | standard.MavProtocolCapability.MISSION_FENCE
  | standard.MavProtocolCapability.MISSION_RALLY;

export function heartbeat(v: SimVehicle): minimal.Heartbeat {
  const m = new minimal.Heartbeat();
  m.type = minimal.MavType.QUADROTOR;
  m.autopilot = minimal.MavAutopilot.ARDUPILOTMEGA;
  const F = minimal.MavModeFlag;
  let base = F.CUSTOM_MODE_ENABLED | F.STABILIZE_ENABLED | F.MANUAL_INPUT_ENABLED;
  if (modeIsGuidedFlag(v.mode)) base |= F.GUIDED_ENABLED;
  if (v.armed) base |= F.SAFETY_ARMED;
  m.baseMode = base;
  m.customMode = v.mode;
  m.systemStatus = v.failsafe ? minimal.MavState.CRITICAL : v.k.onGround ? minimal.MavState.STANDBY : minimal.MavState.ACTIVE;
  m.mavlinkVersion = 3;
  return m;
}

export function statusText(severity: common.MavSeverity, text: string): common.StatusText {
  const m = new common.StatusText();
  m.severity = severity;
  m.text = text.slice(0, 50);
  return m;
}

export function autopilotVersion(sysid: number): standard.AutopilotVersion {
  const m = new standard.AutopilotVersion();
  // node-mavlink types uint64 enum fields as the enum, but serializes them with writeBigUInt64LE.
  m.capabilities = BigInt(CAPABILITIES) as unknown as standard.MavProtocolCapability;
  m.flightSwVersion = FLIGHT_SW_VERSION;
  m.middlewareSwVersion = 0;
  m.osSwVersion = 0;
  m.boardVersion = 50 << 16;
  m.flightCustomVersion = [...Buffer.from('6d6d7173', 'ascii')].concat([0, 0, 0, 0]).slice(0, 8);
  m.middlewareCustomVersion = [0, 0, 0, 0, 0, 0, 0, 0];
  m.osCustomVersion = [0, 0, 0, 0, 0, 0, 0, 0];
  m.vendorId = 0x1209;
  m.productId = 0x5741;
  m.uid = BigInt(0x5349_4d00 + sysid);
  return m;
}

export function homePosition(v: SimVehicle): common.HomePosition {
  const m = new common.HomePosition();
  m.latitude = toE7(v.home.lat);
  m.longitude = toE7(v.home.lon);
  m.altitude = intField(v.home.alt * 1000, ...I32);
  m.x = 0;
  m.y = 0;
  m.z = 0;
  m.q = [1, 0, 0, 0];
  m.approachX = 0;
  m.approachY = 0;
  m.approachZ = 0;
  m.timeUsec = BigInt(Math.round(v.timeBootMs * 1000));
  return m;
}

export function missionCurrent(v: SimVehicle): common.MissionCurrent {
  const m = new common.MissionCurrent();
  m.seq = intField(v.auto.current, ...U16);
  m.total = v.auto.total();
  m.missionState = v.auto.missionState(v.mode === 3);
  m.missionMode = v.mode === 3 ? 1 : 2;
  return m;
}

function sysStatus(v: SimVehicle): common.SysStatus {
  const m = new common.SysStatus();
  let health = PRESENT_SENSORS;
  if (!v.gpsFix) health &= ~(SENSORS.SENSOR_GPS | SENSORS.SENSOR_XY_POSITION_CONTROL);
  if (v.prearmFailures().length > 0) health &= ~SENSORS.PREARM_CHECK;
  m.onboardControlSensorsPresent = PRESENT_SENSORS;
  m.onboardControlSensorsEnabled = PRESENT_SENSORS;
  m.onboardControlSensorsHealth = health >>> 0;
  m.load = 150;
  m.voltageBattery = intField(v.battery.voltage * 1000, ...U16);
  m.currentBattery = intField(v.battery.currentA * 100, ...I16);
  m.batteryRemaining = intField(v.battery.remainingPct, 0, 100);
  return m;
}

function gpsRawInt(v: SimVehicle): common.GpsRawInt {
  const m = new common.GpsRawInt();
  const gs = Math.hypot(v.k.vn, v.k.ve);
  m.timeUsec = BigInt(Math.round(v.timeBootMs * 1000));
  m.fixType = v.gpsFix ? common.GpsFixType.GPS_FIX_TYPE_3D_FIX : common.GpsFixType.NO_FIX;
  m.lat = v.gpsFix ? toE7(v.k.lat) : 0;
  m.lon = v.gpsFix ? toE7(v.k.lon) : 0;
  m.alt = v.gpsFix ? intField(v.k.alt * 1000, ...I32) : 0;
  m.eph = v.gpsFix ? 80 : 0xffff;
  m.epv = v.gpsFix ? 120 : 0xffff;
  m.vel = intField(gs * 100, ...U16);
  m.cog = gs > 0.5 ? intField(wrap2Pi(Math.atan2(v.k.ve, v.k.vn)) * RAD2DEG * 100, 0, 35999) : 0xffff;
  m.satellitesVisible = v.gpsFix ? 10 : 0;
  return m;
}

function globalPositionInt(v: SimVehicle): common.GlobalPositionInt {
  const m = new common.GlobalPositionInt();
  m.timeBootMs = intField(v.timeBootMs, ...U32);
  m.lat = v.gpsFix ? toE7(v.k.lat) : 0;
  m.lon = v.gpsFix ? toE7(v.k.lon) : 0;
  m.alt = intField(v.k.alt * 1000, ...I32);
  m.relativeAlt = intField(v.relativeAlt * 1000, ...I32);
  m.vx = intField(v.k.vn * 100, ...I16);
  m.vy = intField(v.k.ve * 100, ...I16);
  m.vz = intField(v.k.vd * 100, ...I16);
  m.hdg = intField(wrap2Pi(v.k.yaw) * RAD2DEG * 100, 0, 35999);
  return m;
}

function localPositionNed(v: SimVehicle): common.LocalPositionNed {
  const m = new common.LocalPositionNed();
  const { north, east } = offsetNE(v.home, v.k);
  m.timeBootMs = intField(v.timeBootMs, ...U32);
  m.x = north;
  m.y = east;
  m.z = -v.relativeAlt;
  m.vx = v.k.vn;
  m.vy = v.k.ve;
  m.vz = v.k.vd;
  return m;
}

function attitude(v: SimVehicle): common.Attitude {
  const m = new common.Attitude();
  m.timeBootMs = intField(v.timeBootMs, ...U32);
  m.roll = v.k.roll;
  m.pitch = v.k.pitch;
  m.yaw = v.k.yaw;
  m.rollspeed = v.k.rollRate;
  m.pitchspeed = v.k.pitchRate;
  m.yawspeed = v.k.yawRate;
  return m;
}

function vfrHud(v: SimVehicle): common.VfrHud {
  const m = new common.VfrHud();
  const gs = Math.hypot(v.k.vn, v.k.ve);
  m.airspeed = gs;
  m.groundspeed = gs;
  m.heading = intField(wrap2Pi(v.k.yaw) * RAD2DEG, 0, 359);
  m.throttle = intField(v.throttle * 100, 0, 100);
  m.alt = v.k.alt;
  m.climb = -v.k.vd;
  return m;
}

function batteryStatus(v: SimVehicle): common.BatteryStatus {
  const m = new common.BatteryStatus();
  const b = v.battery;
  m.id = 0;
  m.batteryFunction = common.MavBatteryFunction.UNKNOWN;
  m.type = common.MavBatteryType.LIPO;
  m.temperature = 0x7fff;
  m.voltages = [intField(b.voltage * 1000, 0, 0xfffe), ...new Array<number>(9).fill(0xffff)];
  m.currentBattery = intField(b.currentA * 100, ...I16);
  m.currentConsumed = intField(b.consumedMah, ...I32);
  m.energyConsumed = intField(b.energyJ / 100, ...I32);
  m.batteryRemaining = intField(b.remainingPct, 0, 100);
  m.timeRemaining = intField(b.timeRemainingS, ...I32);
  m.chargeState = common.MavBatteryChargeState.OK;
  m.voltagesExt = [0, 0, 0, 0];
  return m;
}

function extendedSysState(v: SimVehicle): common.ExtendedSysState {
  const m = new common.ExtendedSysState();
  m.vtolState = common.MavVtolState.UNDEFINED;
  m.landedState = v.landedState;
  return m;
}

function rawImu(v: SimVehicle): common.RawImu {
  const m = new common.RawImu();
  const { roll, pitch, yaw } = v.k;
  m.timeUsec = BigInt(Math.round(v.timeBootMs * 1000));
  m.xacc = intField(1000 * Math.sin(pitch), ...I16);
  m.yacc = intField(-1000 * Math.sin(roll) * Math.cos(pitch), ...I16);
  m.zacc = intField(-1000 * Math.cos(roll) * Math.cos(pitch), ...I16);
  m.xgyro = intField(v.k.rollRate * 1000, ...I16);
  m.ygyro = intField(v.k.pitchRate * 1000, ...I16);
  m.zgyro = intField(v.k.yawRate * 1000, ...I16);
  m.xmag = intField(220 * Math.cos(yaw), ...I16);
  m.ymag = intField(-220 * Math.sin(yaw), ...I16);
  m.zmag = -420;
  m.id = 0;
  m.temperature = 4500;
  return m;
}

function scaledPressure(v: SimVehicle): common.ScaledPressure {
  const m = new common.ScaledPressure();
  m.timeBootMs = intField(v.timeBootMs, ...U32);
  m.pressAbs = 1013.25 * Math.pow(1 - 2.25577e-5 * v.k.alt, 5.25588);
  m.pressDiff = 0;
  m.temperature = 2500;
  return m;
}

function servoOutputRaw(v: SimVehicle): common.ServoOutputRaw {
  const m = new common.ServoOutputRaw();
  m.timeUsec = Math.round(v.timeBootMs * 1000) % 0x1_0000_0000;
  m.port = 0;
  const pwm = v.armed ? 1000 + 1000 * v.throttle : 1000;
  const dr = v.k.roll * 200;
  const dp = v.k.pitch * 200;
  // Quad X motor order (ArduPilot): 1 front-right, 2 back-left, 3 front-left, 4 back-right.
  m.servo1Raw = intField(pwm - dr + dp, 1000, 2000);
  m.servo2Raw = intField(pwm + dr - dp, 1000, 2000);
  m.servo3Raw = intField(pwm + dr + dp, 1000, 2000);
  m.servo4Raw = intField(pwm - dr - dp, 1000, 2000);
  return m;
}

function rcChannels(v: SimVehicle): common.RcChannels {
  const m = new common.RcChannels();
  m.timeBootMs = intField(v.timeBootMs, ...U32);
  m.chancount = 16;
  const values = [1500, 1500, 1000, 1500, 1800, 1000, 1000, 1000, 1500, 1500, 1500, 1500, 1500, 1500, 1500, 1500];
  values.forEach((val, i) => ((m as unknown as Record<string, number>)[`chan${i + 1}Raw`] = val));
  m.chan17Raw = 0xffff;
  m.chan18Raw = 0xffff;
  m.rssi = 255;
  return m;
}

function systemTime(v: SimVehicle, wallClockMs: number): common.SystemTime {
  const m = new common.SystemTime();
  m.timeUnixUsec = BigInt(Math.round(wallClockMs)) * 1000n;
  m.timeBootMs = intField(v.timeBootMs, ...U32);
  return m;
}

function ekfStatus(v: SimVehicle): ardupilotmega.EkfStatusReport {
  const m = new ardupilotmega.EkfStatusReport();
  const E = ardupilotmega.EkfStatusFlags;
  m.flags = v.gpsFix
    ? E.ATTITUDE | E.VELOCITY_HORIZ | E.VELOCITY_VERT | E.POS_HORIZ_REL | E.POS_HORIZ_ABS | E.POS_VERT_ABS | E.PRED_POS_HORIZ_REL | E.PRED_POS_HORIZ_ABS
    : E.ATTITUDE | E.VELOCITY_VERT | E.POS_VERT_ABS | E.CONST_POS_MODE;
  m.velocityVariance = 0.02;
  m.posHorizVariance = 0.01;
  m.posVertVariance = 0.02;
  m.compassVariance = 0.01;
  m.terrainAltVariance = 0;
  m.airspeedVariance = 0;
  return m;
}

function vibration(v: SimVehicle): common.Vibration {
  const m = new common.Vibration();
  const level = v.armed ? 3 : 0.05;
  m.timeUsec = BigInt(Math.round(v.timeBootMs * 1000));
  m.vibrationX = level;
  m.vibrationY = level;
  m.vibrationZ = level * 1.5;
  return m;
}

function navControllerOutput(v: SimVehicle): common.NavControllerOutput {
  const m = new common.NavControllerOutput();
  const t = v.navTarget();
  m.navRoll = v.k.roll * RAD2DEG;
  m.navPitch = v.k.pitch * RAD2DEG;
  const bearing = t === undefined ? v.k.yaw : bearingRad(v.k, t);
  m.navBearing = intField(wrap2Pi(v.k.yaw) * RAD2DEG, ...I16);
  m.targetBearing = intField(bearing * RAD2DEG, ...I16);
  m.wpDist = t === undefined ? 0 : intField(distanceM(v.k, t), ...U16);
  m.altError = t === undefined ? 0 : t.alt - v.k.alt;
  return m;
}

/** Every message the sim can send, with its stream group. Order = send order within a tick. */
export const MESSAGES: readonly MessageSpec[] = [
  { id: minimal.Heartbeat.MSG_ID, name: 'HEARTBEAT', group: null, defaultHz: 1, build: (c) => heartbeat(c.vehicle) },
  { id: common.SysStatus.MSG_ID, name: 'SYS_STATUS', group: 'EXT_STAT', build: (c) => sysStatus(c.vehicle) },
  { id: common.GpsRawInt.MSG_ID, name: 'GPS_RAW_INT', group: 'EXT_STAT', build: (c) => gpsRawInt(c.vehicle) },
  { id: common.MissionCurrent.MSG_ID, name: 'MISSION_CURRENT', group: 'EXT_STAT', build: (c) => missionCurrent(c.vehicle) },
  { id: common.NavControllerOutput.MSG_ID, name: 'NAV_CONTROLLER_OUTPUT', group: 'EXT_STAT', build: (c) => navControllerOutput(c.vehicle) },
  { id: common.ExtendedSysState.MSG_ID, name: 'EXTENDED_SYS_STATE', group: 'EXT_STAT', build: (c) => extendedSysState(c.vehicle) },
  { id: common.GlobalPositionInt.MSG_ID, name: 'GLOBAL_POSITION_INT', group: 'POSITION', build: (c) => globalPositionInt(c.vehicle) },
  { id: common.LocalPositionNed.MSG_ID, name: 'LOCAL_POSITION_NED', group: 'POSITION', build: (c) => (c.vehicle.gpsFix ? localPositionNed(c.vehicle) : undefined) },
  { id: common.Attitude.MSG_ID, name: 'ATTITUDE', group: 'EXTRA1', build: (c) => attitude(c.vehicle) },
  { id: common.VfrHud.MSG_ID, name: 'VFR_HUD', group: 'EXTRA2', build: (c) => vfrHud(c.vehicle) },
  { id: common.RawImu.MSG_ID, name: 'RAW_IMU', group: 'RAW_SENS', build: (c) => rawImu(c.vehicle) },
  { id: common.ScaledPressure.MSG_ID, name: 'SCALED_PRESSURE', group: 'RAW_SENS', build: (c) => scaledPressure(c.vehicle) },
  { id: common.ServoOutputRaw.MSG_ID, name: 'SERVO_OUTPUT_RAW', group: 'RC_CHAN', build: (c) => servoOutputRaw(c.vehicle) },
  { id: common.RcChannels.MSG_ID, name: 'RC_CHANNELS', group: 'RC_CHAN', build: (c) => rcChannels(c.vehicle) },
  { id: common.SystemTime.MSG_ID, name: 'SYSTEM_TIME', group: 'EXTRA3', build: (c) => systemTime(c.vehicle, c.wallClockMs) },
  { id: common.BatteryStatus.MSG_ID, name: 'BATTERY_STATUS', group: 'EXTRA3', build: (c) => batteryStatus(c.vehicle) },
  { id: ardupilotmega.EkfStatusReport.MSG_ID, name: 'EKF_STATUS_REPORT', group: 'EXTRA3', build: (c) => ekfStatus(c.vehicle) },
  { id: common.Vibration.MSG_ID, name: 'VIBRATION', group: 'EXTRA3', build: (c) => vibration(c.vehicle) },
  { id: common.HomePosition.MSG_ID, name: 'HOME_POSITION', group: null, defaultHz: 0.2, build: (c) => (c.vehicle.homeSet ? homePosition(c.vehicle) : undefined) },
  { id: standard.AutopilotVersion.MSG_ID, name: 'AUTOPILOT_VERSION', group: null, defaultHz: 0, build: (c) => autopilotVersion(c.sysid) },
];

export const MESSAGE_BY_ID: ReadonlyMap<number, MessageSpec> = new Map(MESSAGES.map((m) => [m.id, m]));
export const MESSAGE_BY_NAME: ReadonlyMap<string, MessageSpec> = new Map(MESSAGES.map((m) => [m.name, m]));
