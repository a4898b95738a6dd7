import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { common, minimal } from 'node-mavlink';
import { CopterMode } from '../../src/sim/index.js';
import { FakeGcs } from './gcs.js';

const R = common.MavResult;
const CMD = common.MavCmd;
const ARMED = minimal.MavModeFlag.SAFETY_ARMED;

function texts(g: FakeGcs, since = 0): string[] {
  return g.all<common.StatusText>('STATUSTEXT', since).map((m) => m.text);
}

/** GUIDED, armed, climbed to `alt` m; returns the GCS. */
function airborne(alt = 10, opts = {}): FakeGcs {
  const g = new FakeGcs({ speedup: 5, ...opts });
  g.advance(1000); // 5 s sim: GPS fix at 3 s
  assert.equal(g.setMode(CopterMode.GUIDED), R.ACCEPTED);
  assert.equal(g.arm(), R.ACCEPTED);
  assert.equal(g.command(CMD.NAV_TAKEOFF, [0, 0, 0, 0, 0, 0, alt]), R.ACCEPTED);
  g.waitFor<common.GlobalPositionInt>('GLOBAL_POSITION_INT', (p) => Math.abs(p.relativeAlt - alt * 1000) < 300, 10_000);
  return g;
}

describe('sim flight', () => {
  it('refuses to arm before a GPS fix, with PreArm STATUSTEXT, and arms after', () => {
    const g = new FakeGcs({ speedup: 1, gpsDelayMs: 3000 });
    assert.equal(g.setMode(CopterMode.GUIDED), R.ACCEPTED, 'mode changes are allowed while disarmed');
    const since = g.mark;
    assert.equal(g.arm(), R.FAILED);
    const pre = texts(g, since).filter((t) => t.startsWith('PreArm: '));
    assert.ok(pre.includes('PreArm: GPS 1: Bad fix'), `got ${JSON.stringify(pre)}`);
    assert.ok(pre.includes('PreArm: Need Position Estimate'));
    const severity = g.all<common.StatusText>('STATUSTEXT', since)[0]!.severity;
    assert.equal(severity, common.MavSeverity.CRITICAL);
    assert.equal(g.nextHeartbeat().baseMode & ARMED, 0);

    g.waitFor<common.GpsRawInt>('GPS_RAW_INT', (m) => m.fixType === common.GpsFixType.GPS_FIX_TYPE_3D_FIX, 5000);
    assert.ok(g.now - 10_000 >= 3000, 'fix must not come before gpsDelayMs');
    assert.equal(g.arm(), R.ACCEPTED);
    g.waitFor<minimal.Heartbeat>('HEARTBEAT', (hb) => (hb.baseMode & ARMED) !== 0, 1500);
    assert.equal(g.nextHeartbeat().customMode, CopterMode.GUIDED);
  });

  it('force-arms before the fix with param2 21196, but never in a non-armable mode', () => {
    const g = new FakeGcs({ speedup: 1 });
    assert.equal(g.setMode(CopterMode.LAND), R.ACCEPTED);
    const since = g.mark;
    assert.equal(g.arm(true), R.FAILED);
    assert.deepEqual(texts(g, since), ['Arm: Mode not armable']);
    assert.equal(g.setMode(CopterMode.STABILIZE), R.ACCEPTED);
    assert.equal(g.arm(true), R.ACCEPTED);
  });

  it('GUIDED takeoff to 10 m shows in GLOBAL_POSITION_INT.relative_alt and EXTENDED_SYS_STATE', () => {
    const g = new FakeGcs({ speedup: 5 });
    g.advance(1000);
    assert.equal(g.command(CMD.NAV_TAKEOFF, [0, 0, 0, 0, 0, 0, 10]), R.FAILED, 'not armed, not GUIDED');
    assert.equal(g.setMode(CopterMode.GUIDED), R.ACCEPTED);
    assert.equal(g.arm(), R.ACCEPTED);
    const since = g.mark;
    assert.equal(g.command(CMD.NAV_TAKEOFF, [0, 0, 0, 0, 0, 0, 10]), R.ACCEPTED);
    g.waitFor<common.ExtendedSysState>('EXTENDED_SYS_STATE', (m) => m.landedState === common.MavLandedState.TAKEOFF, 3000, since);
    const top = g.waitFor<common.GlobalPositionInt>('GLOBAL_POSITION_INT', (p) => p.relativeAlt >= 9_700, 10_000, since);
    assert.ok(top.relativeAlt <= 10_300, `overshoot: ${top.relativeAlt}`);
    // It climbed, did not teleport: several samples in between.
    const climbing = g.all<common.GlobalPositionInt>('GLOBAL_POSITION_INT', since).filter((p) => p.relativeAlt > 1000 && p.relativeAlt < 9000);
    assert.ok(climbing.length >= 3, `only ${climbing.length} samples during the climb`);
    g.advance(1000);
    const hold = g.lastPosition();
    assert.ok(Math.abs(hold.relativeAlt - 10_000) < 200, `holds 10 m, got ${hold.relativeAlt}`);
    assert.equal(g.all<common.ExtendedSysState>('EXTENDED_SYS_STATE').at(-1)!.landedState, common.MavLandedState.IN_AIR);
    assert.equal(g.nextHeartbeat().systemStatus, minimal.MavState.ACTIVE);
    assert.equal(g.command(CMD.NAV_TAKEOFF, [0, 0, 0, 0, 0, 0, 20]), R.FAILED, 'already flying');
  });

  it('RTL returns home, lands and disarms', () => {
    const g = airborne(10);
    const home = g.waitFor<common.HomePosition>('HOME_POSITION', () => true, 10_000, 0);
    // Fly 60 m north-east in GUIDED first.
    const ci = new common.CommandInt();
    ci.targetSystem = 1;
    ci.targetComponent = 1;
    ci.command = CMD.DO_REPOSITION;
    ci.frame = common.MavFrame.GLOBAL_RELATIVE_ALT_INT;
    ci._param1 = -1;
    ci._param4 = NaN;
    ci._param5 = home.latitude + 4000;
    ci._param6 = home.longitude + 5000;
    ci._param7 = 20;
    const s0 = g.mark;
    g.send(ci);
    assert.equal(g.waitFor<common.CommandAck>('COMMAND_ACK', () => true, 500, s0).result, R.ACCEPTED);
    g.waitFor<common.GlobalPositionInt>('GLOBAL_POSITION_INT', (p) => Math.abs(p.lat - ci._param5) < 30 && Math.abs(p.relativeAlt - 20_000) < 500, 20_000);

    const since = g.mark;
    assert.equal(g.setMode(CopterMode.RTL), R.ACCEPTED);
    // RTL_ALT 15 m < 20 m: returns at the current altitude.
    const disarmed = g.waitFor<minimal.Heartbeat>('HEARTBEAT', (hb) => (hb.baseMode & ARMED) === 0, 30_000, since);
    assert.equal(disarmed.customMode, CopterMode.RTL);
    const p = g.lastPosition();
    assert.ok(Math.abs(p.relativeAlt) < 100, `on the ground: ${p.relativeAlt}`);
    assert.ok(Math.abs(p.lat - home.latitude) < 30 && Math.abs(p.lon - home.longitude) < 40, 'landed at home');
    const states = g.all<common.ExtendedSysState>('EXTENDED_SYS_STATE', since).map((m) => m.landedState);
    assert.ok(states.includes(common.MavLandedState.LANDING));
    assert.equal(states.at(-1), common.MavLandedState.ON_GROUND);
    const maxAlt = Math.max(...g.all<common.GlobalPositionInt>('GLOBAL_POSITION_INT', since).map((m) => m.relativeAlt));
    assert.ok(maxAlt < 21_000, 'did not climb above the return altitude');
  });

  it('LAND lands in place and disarms; disarm in flight is refused unless forced', () => {
    const g = airborne(8);
    assert.equal(g.command(CMD.COMPONENT_ARM_DISARM, [0]), R.FAILED);
    const since = g.mark;
    assert.equal(g.command(CMD.NAV_LAND), R.ACCEPTED);
    assert.equal(g.nextHeartbeat().customMode, CopterMode.LAND);
    g.waitFor<minimal.Heartbeat>('HEARTBEAT', (hb) => (hb.baseMode & ARMED) === 0 && hb.customMode === CopterMode.LAND, 20_000, since);
    assert.ok(Math.abs(g.lastPosition().relativeAlt) < 100);
  });

  it('auto-disarms after DISARM_DELAY when armed on the ground', () => {
    const g = new FakeGcs({ speedup: 10, paramDefaults: { DISARM_DELAY: 5 } });
    g.advance(500);
    assert.equal(g.setMode(CopterMode.GUIDED), R.ACCEPTED);
    assert.equal(g.arm(), R.ACCEPTED);
    const armedAt = g.now;
    g.waitFor<minimal.Heartbeat>('HEARTBEAT', (hb) => (hb.baseMode & ARMED) === 0, 3000);
    const simS = ((g.now - armedAt) * 10) / 1000;
    assert.ok(simS >= 5 && simS <= 7, `disarmed after ${simS} sim s`);
  });

  it('SET_POSITION_TARGET_GLOBAL_INT moves the vehicle in GUIDED only', () => {
    const g = airborne(10);
    const start = g.lastPosition();
    const t = new common.SetPositionTargetGlobalInt();
    t.targetSystem = 1;
    t.targetComponent = 1;
    t.coordinateFrame = common.MavFrame.GLOBAL_RELATIVE_ALT_INT;
    t.typeMask = 0b1111_1111_1000 as common.PositionTargetTypemask; // position only
    t.latInt = start.lat - 3000;
    t.lonInt = start.lon;
    t.alt = 15;
    g.send(t);
    g.waitFor<common.GlobalPositionInt>('GLOBAL_POSITION_INT', (p) => Math.abs(p.lat - t.latInt) < 20 && Math.abs(p.relativeAlt - 15_000) < 300, 20_000);
    // In LOITER the same message is ignored.
    assert.equal(g.setMode(CopterMode.LOITER), R.ACCEPTED);
    t.latInt = start.lat + 5000;
    g.send(t);
    g.advance(2000);
    assert.ok(Math.abs(g.lastPosition().lat - (start.lat - 3000)) < 50, 'ignored outside GUIDED');
  });

  it('SET_POSITION_TARGET_LOCAL_NED: offset altitude change (QGC) and body-frame velocity', () => {
    const g = airborne(10);
    const t = new common.SetPositionTargetLocalNed();
    t.targetSystem = 1;
    t.targetComponent = 1;
    t.coordinateFrame = common.MavFrame.LOCAL_OFFSET_NED;
    t.typeMask = 0b1101_1111_1000 as common.PositionTargetTypemask; // position only, yaw ignored
    t.z = -5; // 5 m up
    g.send(t);
    g.waitFor<common.GlobalPositionInt>('GLOBAL_POSITION_INT', (p) => Math.abs(p.relativeAlt - 15_000) < 200, 10_000);
    const start = g.lastPosition();
    t.coordinateFrame = common.MavFrame.BODY_NED;
    t.typeMask = 0b1101_1100_0111 as common.PositionTargetTypemask; // velocity only
    t.vx = 3; // forward; the vehicle faces north after a vertical takeoff
    t.vz = 0;
    const since = g.mark;
    g.send(t);
    g.advance(400); // 2 s sim
    const moving = g.all<common.GlobalPositionInt>('GLOBAL_POSITION_INT', since).at(-1)!;
    assert.ok(moving.vx > 200, `north velocity ${moving.vx} cm/s`);
    assert.ok(moving.lat > start.lat);
    g.advance(1000); // GUID_TIMEOUT 3 s: stops without fresh targets
    assert.ok(Math.abs(g.lastPosition().vx) < 20, 'velocity target times out');
  });

  it('mode changes that need a position are refused when armed without one', () => {
    const g = new FakeGcs({ speedup: 1, gpsDelayMs: 60_000 });
    assert.equal(g.arm(true), R.ACCEPTED); // STABILIZE, forced
    const since = g.mark;
    assert.equal(g.setMode(CopterMode.GUIDED), R.FAILED);
    assert.deepEqual(texts(g, since), ['Mode change to GUIDED failed: requires position']);
    assert.equal(g.setMode(CopterMode.ALT_HOLD), R.ACCEPTED);
    assert.equal(g.setMode(7), R.FAILED, 'CIRCLE is not simulated');
    assert.equal(g.nextHeartbeat().customMode, CopterMode.ALT_HOLD);
  });

  it('SET_MODE message is acknowledged like DO_SET_MODE', () => {
    const g = new FakeGcs();
    const m = new common.SetMode();
    m.targetSystem = 1;
    m.baseMode = minimal.MavModeFlag.CUSTOM_MODE_ENABLED as number as common.MavMode;
    m.customMode = CopterMode.LOITER;
    const since = g.mark;
    g.send(m);
    const ack = g.waitFor<common.CommandAck>('COMMAND_ACK', () => true, 500, since);
    assert.equal(ack.command, CMD.DO_SET_MODE);
    assert.equal(ack.result, R.ACCEPTED);
    const hb = g.nextHeartbeat();
    assert.equal(hb.customMode, CopterMode.LOITER);
    assert.ok((hb.baseMode & minimal.MavModeFlag.GUIDED_ENABLED) !== 0);
  });

  it('drains the battery while flying', () => {
    const g = airborne(10);
    const before = g.waitFor<common.BatteryStatus>('BATTERY_STATUS');
    g.advance(4000); // 20 s sim of hover
    const after = g.waitFor<common.BatteryStatus>('BATTERY_STATUS');
    assert.ok(after.currentConsumed > before.currentConsumed + 50, `${before.currentConsumed} → ${after.currentConsumed}`);
    assert.ok(after.currentBattery > 1000, 'hover draws > 10 A');
    assert.ok(after.voltages[0]! < before.voltages[0]!);
    // 3300 mAh at ~12 A: about 15 minutes left.
    assert.ok(after.timeRemaining > 600 && after.timeRemaining < 1200, `time remaining ${after.timeRemaining} s`);
  });

  it('low-battery failsafe: STATUSTEXT, MAV_STATE_CRITICAL and the BATT_FS_LOW_ACT action (RTL)', () => {
    const g = airborne(10, { paramDefaults: { BATT_CAPACITY: 400, BATT_LOW_MAH: 300, BATT_FS_LOW_ACT: 2, BATT_LOW_TIMER: 2 } });
    const since = g.mark;
    const text = g.waitFor<common.StatusText>('STATUSTEXT', (t) => t.text.startsWith('Battery 1 is low'), 20_000, since);
    assert.equal(text.severity, common.MavSeverity.CRITICAL);
    const hb = g.nextHeartbeat();
    assert.equal(hb.customMode, CopterMode.RTL);
    assert.equal(hb.systemStatus, minimal.MavState.CRITICAL);
  });
});
