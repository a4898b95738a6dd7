import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { common, minimal, standard } from 'node-mavlink';
import { ardupilotmegaDialect } from '../../src/mavlink/dialect.js';
import { Framer } from '../../src/mavlink/framer.js';
import { FakeGcs } from './gcs.js';

const R = common.MavResult;
const CMD = common.MavCmd;

function rateHz(g: FakeGcs, name: string, windowMs: number): number {
  const since = g.mark;
  g.advance(windowMs);
  return (g.all(name, since).length * 1000) / windowMs;
}

describe('sim protocol', () => {
  it('sends a Copter HEARTBEAT at 1 Hz from sysid 1 / compid 1', () => {
    const g = new FakeGcs();
    g.advance(10_000);
    const hbs = g.rx.filter((r) => r.name === 'HEARTBEAT');
    assert.ok(hbs.length >= 10 && hbs.length <= 11, `${hbs.length} heartbeats in 10 s`);
    const r = hbs.at(-1)!;
    assert.equal(r.frame.sysid, 1);
    assert.equal(r.frame.compid, 1);
    assert.equal(r.frame.version, 2);
    const hb = r.msg as minimal.Heartbeat;
    assert.equal(hb.type, minimal.MavType.QUADROTOR);
    assert.equal(hb.autopilot, minimal.MavAutopilot.ARDUPILOTMEGA);
    assert.equal(hb.mavlinkVersion, 3);
    assert.equal(hb.customMode, 0);
    assert.equal(hb.systemStatus, minimal.MavState.STANDBY);
    assert.ok((hb.baseMode & minimal.MavModeFlag.CUSTOM_MODE_ENABLED) !== 0);
    assert.equal(hb.baseMode & minimal.MavModeFlag.SAFETY_ARMED, 0);
  });

  it('streams the standard telemetry set by default', () => {
    const g = new FakeGcs();
    g.advance(5000);
    for (const name of ['SYS_STATUS', 'GPS_RAW_INT', 'GLOBAL_POSITION_INT', 'ATTITUDE', 'VFR_HUD', 'BATTERY_STATUS', 'EXTENDED_SYS_STATE',
      'HOME_POSITION', 'RAW_IMU', 'SERVO_OUTPUT_RAW', 'MISSION_CURRENT', 'SYSTEM_TIME', 'EKF_STATUS_REPORT']) {
      assert.ok(g.all(name).length > 0, `no ${name}`);
    }
    const gps = g.all<common.GpsRawInt>('GPS_RAW_INT').at(-1)!;
    assert.equal(gps.fixType, common.GpsFixType.GPS_FIX_TYPE_3D_FIX);
    assert.equal(gps.lat, -353632610);
    const st = g.all<common.SysStatus>('SYS_STATUS').at(-1)!;
    assert.ok(st.voltageBattery > 12_000 && st.voltageBattery <= 12_600, `${st.voltageBattery} mV`);
    assert.ok((st.onboardControlSensorsHealth & common.MavSysStatusSensor.PREARM_CHECK) !== 0, 'ready to arm after the fix');
  });

  it('every emitted frame passes the Framer CRC check, including in the plain ardupilotmega dialect', () => {
    const g = new FakeGcs({ speedup: 5 });
    const plain = new Framer(ardupilotmegaDialect());
    g.core.attach('plain', (b) => plain.push(b, () => {}));
    g.advance(2000);
    assert.equal(g.setMode(4), R.ACCEPTED);
    assert.equal(g.arm(), R.ACCEPTED);
    g.command(CMD.NAV_TAKEOFF, [0, 0, 0, 0, 0, 0, 5]);
    g.command(CMD.REQUEST_MESSAGE, [148]);
    g.advance(3000);
    assert.ok(g.rx.length > 200);
    assert.equal(g.framer.stats.crcErrors, 0);
    assert.equal(g.framer.stats.garbageBytes, 0);
    assert.equal(g.framer.stats.unknownMsgids, 0);
    assert.equal(g.framer.stats.seqLost, 0);
    assert.ok(g.rx.every((r) => r.frame.checked && r.msg !== undefined));
    assert.equal(plain.stats.crcErrors, 0);
    assert.equal(plain.stats.unknownMsgids, 0);
    assert.ok(plain.stats.frames > 100);
    // AUTOPILOT_VERSION (148) lives in node-mavlink's `standard` registry, which the project's
    // dialect includes, so the routing framer checks its CRC too.
    const av = g.rx.find((r) => r.name === 'AUTOPILOT_VERSION')!;
    assert.ok(av.frame.checked, 'checked by the sim dialect');
    const checkedByPlain: boolean[] = [];
    const hb = g.rx.find((r) => r.name === 'HEARTBEAT')!;
    new Framer(ardupilotmegaDialect()).push(Buffer.concat([av.frame.bytes, hb.frame.bytes]), (f) => checkedByPlain.push(f.checked));
    assert.deepEqual(checkedByPlain, [true, true]);
  });

  it('SET_MESSAGE_INTERVAL changes the observed rate; -1 disables, 0 restores the default', () => {
    const g = new FakeGcs();
    const attitudeId = common.Attitude.MSG_ID;
    const before = rateHz(g, 'ATTITUDE', 5000);
    assert.ok(before >= 3.8 && before <= 4.2, `default ATTITUDE ${before} Hz`);
    assert.equal(g.command(CMD.SET_MESSAGE_INTERVAL, [attitudeId, 50_000]), R.ACCEPTED);
    const fast = rateHz(g, 'ATTITUDE', 5000);
    assert.ok(fast >= 19 && fast <= 21, `ATTITUDE at 20 Hz, got ${fast}`);
    assert.equal(g.command(CMD.SET_MESSAGE_INTERVAL, [attitudeId, -1]), R.ACCEPTED);
    assert.equal(rateHz(g, 'ATTITUDE', 3000), 0);
    assert.equal(g.command(CMD.SET_MESSAGE_INTERVAL, [attitudeId, 0]), R.ACCEPTED);
    const back = rateHz(g, 'ATTITUDE', 5000);
    assert.ok(back >= 3.8 && back <= 4.2, `back to default, got ${back}`);
    // GET_MESSAGE_INTERVAL reports it.
    const since = g.mark;
    assert.equal(g.command(CMD.GET_MESSAGE_INTERVAL, [attitudeId]), R.ACCEPTED);
    const mi = g.waitFor<common.MessageInterval>('MESSAGE_INTERVAL', () => true, 100, since);
    assert.equal(mi.messageId, attitudeId);
    assert.equal(mi.intervalUs, 250_000);
    // Heartbeat can be changed too; a message we never send is DENIED.
    assert.equal(g.command(CMD.SET_MESSAGE_INTERVAL, [0, 500_000]), R.ACCEPTED);
    const hb = rateHz(g, 'HEARTBEAT', 4000);
    assert.ok(hb >= 1.9 && hb <= 2.1, `heartbeat ${hb} Hz`);
    assert.equal(g.command(CMD.SET_MESSAGE_INTERVAL, [common.FileTransferProtocol.MSG_ID, 100_000]), R.DENIED);
  });

  it('REQUEST_DATA_STREAM sets the SRn group rates (and the SRn parameters)', () => {
    const g = new FakeGcs();
    const rds = new common.RequestDataStream();
    rds.targetSystem = 1;
    rds.targetComponent = 1;
    rds.reqStreamId = common.MavDataStream.POSITION;
    rds.reqMessageRate = 10;
    rds.startStop = 1;
    g.send(rds);
    const pos = rateHz(g, 'GLOBAL_POSITION_INT', 4000);
    assert.ok(pos >= 9.5 && pos <= 10.5, `POSITION at 10 Hz, got ${pos}`);
    assert.equal(g.core.params.get('SR0_POSITION'), 10);
    rds.reqStreamId = common.MavDataStream.ALL;
    rds.startStop = 0;
    g.send(rds);
    const since = g.mark;
    g.advance(3000);
    const names = new Set(g.rx.slice(since).map((r) => r.name));
    assert.deepEqual([...names].sort(), ['HEARTBEAT', 'HOME_POSITION'].sort(), 'only heartbeat (and home) remain');
  });

  it('REQUEST_MESSAGE and REQUEST_AUTOPILOT_CAPABILITIES send AUTOPILOT_VERSION after the ACK', () => {
    const g = new FakeGcs();
    const since = g.mark;
    assert.equal(g.command(CMD.REQUEST_MESSAGE, [standard.AutopilotVersion.MSG_ID]), R.ACCEPTED);
    const names = g.rx.slice(since).map((r) => r.name);
    assert.ok(names.indexOf('COMMAND_ACK') < names.indexOf('AUTOPILOT_VERSION'));
    const av = g.all<standard.AutopilotVersion>('AUTOPILOT_VERSION', since)[0]!;
    const caps = BigInt(av.capabilities as unknown as bigint);
    const C = standard.MavProtocolCapability;
    for (const cap of [C.MAVLINK2, C.MISSION_INT, C.PARAM_FLOAT, C.COMMAND_INT, C.MISSION_FENCE, C.MISSION_RALLY]) {
      assert.ok((caps & BigInt(cap)) !== 0n, `capability ${cap}`);
    }
    assert.equal(av.flightSwVersion >>> 24, 4);
    const s2 = g.mark;
    assert.equal(g.command(CMD.REQUEST_AUTOPILOT_CAPABILITIES, [1]), R.ACCEPTED);
    assert.equal(g.all('AUTOPILOT_VERSION', s2).length, 1);
    assert.equal(g.command(CMD.REQUEST_MESSAGE, [common.FileTransferProtocol.MSG_ID]), R.FAILED);
  });

  it('answers an unknown command with MAV_RESULT_UNSUPPORTED, via COMMAND_LONG and COMMAND_INT', () => {
    const g = new FakeGcs();
    assert.equal(g.command(CMD.DO_DIGICAM_CONTROL), R.UNSUPPORTED);
    assert.equal(g.command(31_337 as common.MavCmd), R.UNSUPPORTED);
    const ci = new common.CommandInt();
    ci.targetSystem = 1;
    ci.targetComponent = 1;
    ci.command = CMD.DO_DIGICAM_CONTROL;
    const since = g.mark;
    g.send(ci);
    const ack = g.waitFor<common.CommandAck>('COMMAND_ACK', () => true, 100, since);
    assert.equal(ack.result, R.UNSUPPORTED);
    assert.equal(ack.targetSystem, 255);
    assert.equal(ack.targetComponent, 190);
  });

  it('ignores messages addressed to another system or component', () => {
    const g = new FakeGcs();
    const since = g.mark;
    const m = new common.CommandLong();
    m.command = CMD.REQUEST_MESSAGE;
    m._param1 = common.HomePosition.MSG_ID;
    m.targetSystem = 2;
    m.targetComponent = 1;
    g.send(m);
    m.targetSystem = 1;
    m.targetComponent = 100;
    g.send(m);
    g.advance(100);
    assert.equal(g.all('COMMAND_ACK', since).length, 0);
    m.targetComponent = 0; // broadcast component
    g.send(m);
    assert.equal(g.all('COMMAND_ACK', since).length, 1);
  });

  it('reboot: ACK, then ~2 s of silence, then a fresh boot with seq restarting at 0', () => {
    const g = new FakeGcs({ speedup: 1, rebootMs: 2000 });
    g.advance(5000);
    assert.equal(g.setMode(4), R.ACCEPTED);
    assert.equal(g.command(CMD.PREFLIGHT_REBOOT_SHUTDOWN, [1]), R.ACCEPTED);
    const ackAt = g.now;
    const since = g.mark;
    g.waitFor('HEARTBEAT', () => true, 5000, since);
    const first = g.rx[since]!;
    const silence = first.t - ackAt;
    assert.ok(silence >= 2000 && silence <= 2100, `silent for ${silence} ms`);
    assert.equal(g.rx.slice(since).find((r) => r.frame.seq !== undefined)!.frame.seq, 0);
    const banner = g.all<common.StatusText>('STATUSTEXT', since).map((t) => t.text);
    assert.ok(banner.some((t) => t.startsWith('ArduCopter V4.5')), JSON.stringify(banner));
    assert.equal(g.nextHeartbeat().customMode, 0, 'mode reset to STABILIZE');
    const gps = g.waitFor<common.GpsRawInt>('GPS_RAW_INT', () => true, 1000, since);
    assert.equal(gps.fixType, common.GpsFixType.NO_FIX, 'GPS re-acquires after boot');
    assert.equal(g.command(CMD.COMPONENT_ARM_DISARM, [1, 21196]), R.ACCEPTED);
    assert.equal(g.command(CMD.PREFLIGHT_REBOOT_SHUTDOWN, [1]), R.FAILED, 'no reboot while armed');
  });

  it('fault injection: corrupted bytes show up as Framer CRC errors; drops lose frames; stall silences', () => {
    const g = new FakeGcs({ faults: { corruptRate: 0.01 }, seed: 7 });
    g.advance(5000);
    const s = g.framer.stats;
    assert.ok(s.crcErrors > 5, `crcErrors ${s.crcErrors}`);
    assert.ok(s.frames > 50, 'most frames still get through');
    assert.ok(g.core.stats().faults.bytesCorrupted > 0);
    const sent = g.core.stats().framesOut;
    assert.ok(s.frames < sent);

    g.core.setFaults({ corruptRate: 0, dropRate: 0.05 });
    const lostBefore = g.framer.stats.seqLost;
    g.advance(5000);
    assert.ok(g.framer.stats.seqLost > lostBefore, 'dropped bytes lose frames (seen as sequence gaps)');

    g.core.setFaults({ dropRate: 0 });
    g.core.stall(3000);
    const since = g.mark;
    g.advance(2900);
    assert.equal(g.rx.length, since, 'nothing during the stall');
    g.advance(1200);
    assert.ok(g.all('HEARTBEAT', since).length >= 1, 'back after the stall');
  });

  it('periodic stall and reboot faults from options', () => {
    const g = new FakeGcs({ rebootMs: 1000, faults: { stallEveryMs: 5000, stallMs: 2000, rebootEveryMs: 13_500 } });
    const t0 = g.now;
    g.advance(16_000);
    const beats = g.rx.filter((r) => r.name === 'HEARTBEAT').map((r) => r.t - t0);
    const gaps = beats.slice(1).map((t, i) => t - beats[i]!);
    // Stalls at 5-7 s and 10-12 s, a reboot at 13.5 s (1 s of silence): three long gaps.
    assert.equal(gaps.filter((d) => d > 1400).length, 3, JSON.stringify(beats));
    assert.equal(g.core.stats().boots, 2);
    const after = g.rx.find((r) => r.t - t0 > 14_400)!;
    assert.equal(after.frame.seq, 0, 'sequence restarted after the reboot');
    assert.throws(() => g.core.setFaults({ dropRate: 2 }), /dropRate/);
  });

  it('serves several links, each with its own sequence numbers and stream rates', () => {
    const g = new FakeGcs();
    const other = new Framer(g.dialect);
    const seqs: number[] = [];
    assert.ok(g.core.attach('second', (b) => other.push(b, (f) => seqs.push(f.seq))));
    assert.equal(g.core.attach('second', () => {}), false, 'ids are unique');
    assert.equal(g.command(CMD.SET_MESSAGE_INTERVAL, [common.Attitude.MSG_ID, -1]), R.ACCEPTED);
    const since = g.mark;
    g.advance(3000);
    assert.equal(g.all('ATTITUDE', since).length, 0);
    assert.ok(seqs.length > 30);
    assert.equal(seqs[0], 0, 'the second link starts its own sequence at 0');
    assert.equal(other.stats.seqLost, 0);
    assert.equal(other.stats.crcErrors, 0);
    g.core.detach('second');
    assert.equal(g.core.links, 1);
  });

  it('answers TIMESYNC requests', () => {
    const g = new FakeGcs();
    g.advance(1000);
    const t = new common.TimeSync();
    t.tc1 = 0n;
    t.ts1 = 123_456_789n;
    const since = g.mark;
    g.send(t);
    const reply = g.waitFor<common.TimeSync>('TIMESYNC', () => true, 100, since);
    assert.equal(reply.ts1, 123_456_789n);
    assert.ok(reply.tc1 > 0n);
  });
});
