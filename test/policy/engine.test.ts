import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { common } from 'node-mavlink';
import { FrameWriter } from '../../src/mavlink/codec.js';
import { Framer, type Frame } from '../../src/mavlink/framer.js';
import { crc16, crc16Byte } from '../../src/mavlink/crc.js';
import { MAV_RESULT_DENIED } from '../../src/policy/engine.js';
import { FTP_OPCODES } from '../../src/policy/names.js';
import {
  allowed, armedInAir, armedOnGround, autopilot, codec, commandInt, commandLong, companionWriter, decodeReplies, denied, dialect,
  disarmedOnGround, extSysState, frameOf, ftp, gcs, heartbeat, LANDED, makeEngine, paramSet, paramValue, policyWith, type Reply,
} from './helpers.js';

const CMD = { RTL: 20, TAKEOFF: 22, DO_SET_MODE: 176, DO_SET_PARAMETER: 180, DO_FLIGHTTERMINATION: 185, PREFLIGHT_STORAGE: 245, REBOOT: 246, ARM_DISARM: 400, SET_MESSAGE_INTERVAL: 511, REQUEST_MESSAGE: 512 } as const;
const MAV_RESULT_TEMPORARILY_REJECTED = 1;

function ack(replies: Reply[]): { r: Reply; m: common.CommandAck } {
  const r = replies.find((x) => x.name === 'COMMAND_ACK');
  assert.ok(r, `no COMMAND_ACK in ${replies.map((x) => x.name).join(',')}`);
  return { r, m: r.msg as common.CommandAck };
}

function statustext(replies: Reply[]): { r: Reply; m: common.StatusText } {
  const r = replies.find((x) => x.name === 'STATUSTEXT');
  assert.ok(r, `no STATUSTEXT in ${replies.map((x) => x.name).join(',')}`);
  return { r, m: r.msg as common.StatusText };
}

/** COMMAND_ACK DENIED for `command` addressed to the GCS, from the autopilot's identity; STATUSTEXT from the companion. */
function assertCommandRefused(replies: Reply[], command: number, text: string, result = MAV_RESULT_DENIED): void {
  const a = ack(replies);
  assert.equal(a.m.command, command, 'command echoed');
  assert.equal(a.m.result, result);
  assert.equal(a.m.targetSystem, 255, 'ack targets the sender system');
  assert.equal(a.m.targetComponent, 190, 'ack targets the sender component');
  assert.deepEqual([a.r.sysid, a.r.compid], [1, 1], 'ack answers as the addressed component (QGC matches acks by it)');
  const s = statustext(replies);
  assert.equal(s.m.text, text);
  assert.equal(s.m.severity, 4, 'MAV_SEVERITY_WARNING');
  assert.deepEqual([s.r.sysid, s.r.compid], [1, 191], 'STATUSTEXT comes from the companion: who refused');
}

describe('messages: default deny', () => {
  test('a GCS heartbeat passes untouched, as a routine verdict', () => {
    const { engine, records } = makeEngine();
    const f = heartbeat({ armed: false, type: 6, autopilotType: 8 }, gcs);
    const v = allowed(engine.check(f));
    assert.equal(v.frame, f, 'same frame, not a copy');
    assert.equal(v.rewritten, false);
    assert.equal(records.length, 1);
    assert.equal(records[0]!.routine, true);
    assert.equal(records[0]!.rule, 'message-allowed');
  });

  test('a message not listed is refused with a STATUSTEXT', () => {
    const { engine } = makeEngine();
    const m = new common.GpsInput();
    const v = denied(engine.check(frameOf(m)));
    assert.equal(v.action, 'deny');
    assert.equal(v.rule, 'message-not-allowed');
    const replies = decodeReplies(v.replies);
    assert.deepEqual(replies.map((r) => r.name), ['STATUSTEXT']);
    assert.equal((replies[0]!.msg as common.StatusText).text, 'mavmq: DENIED GPS_INPUT not allowed');
  });

  for (const [name, make] of [
    ['SERIAL_CONTROL', () => new common.SerialControl()],
    ['SETUP_SIGNING', () => new common.SetupSigning()],
    ['LOG_ERASE', () => new common.LogErase()],
  ] as const) {
    test(`${name} is always refused, armed or not`, () => {
      const { engine } = makeEngine();
      disarmedOnGround(engine);
      const v = denied(engine.check(frameOf(make())));
      assert.equal(v.rule, 'message-denied');
      assert.equal((decodeReplies(v.replies)[0]!.msg as common.StatusText).text, `mavmq: DENIED ${name} refused by policy`);
    });
  }

  test('what a GCS needs passes: params, missions, mode, guided, RC, time, logs', () => {
    const { engine } = makeEngine();
    armedInAir(engine);
    const msgs = [
      new common.ParamRequestList(), new common.ParamRequestRead(), new common.MissionCount(), new common.MissionItemInt(),
      new common.MissionRequestInt(), new common.MissionRequestList(), new common.MissionAck(), new common.MissionClearAll(),
      new common.MissionSetCurrent(), new common.SetMode(), new common.SetPositionTargetGlobalInt(), new common.SetPositionTargetLocalNed(),
      new common.ManualControl(), new common.RcChannelsOverride(), new common.TimeSync(), new common.SystemTime(), new common.Ping(),
      new common.LogRequestList(), new common.LogRequestData(), new common.LogRequestEnd(),
    ];
    for (const m of msgs) {
      const f = frameOf(m);
      const v = engine.check(f);
      assert.equal(v.action, 'allow', `${dialect.messageName(f.msgid)}: ${v.action === 'allow' ? '' : v.reason}`);
    }
  });

  test('malformed frames are refused: bad CRC, payload longer than the message', () => {
    const { engine } = makeEngine();
    const good = heartbeat({ armed: false }, gcs);
    const bad = Buffer.from(good.bytes);
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 0xff;
    assert.equal(denied(engine.check({ ...good, bytes: bad })).rule, 'malformed');
    // SET_MODE is 6 bytes; a 40-byte "SET_MODE" with a correct CRC is still not a SET_MODE.
    const long = Buffer.alloc(10 + 40 + 2);
    long.set([0xfd, 40, 0, 0, 0, 255, 190, 11, 0, 0]);
    const crc = crc16Byte(crc16(long, 1, 50), dialect.crcExtra(11));
    long.writeUInt16LE(crc, 50);
    assert.equal(denied(engine.check({ ...good, bytes: long, msgid: 11, payloadLength: 40 })).rule, 'malformed');
  });
});

describe('commands by vehicle state', () => {
  test('reboot: allowed disarmed on the ground, refused armed in the air (ACK DENIED + STATUSTEXT)', () => {
    const { engine } = makeEngine();
    disarmedOnGround(engine);
    assert.equal(engine.check(commandLong(CMD.REBOOT, [1])).action, 'allow');
    armedInAir(engine);
    const v = denied(engine.check(commandLong(CMD.REBOOT, [1])));
    assert.equal(v.action, 'deny');
    assert.equal(v.rule, 'reboot-while-armed');
    assert.equal(v.reason, 'reboot while armed');
    assertCommandRefused(decodeReplies(v.replies), CMD.REBOOT, 'mavmq: DENIED reboot while armed');
  });

  test('reboot armed on the ground is refused too (the rule is "while armed")', () => {
    const { engine } = makeEngine();
    armedOnGround(engine);
    assert.equal(denied(engine.check(commandLong(CMD.REBOOT, [1]))).rule, 'reboot-while-armed');
  });

  test('the same rules hold for COMMAND_INT', () => {
    const { engine } = makeEngine();
    armedInAir(engine);
    const v = denied(engine.check(commandInt(CMD.REBOOT, [1])));
    assert.equal(v.rule, 'reboot-while-armed');
    assertCommandRefused(decodeReplies(v.replies), CMD.REBOOT, 'mavmq: DENIED reboot while armed');
  });

  test('flight termination: allowed disarmed, refused armed', () => {
    const { engine } = makeEngine();
    disarmedOnGround(engine);
    assert.equal(engine.check(commandLong(CMD.DO_FLIGHTTERMINATION, [1])).action, 'allow');
    armedInAir(engine);
    const v = denied(engine.check(commandLong(CMD.DO_FLIGHTTERMINATION, [1])));
    assert.equal(v.rule, 'termination-while-armed');
    assertCommandRefused(decodeReplies(v.replies), CMD.DO_FLIGHTTERMINATION, 'mavmq: DENIED flight termination while armed');
  });

  test('forced disarm: refused in the air (also TAKEOFF, LANDING), allowed on the ground; a normal disarm passes', () => {
    const { engine, clock } = makeEngine();
    armedOnGround(engine);
    assert.equal(engine.check(commandLong(CMD.ARM_DISARM, [0, 21196])).action, 'allow');
    for (const landed of [LANDED.IN_AIR, LANDED.TAKEOFF, LANDED.LANDING]) {
      clock.advance(2000); // past the STATUSTEXT interval
      engine.observe(extSysState(landed));
      const v = denied(engine.check(commandLong(CMD.ARM_DISARM, [0, 21196])));
      assert.equal(v.rule, 'force-disarm-in-air', `landed_state ${landed}`);
      assertCommandRefused(decodeReplies(v.replies), CMD.ARM_DISARM, 'mavmq: DENIED forced disarm in the air');
    }
    assert.equal(engine.check(commandLong(CMD.ARM_DISARM, [0, 0])).action, 'allow', 'plain disarm: the autopilot decides');
  });

  test('unknown state is treated as armed and in the air', () => {
    const { engine } = makeEngine();
    assert.equal(engine.state().armed, null);
    assert.equal(denied(engine.check(commandLong(CMD.REBOOT, [1]))).rule, 'reboot-while-armed');
    assert.equal(denied(engine.check(commandLong(CMD.ARM_DISARM, [0, 21196]))).rule, 'force-disarm-in-air');
    // Heartbeat but no EXTENDED_SYS_STATE: disarmed, but "in air" still unknown.
    engine.observe(heartbeat({ armed: false }));
    assert.equal(engine.check(commandLong(CMD.REBOOT, [1])).action, 'allow');
    assert.equal(denied(engine.check(commandLong(CMD.ARM_DISARM, [0, 21196]))).rule, 'force-disarm-in-air');
    // landed_state UNDEFINED is unknown too.
    engine.observe(extSysState(0));
    assert.equal(engine.state().inAir, null);
  });

  test('state goes stale: an old "disarmed" is unknown again', () => {
    const { engine, clock } = makeEngine();
    disarmedOnGround(engine);
    assert.equal(engine.check(commandLong(CMD.REBOOT, [1])).action, 'allow');
    clock.advance(5001);
    assert.equal(engine.state().armed, null);
    assert.equal(denied(engine.check(commandLong(CMD.REBOOT, [1]))).rule, 'reboot-while-armed');
  });

  test('GCS and companion heartbeats do not count as the vehicle\'s state', () => {
    const { engine } = makeEngine();
    engine.observe(heartbeat({ armed: false, type: 6, autopilotType: 8 }, gcs));
    engine.observe(heartbeat({ armed: false, type: 18, autopilotType: 8 }, companionWriter));
    assert.equal(engine.state().autopilot, null);
    assert.equal(denied(engine.check(commandLong(CMD.REBOOT, [1]))).rule, 'reboot-while-armed');
    armedInAir(engine);
    engine.observe(heartbeat({ armed: false, type: 18, autopilotType: 8 }, companionWriter));
    engine.observe(heartbeat({ armed: false, type: 6, autopilotType: 8 }, gcs));
    assert.equal(engine.state().armed, true);
    assert.deepEqual(engine.state().autopilot, { sysid: 1, compid: 1 });
  });

  test('a second autopilot does not take over while the first is alive; state from other sources is ignored', () => {
    const { engine, clock } = makeEngine();
    armedInAir(engine);
    const other = new FrameWriter(codec, 2, 1);
    engine.observe(heartbeat({ armed: false }, other));
    engine.observe(extSysState(LANDED.ON_GROUND, other));
    assert.equal(engine.state().armed, true);
    assert.equal(engine.state().inAir, true);
    // The first one goes silent: the next autopilot heard is adopted.
    clock.advance(6000);
    engine.observe(heartbeat({ armed: false }, other));
    assert.deepEqual(engine.state().autopilot, { sysid: 2, compid: 1 });
    assert.equal(engine.state().armed, false);
  });

  test('a pinned autopilot identity is never replaced', () => {
    const { engine, clock } = makeEngine(policyWith((p) => (p.state = { autopilot: { sysid: 1, compid: 1 } })));
    const other = new FrameWriter(codec, 2, 1);
    clock.advance(60_000);
    engine.observe(heartbeat({ armed: false }, other));
    assert.deepEqual(engine.state().autopilot, { sysid: 1, compid: 1 });
    assert.equal(engine.state().armed, null);
  });

  test('DO_SET_PARAMETER is always refused; PREFLIGHT_STORAGE while armed', () => {
    const { engine } = makeEngine();
    disarmedOnGround(engine);
    const setParam = denied(engine.check(commandLong(CMD.DO_SET_PARAMETER, [1, 0])));
    assert.equal(setParam.rule, 'set-parameter-by-number');
    assertCommandRefused(decodeReplies(setParam.replies), CMD.DO_SET_PARAMETER, 'mavmq: DENIED DO_SET_PARAMETER: use PARAM_SET');
    assert.equal(engine.check(commandLong(CMD.PREFLIGHT_STORAGE, [1])).action, 'allow');
    armedInAir(engine);
    const storage = denied(engine.check(commandLong(CMD.PREFLIGHT_STORAGE, [1])));
    assert.equal(storage.rule, 'storage-while-armed');
    assertCommandRefused(decodeReplies(storage.replies), CMD.PREFLIGHT_STORAGE, 'mavmq: DENIED parameter storage while armed');
  });

  test('mode rules use HEARTBEAT custom_mode', () => {
    const policy = policyWith((p) => p.rules!.unshift({ name: 'no-takeoff-in-rtl', command: 'NAV_TAKEOFF', when: { mode: [6] }, action: 'deny', reason: 'takeoff in RTL' }));
    const { engine } = makeEngine(policy);
    armedInAir(engine, 4);
    assert.equal(engine.check(commandLong(CMD.TAKEOFF)).action, 'allow');
    armedInAir(engine, 6);
    assert.equal(denied(engine.check(commandLong(CMD.TAKEOFF))).rule, 'no-takeoff-in-rtl');
  });

  test('commands.default deny with allow rules; allow rules never match on unknown state', () => {
    const policy = policyWith((p) => {
      p.commands = { default: 'deny' };
      p.rules = [
        { name: 'rtl', command: 'NAV_RETURN_TO_LAUNCH', action: 'allow' },
        { name: 'reboot-on-ground', command: 'PREFLIGHT_REBOOT_SHUTDOWN', when: { armed: false }, action: 'allow' },
      ];
    });
    const { engine } = makeEngine(policy);
    assert.equal(allowed(engine.check(commandLong(CMD.RTL))).rule, 'rtl');
    assert.equal(denied(engine.check(commandLong(CMD.TAKEOFF))).rule, 'command-default');
    assert.equal(denied(engine.check(commandLong(CMD.REBOOT, [1]))).rule, 'command-default', 'unknown state: not known disarmed');
    disarmedOnGround(engine);
    assert.equal(allowed(engine.check(commandLong(CMD.REBOOT, [1]))).rule, 'reboot-on-ground');
  });

  test('answerAs companion: the COMMAND_ACK comes from compid 191', () => {
    const { engine } = makeEngine(policyWith((p) => (p.replies = { answerAs: 'companion' })));
    armedInAir(engine);
    const replies = decodeReplies(denied(engine.check(commandLong(CMD.REBOOT, [1]))).replies);
    assert.deepEqual([ack(replies).r.sysid, ack(replies).r.compid], [1, 191]);
  });
});

describe('PARAM_SET', () => {
  test('protected parameters: allowed disarmed; refused armed, answered with the unchanged value', () => {
    const { engine } = makeEngine();
    disarmedOnGround(engine);
    engine.observe(paramValue('ARMING_CHECK', 1, 12, 950));
    assert.equal(engine.check(paramSet('ARMING_CHECK', 0)).action, 'allow');
    armedInAir(engine);
    const v = denied(engine.check(paramSet('ARMING_CHECK', 0)));
    assert.equal(v.rule, 'protected-params-while-armed');
    const replies = decodeReplies(v.replies);
    assert.deepEqual(replies.map((r) => r.name), ['PARAM_VALUE', 'STATUSTEXT']);
    const pv = replies[0]!.msg as common.ParamValue;
    assert.equal(pv.paramId, 'ARMING_CHECK');
    assert.equal(pv.paramValue, 1, 'the value the autopilot reported, not the one asked for');
    assert.equal(pv.paramIndex, 12);
    assert.equal(pv.paramCount, 950);
    assert.deepEqual([replies[0]!.sysid, replies[0]!.compid], [1, 1], 'from the parameter\'s owner');
    assert.equal((replies[1]!.msg as common.StatusText).text, 'mavmq: DENIED protected parameter while armed');
  });

  test('every protected pattern, any case; other parameters pass while armed', () => {
    const { engine, clock } = makeEngine();
    armedInAir(engine);
    for (const name of ['ARMING_CHECK', 'FS_THR_ENABLE', 'FENCE_ENABLE', 'SYSID_THISMAV', 'SERIAL2_PROTOCOL', 'BRD_SAFETYENABLE', 'arming_check']) {
      clock.advance(10);
      assert.equal(denied(engine.check(paramSet(name, 0))).rule, 'protected-params-while-armed', name);
    }
    for (const name of ['WPNAV_SPEED', 'RTL_ALT', 'ATC_RAT_RLL_P', 'FSX_NOT_FS']) {
      assert.equal(engine.check(paramSet(name, 1)).action, 'allow', name);
    }
  });

  test('value unknown: only the STATUSTEXT', () => {
    const { engine } = makeEngine();
    armedInAir(engine);
    const replies = decodeReplies(denied(engine.check(paramSet('FENCE_ENABLE', 0))).replies);
    assert.deepEqual(replies.map((r) => r.name), ['STATUSTEXT']);
  });

  test('PARAM_VALUE from other components is not taken as the autopilot\'s', () => {
    const { engine } = makeEngine();
    armedInAir(engine);
    engine.observe(paramValue('FENCE_ENABLE', 1, 3, 10, companionWriter));
    assert.equal(engine.state().paramsKnown, 0);
  });
});

describe('MAVLink FTP', () => {
  test('reads pass', () => {
    const { engine } = makeEngine();
    for (const op of ['ListDirectory', 'OpenFileRO', 'ReadFile', 'BurstReadFile', 'TerminateSession', 'ResetSessions', 'CalcFileCRC32'] as const) {
      assert.equal(engine.check(ftp(FTP_OPCODES[op])).action, 'allow', op);
    }
  });

  test('writes are refused with an FTP NAK (FileProtected) and a STATUSTEXT', () => {
    const { engine, clock } = makeEngine();
    disarmedOnGround(engine);
    for (const op of ['CreateFile', 'WriteFile', 'RemoveFile', 'CreateDirectory', 'RemoveDirectory', 'OpenFileWO', 'TruncateFile', 'Rename'] as const) {
      clock.advance(1500);
      const v = denied(engine.check(ftp(FTP_OPCODES[op], 41, 2)));
      assert.equal(v.rule, 'file-transfer-write', op);
      const replies = decodeReplies(v.replies);
      assert.deepEqual(replies.map((r) => r.name), ['FILE_TRANSFER_PROTOCOL', 'STATUSTEXT']);
      const nak = replies[0]!.msg as common.FileTransferProtocol;
      assert.deepEqual([nak.targetSystem, nak.targetComponent], [255, 190]);
      assert.equal(nak.payload[0]! | (nak.payload[1]! << 8), 42, 'seq + 1');
      assert.equal(nak.payload[2], 2, 'session');
      assert.equal(nak.payload[3], 129, 'NAK');
      assert.equal(nak.payload[5], FTP_OPCODES[op], 'req_opcode');
      assert.equal(nak.payload[12], 9, 'FileProtected');
      assert.equal((replies[1]!.msg as common.StatusText).text, `mavmq: DENIED FTP ${op}`);
    }
  });
});

describe('stream rates', () => {
  function reframe(bytes: Buffer): Frame[] {
    const framer = new Framer(dialect);
    const out: Frame[] = [];
    framer.push(bytes, (f) => out.push(f));
    assert.equal(framer.stats.crcErrors, 0);
    return out;
  }

  test('REQUEST_DATA_STREAM over the cap is rewritten to the cap (sender, seq kept; CRC valid)', () => {
    const { engine, records } = makeEngine();
    const m = new common.RequestDataStream();
    m.targetSystem = 1;
    m.targetComponent = 1;
    m.reqStreamId = 6;
    m.reqMessageRate = 50;
    m.startStop = 1;
    const f = frameOf(m);
    const v = allowed(engine.check(f));
    assert.equal(v.rewritten, true);
    assert.equal(v.rule, 'stream-rate-cap');
    const [out] = reframe(v.frame.bytes);
    assert.ok(out);
    assert.deepEqual([out.sysid, out.compid, out.seq, out.version], [f.sysid, f.compid, f.seq, 2]);
    const back = codec.decode<common.RequestDataStream>(out)!;
    assert.equal(back.reqMessageRate, 10);
    assert.equal(back.reqStreamId, 6);
    assert.equal(records.at(-1)!.rewritten, true);
    m.reqMessageRate = 4;
    const small = frameOf(m);
    const v2 = allowed(engine.check(small));
    assert.equal(v2.frame, small);
    assert.equal(v2.rewritten, false);
  });

  test('SET_MESSAGE_INTERVAL: too short an interval is raised to the cap; 0 (default) and -1 (off) pass as sent', () => {
    const { engine } = makeEngine();
    const v = allowed(engine.check(commandLong(CMD.SET_MESSAGE_INTERVAL, [33, 1000])));
    assert.equal(v.rewritten, true);
    const back = codec.decode<common.CommandLong>(reframe(v.frame.bytes)[0]!)!;
    assert.equal(back._param1, 33);
    assert.equal(back._param2, 100_000, '10 Hz');
    for (const interval of [0, -1, 100_000, 500_000]) {
      const f = commandLong(CMD.SET_MESSAGE_INTERVAL, [33, interval]);
      const ok = allowed(engine.check(f));
      assert.equal(ok.frame, f, `interval ${interval}`);
    }
  });

  test('a MAVLink 1 request stays MAVLink 1 when rewritten', () => {
    const { engine } = makeEngine();
    const v1 = new FrameWriter(codec, 255, 190, 1);
    const m = new common.RequestDataStream();
    m.targetSystem = 1;
    m.reqMessageRate = 100;
    m.startStop = 1;
    const f = frameOf(m, v1);
    assert.equal(f.version, 1);
    const v = allowed(engine.check(f));
    const out = reframe(v.frame.bytes)[0]!;
    assert.equal(out.version, 1);
    assert.equal(codec.decode<common.RequestDataStream>(out)!.reqMessageRate, 10);
  });

  test('a signed over-limit request cannot be rewritten: refused', () => {
    const { engine } = makeEngine();
    const m = new common.RequestDataStream();
    m.reqMessageRate = 100;
    m.startStop = 1;
    const plain = frameOf(m).bytes;
    const len = plain[1]!;
    const signed = Buffer.concat([plain.subarray(0, 10 + len), Buffer.alloc(2), Buffer.alloc(13, 7)]);
    signed[2] = 1;
    signed.writeUInt16LE(crc16Byte(crc16(signed, 1, 10 + len), dialect.crcExtra(66)), 10 + len);
    const f: Frame = { bytes: signed, version: 2, msgid: 66, sysid: 255, compid: 190, seq: 0, payloadOffset: 10, payloadLength: len, signed: true, checked: true };
    assert.equal(denied(engine.check(f)).rule, 'stream-rate-cap');
  });

  test('streamRates.action deny refuses instead of rewriting', () => {
    const { engine } = makeEngine(policyWith((p) => (p.streamRates = { maxHz: 5, action: 'deny' })));
    const v = denied(engine.check(commandLong(CMD.SET_MESSAGE_INTERVAL, [33, 10_000])));
    assert.equal(v.rule, 'stream-rate-cap');
    assertCommandRefused(decodeReplies(v.replies), CMD.SET_MESSAGE_INTERVAL, 'mavmq: DENIED stream rate over 5 Hz');
  });
});

describe('confirmation', () => {
  const FORCE_ARM = [1, 2989];

  test('the same command again within the window goes through; once', () => {
    const { engine, clock, records } = makeEngine();
    disarmedOnGround(engine);
    const first = denied(engine.check(commandLong(CMD.ARM_DISARM, FORCE_ARM)));
    assert.equal(first.action, 'confirm');
    assert.equal(first.rule, 'force-arm');
    const replies = decodeReplies(first.replies);
    assert.equal(ack(replies).m.result, MAV_RESULT_TEMPORARILY_REJECTED);
    assert.equal(ack(replies).m.command, CMD.ARM_DISARM);
    assert.equal(statustext(replies).m.text, 'mavmq: CONFIRM (resend <5s) force arm');
    clock.advance(2000);
    const second = allowed(engine.check(commandLong(CMD.ARM_DISARM, FORCE_ARM)));
    assert.equal(second.rule, 'force-arm');
    assert.equal(records.at(-1)!.reason, 'confirmed: force arm');
    clock.advance(100);
    assert.equal(engine.check(commandLong(CMD.ARM_DISARM, FORCE_ARM)).action, 'confirm', 'a confirmation is used up');
  });

  test('too late is a new first request', () => {
    const { engine, clock } = makeEngine();
    assert.equal(engine.check(commandLong(CMD.ARM_DISARM, FORCE_ARM)).action, 'confirm');
    clock.advance(5001);
    assert.equal(engine.check(commandLong(CMD.ARM_DISARM, FORCE_ARM)).action, 'confirm');
    clock.advance(1000);
    assert.equal(engine.check(commandLong(CMD.ARM_DISARM, FORCE_ARM)).action, 'allow');
  });

  test('a GCS retransmission (confirmation > 0) does not confirm; a new send does', () => {
    const { engine, clock } = makeEngine();
    assert.equal(engine.check(commandLong(CMD.ARM_DISARM, FORCE_ARM)).action, 'confirm');
    clock.advance(1000);
    assert.equal(engine.check(commandLong(CMD.ARM_DISARM, FORCE_ARM, { confirmation: 1 })).action, 'confirm');
    assert.equal(engine.check(commandLong(CMD.ARM_DISARM, FORCE_ARM, { confirmation: 0 })).action, 'allow');
  });

  test('a different command, parameter or sender does not confirm', () => {
    const { engine } = makeEngine();
    assert.equal(engine.check(commandLong(CMD.ARM_DISARM, [1, 2989])).action, 'confirm');
    assert.equal(engine.check(commandLong(CMD.ARM_DISARM, [1, 21196])).action, 'confirm', 'other magic');
    const other = new FrameWriter(codec, 254, 190);
    assert.equal(engine.check(commandLong(CMD.ARM_DISARM, [1, 2989], {}, other)).action, 'confirm', 'other sender');
    assert.equal(engine.check(commandLong(CMD.ARM_DISARM, [1, 2989])).action, 'allow');
  });

  test('a normal arm needs no confirmation', () => {
    const { engine } = makeEngine();
    assert.equal(engine.check(commandLong(CMD.ARM_DISARM, [1, 0])).action, 'allow');
  });
});

describe('rate limits', () => {
  test('1,000 commands/s: the limit holds; HEARTBEAT is never limited; RTL still passes', () => {
    const { engine, clock } = makeEngine();
    armedInAir(engine);
    const durationMs = 3000;
    let floodAllowed = 0;
    let floodDenied = 0;
    let statustexts = 0;
    let acks = 0;
    let heartbeats = 0;
    const rtl: string[] = [];
    for (let ms = 0; ms < durationMs; ms++) {
      clock.advance(1);
      if (ms % 1000 === 0) armedInAir(engine);
      const v = engine.check(commandLong(CMD.TAKEOFF, [0, 0, 0, 0, 0, 0, 10]));
      if (v.action === 'allow') floodAllowed++;
      else {
        floodDenied++;
        assert.equal(v.rule, 'rate-limit');
        for (const r of decodeReplies(v.replies)) {
          if (r.name === 'STATUSTEXT') statustexts++;
          if (r.name === 'COMMAND_ACK') acks++;
        }
      }
      if (ms % 10 === 0) {
        const hb = engine.check(heartbeat({ armed: false, type: 6, autopilotType: 8 }, gcs));
        assert.equal(hb.action, 'allow');
        heartbeats++;
      }
      if (ms % 700 === 350) rtl.push(engine.check(commandLong(CMD.RTL)).action);
    }
    // burst 10 + 5/s x 3 s = 25 at most (+1 for the boundary).
    assert.ok(floodAllowed <= 10 + 5 * (durationMs / 1000) + 1, `allowed ${floodAllowed}`);
    assert.ok(floodAllowed >= 10 + 5 * (durationMs / 1000) - 1, `allowed ${floodAllowed}`);
    assert.equal(floodAllowed + floodDenied, durationMs);
    assert.equal(acks, floodDenied, 'every refused command is acked');
    assert.ok(statustexts <= durationMs / 1000 + 1, `STATUSTEXT not echoed as a flood (${statustexts})`);
    assert.equal(heartbeats, durationMs / 10);
    assert.deepEqual(rtl, rtl.map(() => 'allow'), 'RTL never starved by the flood');
    const s = engine.stats();
    assert.equal(s.byRule['rate-limit']!.deny, floodDenied);
    assert.ok(s.statustextSuppressed > 0);
  });

  test('the bucket refills at the configured rate; per-command overrides apply', () => {
    const { engine, clock } = makeEngine();
    disarmedOnGround(engine);
    for (let i = 0; i < 40; i++) assert.equal(engine.check(commandLong(CMD.REQUEST_MESSAGE, [33])).action, 'allow', `REQUEST_MESSAGE burst 40 (#${i})`);
    assert.equal(engine.check(commandLong(CMD.REQUEST_MESSAGE, [33])).action, 'deny');
    for (let i = 0; i < 10; i++) assert.equal(engine.check(commandLong(CMD.DO_SET_MODE, [1, 4])).action, 'allow');
    assert.equal(engine.check(commandLong(CMD.DO_SET_MODE, [1, 4])).action, 'deny');
    clock.advance(200); // 5/s: one token
    assert.equal(engine.check(commandLong(CMD.DO_SET_MODE, [1, 4])).action, 'allow');
    assert.equal(engine.check(commandLong(CMD.DO_SET_MODE, [1, 4])).action, 'deny');
    clock.advance(100_000);
    for (let i = 0; i < 10; i++) assert.equal(engine.check(commandLong(CMD.DO_SET_MODE, [1, 4])).action, 'allow', 'refilled up to the burst');
    assert.equal(engine.check(commandLong(CMD.DO_SET_MODE, [1, 4])).action, 'deny');
  });

  test('refused commands do not spend tokens', () => {
    const { engine } = makeEngine();
    armedInAir(engine);
    for (let i = 0; i < 50; i++) engine.check(commandLong(CMD.REBOOT, [1]));
    disarmedOnGround(engine);
    assert.equal(engine.check(commandLong(CMD.REBOOT, [1])).action, 'allow');
  });
});

describe('dry run, records, stats', () => {
  test('dry run: the verdict is recorded, the frame goes through unchanged, nothing is answered', () => {
    const { engine, records } = makeEngine(undefined, { dryRun: true });
    armedInAir(engine);
    const f = commandLong(CMD.REBOOT, [1]);
    const v = allowed(engine.check(f));
    assert.equal(v.frame, f);
    assert.deepEqual(v.wouldBe, { action: 'deny', rule: 'reboot-while-armed', reason: 'reboot while armed' });
    const rec = records.at(-1)!;
    assert.equal(rec.verdict, 'deny');
    assert.equal(rec.dryRun, true);
    const m = new common.RequestDataStream();
    m.reqMessageRate = 100;
    m.startStop = 1;
    const rds = frameOf(m);
    const v2 = allowed(engine.check(rds));
    assert.equal(v2.frame, rds, 'no rewrite in dry run');
    assert.equal(records.at(-1)!.rewritten, true, 'but the record says it would have been');
    assert.equal(engine.stats().deny, 1);
    assert.equal(engine.stats().repliesSent, 0);
  });

  test('records carry the session, the frame summary and the command parameters', () => {
    const { engine, records } = makeEngine();
    armedInAir(engine);
    engine.check(commandLong(CMD.REBOOT, [1, 0, 0, 0, 0, 0, Number.NaN]));
    const r = records.at(-1)!;
    assert.equal(r.session, 'sess-1');
    assert.ok(!Number.isNaN(Date.parse(r.time)));
    assert.deepEqual(r.frame, {
      msgid: 76, name: 'COMMAND_LONG', sysid: 255, compid: 190, targetSystem: 1, targetComponent: 1,
      command: 246, commandName: 'PREFLIGHT_REBOOT_SHUTDOWN', params: [1, 0, 0, 0, 0, 0, 'NaN'],
    });
    assert.equal(r.rule, 'reboot-while-armed');
    assert.equal(r.verdict, 'deny');
    assert.equal(r.reason, 'reboot while armed');
    assert.equal(r.dryRun, false);
    assert.equal(r.routine, false);
  });

  test('counts per rule and verdict', () => {
    const { engine } = makeEngine();
    armedInAir(engine);
    engine.check(commandLong(CMD.REBOOT, [1]));
    engine.check(commandLong(CMD.REBOOT, [1]));
    engine.check(commandLong(CMD.RTL));
    engine.check(heartbeat({ armed: false, type: 6, autopilotType: 8 }, gcs));
    engine.check(commandLong(CMD.ARM_DISARM, [1, 2989]));
    const s = engine.stats();
    assert.equal(s.frames, 5);
    assert.deepEqual([s.allow, s.deny, s.confirm], [2, 2, 1]);
    assert.deepEqual(s.byRule['reboot-while-armed'], { allow: 0, deny: 2, confirm: 0 });
    assert.deepEqual(s.byRule['command-default'], { allow: 1, deny: 0, confirm: 0 });
    assert.deepEqual(s.byRule['message-allowed'], { allow: 1, deny: 0, confirm: 0 });
    assert.deepEqual(s.byRule['force-arm'], { allow: 0, deny: 0, confirm: 1 });
    assert.equal(s.state.armed, true);
    assert.equal(s.state.inAir, true);
    assert.equal(s.state.mode, 4);
  });

  test('a throwing onVerdict never reaches the caller', () => {
    const { engine } = makeEngine(undefined, { onVerdict: () => { throw new Error('logger down'); } });
    assert.equal(engine.check(commandLong(CMD.RTL)).action, 'allow');
    assert.equal(engine.stats().callbackErrors, 1);
  });
});

describe('observe()', () => {
  test('frames it does not watch cost a lookup: a million in well under a second', () => {
    const { engine } = makeEngine();
    const att = frameOf(new common.Attitude(), autopilot);
    const big = { ...att, msgid: 0x10000 + 30 };
    const t0 = performance.now();
    for (let i = 0; i < 1_000_000; i++) engine.observe(i & 1 ? att : big);
    const ms = performance.now() - t0;
    assert.ok(ms < 1000, `${ms.toFixed(0)} ms`);
    assert.equal(engine.state().autopilot, null);
  });

  test('frames it does not watch allocate nothing', () => {
    // A synchronous loop between two heap readings: nothing else runs, so the difference is ours.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const { engine } = makeEngine();
    const a = frameOf(new common.Attitude(), autopilot);
    const b = frameOf(new common.GlobalPositionInt(), autopilot);
    const c = { ...frameOf(new common.Attitude(), autopilot), msgid: 0x12345 };
    // Plain loops (a for...of here would allocate iterators of its own), in one function that is
    // warmed up first, so JIT compilation (code objects live on the heap too) does not count.
    const run = (n: number): void => {
      for (let i = 0; i < n; i++) {
        engine.observe(a);
        engine.observe(b);
        engine.observe(c);
      }
    };
    for (let k = 0; k < 5; k++) run(20_000);
    let grown = Infinity;
    for (let k = 0; k < 5; k++) {
      gc();
      const before = process.memoryUsage().heapUsed;
      run(20_000);
      grown = Math.min(grown, process.memoryUsage().heapUsed - before);
    }
    assert.ok(grown < 64 * 1024, `${grown} bytes for 60,000 calls (a 16-byte allocation per call would be ~960 KB)`);
  });

  test('truncated MAVLink 2 payloads read as zeros (base_mode 0: disarmed)', () => {
    const { engine } = makeEngine();
    engine.observe(heartbeat({ armed: true, customMode: 0 }));
    assert.equal(engine.state().armed, true);
    engine.observe(heartbeat({ armed: false, customMode: 0 }));
    assert.equal(engine.state().armed, false);
    assert.equal(engine.state().mode, 0);
  });
});
