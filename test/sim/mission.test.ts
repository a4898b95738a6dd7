import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { common, minimal } from 'node-mavlink';
import { FrameWriter } from '../../src/mavlink/codec.js';
import { CopterMode } from '../../src/sim/index.js';
import { FakeGcs } from './gcs.js';

const MR = common.MavMissionResult;
const MT = common.MavMissionType;
const CMD = common.MavCmd;
const HOME = { lat: -353632610, lon: 1491652300 };

interface Item {
  command: number;
  frame: number;
  x: number;
  y: number;
  z: number;
  p1?: number;
  p2?: number;
}

function item(seq: number, it: Item, type: number = MT.MISSION): common.MissionItemInt {
  const m = new common.MissionItemInt();
  m.targetSystem = 1;
  m.targetComponent = 1;
  m.seq = seq;
  m.frame = it.frame;
  m.command = it.command;
  m.current = seq === 0 ? 1 : 0;
  m.autocontinue = 1;
  m.param1 = it.p1 ?? 0;
  m.param2 = it.p2 ?? 0;
  m.param3 = 0;
  m.param4 = 0;
  m.x = it.x;
  m.y = it.y;
  m.z = it.z;
  m.missionType = type;
  return m;
}

/** Home + 10 waypoints on a 30 m grid with varied parameters. */
function tenWaypoints(): Item[] {
  const items: Item[] = [{ command: CMD.NAV_WAYPOINT, frame: common.MavFrame.GLOBAL, x: HOME.lat, y: HOME.lon, z: 584 }];
  for (let i = 1; i <= 10; i++) {
    items.push({ command: CMD.NAV_WAYPOINT, frame: common.MavFrame.GLOBAL_RELATIVE_ALT_INT, x: HOME.lat + i * 2700, y: HOME.lon - i * 1100, z: 10 + i, p1: i % 3 });
  }
  return items;
}

function count(g: FakeGcs, n: number, type: number = MT.MISSION, writer?: FrameWriter): void {
  const m = new common.MissionCount();
  m.targetSystem = 1;
  m.targetComponent = 1;
  m.count = n;
  m.missionType = type;
  g.send(m, writer);
}

/** Full upload as a GCS does it: answer each MISSION_REQUEST_INT until MISSION_ACK. */
function upload(g: FakeGcs, items: Item[], type: number = MT.MISSION): common.MissionAck {
  const since = g.mark;
  count(g, items.length, type);
  let handled = since;
  for (let guard = 0; guard < items.length * 3 + 5; guard++) {
    const r = g.rx.slice(handled).find((x) => x.name === 'MISSION_REQUEST_INT' || x.name === 'MISSION_ACK');
    if (r === undefined) {
      g.advance(10);
      continue;
    }
    handled = g.rx.indexOf(r) + 1;
    if (r.name === 'MISSION_ACK') return r.msg as common.MissionAck;
    const req = r.msg as common.MissionRequestInt;
    assert.equal(req.missionType, type);
    assert.equal(req.targetSystem, 255, 'requests are addressed to the uploading GCS');
    g.send(item(req.seq, items[req.seq]!, type));
  }
  throw new Error('upload did not finish');
}

function download(g: FakeGcs, type: number = MT.MISSION, legacy = false): Array<common.MissionItemInt | common.MissionItem> {
  const rl = new common.MissionRequestList();
  rl.targetSystem = 1;
  rl.targetComponent = 1;
  rl.missionType = type;
  const since = g.mark;
  g.send(rl);
  const c = g.waitFor<common.MissionCount>('MISSION_COUNT', () => true, 1000, since);
  assert.equal(c.missionType, type);
  const out: Array<common.MissionItemInt | common.MissionItem> = [];
  for (let seq = 0; seq < c.count; seq++) {
    const req = legacy ? new common.MissionRequest() : new common.MissionRequestInt();
    req.targetSystem = 1;
    req.targetComponent = 1;
    req.seq = seq;
    req.missionType = type;
    const s = g.mark;
    g.send(req);
    out.push(g.waitFor<common.MissionItemInt>(legacy ? 'MISSION_ITEM' : 'MISSION_ITEM_INT', (m) => m.seq === seq, 1000, s));
  }
  return out;
}

describe('sim mission protocol', () => {
  it('round-trips a 10-waypoint mission: upload then download gives the same items', () => {
    const g = new FakeGcs();
    g.advance(4000); // GPS fix, home set
    const items = tenWaypoints();
    const ack = upload(g, items);
    assert.equal(ack.type, MR.ACCEPTED);
    assert.equal(ack.targetSystem, 255);
    const got = download(g) as common.MissionItemInt[];
    assert.equal(got.length, 11);
    for (let i = 1; i <= 10; i++) {
      const want = items[i]!;
      const m = got[i]!;
      assert.deepEqual(
        [m.seq, m.command, m.frame, m.x, m.y, m.z, m.param1, m.autocontinue, m.missionType],
        [i, want.command, want.frame, want.x, want.y, want.z, want.p1, 1, MT.MISSION],
        `item ${i}`,
      );
    }
    // Item 0 is home, as ArduPilot reports it.
    assert.equal(got[0]!.command, CMD.NAV_WAYPOINT);
    assert.equal(got[0]!.x, HOME.lat);
    assert.equal(got[0]!.y, HOME.lon);
  });

  it('answers legacy MISSION_REQUEST with float MISSION_ITEM', () => {
    const g = new FakeGcs();
    g.advance(4000);
    assert.equal(upload(g, tenWaypoints()).type, MR.ACCEPTED);
    const got = download(g, MT.MISSION, true) as common.MissionItem[];
    assert.equal(got.length, 11);
    // float32 degrees: ~4e-6° resolution at this latitude (why MISSION_ITEM_INT exists).
    assert.ok(Math.abs(got[3]!.x - (HOME.lat + 3 * 2700) / 1e7) < 1e-5);
    assert.equal(got[3]!.z, 13);
  });

  it('re-requests a lost item after the timeout and completes', () => {
    const g = new FakeGcs({ missionRetryMs: 1500 });
    const items = tenWaypoints();
    const since = g.mark;
    count(g, items.length);
    // Answer seq 0 and 1, then "lose" the answer to seq 2.
    for (const seq of [0, 1]) {
      g.waitFor<common.MissionRequestInt>('MISSION_REQUEST_INT', (r) => r.seq === seq, 100, since);
      g.send(item(seq, items[seq]!));
    }
    const firstAsk = g.waitFor<common.MissionRequestInt>('MISSION_REQUEST_INT', (r) => r.seq === 2, 100, since);
    assert.ok(firstAsk);
    const t0 = g.now;
    const s2 = g.mark;
    g.waitFor<common.MissionRequestInt>('MISSION_REQUEST_INT', (r) => r.seq === 2, 3000, s2);
    const waited = g.now - t0;
    assert.ok(waited >= 1500 && waited < 1700, `re-requested after ${waited} ms`);
    // A GCS that skips ahead is asked again, at once, for the item we need.
    const s3 = g.mark;
    g.send(item(3, items[3]!));
    assert.deepEqual(g.all<common.MissionRequestInt>('MISSION_REQUEST_INT', s3).map((r) => r.seq), [2]);
    // A late duplicate of seq 1 does not confuse it.
    g.send(item(1, items[1]!));
    for (let seq = 2; seq < items.length; seq++) {
      g.send(item(seq, items[seq]!));
    }
    const ack = g.waitFor<common.MissionAck>('MISSION_ACK', () => true, 500, s2);
    assert.equal(ack.type, MR.ACCEPTED);
    assert.equal(g.core.missions.items(MT.MISSION).length, 11);
  });

  it('gives up after the retries with MAV_MISSION_OPERATION_CANCELLED and keeps the old mission', () => {
    const g = new FakeGcs({ missionRetryMs: 1000, missionMaxRetries: 3 });
    assert.equal(upload(g, tenWaypoints().slice(0, 3)).type, MR.ACCEPTED);
    const since = g.mark;
    count(g, 5);
    const ack = g.waitFor<common.MissionAck>('MISSION_ACK', () => true, 10_000, since);
    assert.equal(ack.type, MR.OPERATION_CANCELLED);
    assert.equal(g.all('MISSION_REQUEST_INT', since).length, 4, 'one request + 3 retries');
    assert.ok(g.all<common.StatusText>('STATUSTEXT', since).some((t) => t.text === 'Mission upload timeout'));
    assert.equal(g.core.missions.items(MT.MISSION).length, 3);
  });

  it('denies a second GCS while an upload is in progress, and refuses too many items', () => {
    const g = new FakeGcs({ maxMissionItems: 50 });
    count(g, 5);
    const other = new FrameWriter(g.codec, 254, 190);
    const since = g.mark;
    count(g, 3, MT.MISSION, other);
    const ack = g.waitFor<common.MissionAck>('MISSION_ACK', () => true, 100, since);
    assert.equal(ack.type, MR.DENIED);
    assert.equal(ack.targetSystem, 254);
    const s2 = g.mark;
    count(g, 51);
    assert.equal(g.waitFor<common.MissionAck>('MISSION_ACK', () => true, 100, s2).type, MR.NO_SPACE);
  });

  it('rejects an unsupported command and clears with MISSION_CLEAR_ALL', () => {
    const g = new FakeGcs();
    const items = tenWaypoints().slice(0, 3);
    items[2] = { ...items[2]!, command: 12345 };
    assert.equal(upload(g, items).type, MR.UNSUPPORTED);
    assert.equal(upload(g, tenWaypoints()).type, MR.ACCEPTED);
    const clear = new common.MissionClearAll();
    clear.targetSystem = 1;
    clear.targetComponent = 1;
    clear.missionType = MT.MISSION;
    const since = g.mark;
    g.send(clear);
    assert.equal(g.waitFor<common.MissionAck>('MISSION_ACK', () => true, 100, since).type, MR.ACCEPTED);
    assert.equal(download(g).length, 0);
  });

  it('stores fence and rally lists separately', () => {
    const g = new FakeGcs();
    const fence: Item[] = [0, 1, 2, 3].map((i) => ({ command: 5001, frame: common.MavFrame.GLOBAL_INT, x: HOME.lat + (i % 2) * 5000, y: HOME.lon + (i >> 1) * 5000, z: 0, p1: 4 }));
    assert.equal(upload(g, fence, MT.FENCE).type, MR.ACCEPTED);
    assert.equal(download(g, MT.FENCE).length, 4);
    assert.equal(download(g, MT.RALLY).length, 0);
    assert.equal(download(g, MT.MISSION).length, 0);
  });

  it('AUTO flies takeoff → waypoints → land, reporting MISSION_CURRENT and MISSION_ITEM_REACHED', () => {
    const g = new FakeGcs({ speedup: 10 });
    g.advance(500);
    const mission: Item[] = [
      { command: CMD.NAV_WAYPOINT, frame: common.MavFrame.GLOBAL, x: HOME.lat, y: HOME.lon, z: 584 },
      { command: CMD.NAV_TAKEOFF, frame: common.MavFrame.GLOBAL_RELATIVE_ALT_INT, x: 0, y: 0, z: 12 },
      { command: CMD.NAV_WAYPOINT, frame: common.MavFrame.GLOBAL_RELATIVE_ALT_INT, x: HOME.lat + 4000, y: HOME.lon, z: 15 },
      { command: CMD.DO_CHANGE_SPEED, frame: common.MavFrame.MISSION, x: 0, y: 0, z: 0, p1: 1, p2: 5 },
      { command: CMD.NAV_WAYPOINT, frame: common.MavFrame.GLOBAL_RELATIVE_ALT_INT, x: HOME.lat + 4000, y: HOME.lon + 5000, z: 15, p1: 2 },
      { command: CMD.NAV_LAND, frame: common.MavFrame.GLOBAL_RELATIVE_ALT_INT, x: HOME.lat, y: HOME.lon + 5000, z: 0 },
    ];
    assert.equal(upload(g, mission).type, MR.ACCEPTED);
    assert.equal(g.setMode(CopterMode.GUIDED), common.MavResult.ACCEPTED);
    assert.equal(g.arm(), common.MavResult.ACCEPTED);
    const since = g.mark;
    assert.equal(g.setMode(CopterMode.AUTO), common.MavResult.ACCEPTED);
    const landed = g.waitFor<minimal.Heartbeat>('HEARTBEAT', (hb) => (hb.baseMode & minimal.MavModeFlag.SAFETY_ARMED) === 0, 30_000, since);
    assert.equal(landed.customMode, CopterMode.AUTO);
    const reached = g.all<common.MissionItemReached>('MISSION_ITEM_REACHED', since).map((m) => m.seq);
    assert.deepEqual(reached, [1, 2, 4, 5]);
    const seqs = new Set(g.all<common.MissionCurrent>('MISSION_CURRENT', since).map((m) => m.seq));
    for (const s of [1, 2, 4, 5]) assert.ok(seqs.has(s), `MISSION_CURRENT ${s}`);
    const last = g.waitFor<common.MissionCurrent>('MISSION_CURRENT', () => true, 2000);
    assert.equal(last.total, 5);
    assert.equal(last.missionState, common.MissionState.COMPLETE);
    const p = g.lastPosition();
    assert.ok(Math.abs(p.lat - HOME.lat) < 30 && Math.abs(p.lon - (HOME.lon + 5000)) < 40, `landed at the LAND item: ${p.lat},${p.lon}`);
    const texts = g.all<common.StatusText>('STATUSTEXT', since).map((t) => t.text);
    assert.ok(texts.includes('Mission: 1 Takeoff') && texts.includes('Reached command #2'), JSON.stringify(texts));
  });

  it('refuses AUTO when armed on the ground without a takeoff item', () => {
    const g = new FakeGcs({ speedup: 10 });
    g.advance(500);
    assert.equal(upload(g, tenWaypoints()).type, MR.ACCEPTED);
    assert.equal(g.setMode(CopterMode.GUIDED), common.MavResult.ACCEPTED);
    assert.equal(g.arm(), common.MavResult.ACCEPTED);
    const since = g.mark;
    assert.equal(g.setMode(CopterMode.AUTO), common.MavResult.FAILED);
    assert.ok(g.all<common.StatusText>('STATUSTEXT', since).some((t) => t.text === 'Auto: Missing Takeoff Cmd'));
  });

  it('MISSION_SET_CURRENT changes the current item', () => {
    const g = new FakeGcs();
    assert.equal(upload(g, tenWaypoints()).type, MR.ACCEPTED);
    const m = new common.MissionSetCurrent();
    m.targetSystem = 1;
    m.targetComponent = 1;
    m.seq = 7;
    const since = g.mark;
    g.send(m);
    assert.equal(g.waitFor<common.MissionCurrent>('MISSION_CURRENT', () => true, 100, since).seq, 7);
  });
});
