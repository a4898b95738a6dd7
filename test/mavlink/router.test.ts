import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { common, minimal } from 'node-mavlink';
import { ardupilotmegaDialect } from '../../src/mavlink/dialect.js';
import { Router, type RouterPort, type PortFilter } from '../../src/mavlink/router.js';
import { Codec, FrameWriter } from '../../src/mavlink/codec.js';
import { describeFrame, type Frame } from '../../src/mavlink/framer.js';

const dialect = ardupilotmegaDialect();
const codec = new Codec(dialect);

class Sink implements RouterPort {
  got: Frame[] = [];
  constructor(readonly id: string, readonly filter?: PortFilter) {}
  deliver(frame: Frame): void {
    this.got.push(frame);
  }
  msgids(): number[] {
    return this.got.map((f) => f.msgid);
  }
}

function heartbeat(sysid: number, compid: number): Frame {
  const hb = new minimal.Heartbeat();
  hb.mavlinkVersion = 3;
  return describeFrame(new FrameWriter(codec, sysid, compid).encode(hb));
}
function commandTo(fromSys: number, fromComp: number, ts: number, tc: number): Frame {
  const c = new common.CommandLong();
  c.command = 400 as common.MavCmd;
  c.targetSystem = ts;
  c.targetComponent = tc;
  return describeFrame(new FrameWriter(codec, fromSys, fromComp).encode(c));
}

function setup(filters: Record<string, PortFilter> = {}): { router: Router; ap: Sink; gcs: Sink; cam: Sink; gcs2: Sink } {
  let now = 0;
  const router = new Router(dialect, { nowMs: () => now, forgetAfterMs: 10_000 });
  const ap = new Sink('autopilot', filters['autopilot']);
  const gcs = new Sink('gcs', filters['gcs']);
  const cam = new Sink('camera', filters['camera']);
  const gcs2 = new Sink('gcs2', filters['gcs2']);
  for (const p of [ap, gcs, cam, gcs2]) router.addPort(p);
  // Each port announces who lives behind it.
  router.route('autopilot', heartbeat(1, 1));
  router.route('gcs', heartbeat(255, 190));
  router.route('camera', heartbeat(1, 100));
  for (const p of [ap, gcs, cam, gcs2]) p.got = [];
  Object.assign(router, { advance: (ms: number) => { now += ms; router.tick(); } });
  return { router, ap, gcs, cam, gcs2 };
}

describe('router', () => {
  test('broadcast goes everywhere except the origin', () => {
    const { router, ap, gcs, cam, gcs2 } = setup();
    router.route('autopilot', heartbeat(1, 1));
    assert.equal(ap.got.length, 0, 'no echo to origin');
    assert.equal(gcs.got.length, 1);
    assert.equal(cam.got.length, 1);
    assert.equal(gcs2.got.length, 1);
  });

  test('targeted frames go only to the port that holds the target', () => {
    const { router, ap, gcs, cam, gcs2 } = setup();
    router.route('gcs', commandTo(255, 190, 1, 1));
    assert.deepEqual(ap.msgids(), [76]);
    assert.equal(cam.got.length, 0, 'camera is 1/100, not 1/1');
    assert.equal(gcs2.got.length, 0);
    assert.equal(gcs.got.length, 0);
    router.route('gcs', commandTo(255, 190, 1, 100));
    assert.deepEqual(cam.msgids(), [76]);
    assert.equal(ap.got.length, 1);
  });

  test('target component 0 reaches every port holding the system', () => {
    const { router, ap, cam, gcs2 } = setup();
    router.route('gcs', commandTo(255, 190, 1, 0));
    assert.equal(ap.got.length, 1);
    assert.equal(cam.got.length, 1);
    assert.equal(gcs2.got.length, 0);
  });

  test('a target nobody has heard from is broadcast (not lost) and counted', () => {
    const { router, ap, cam, gcs2 } = setup();
    router.route('gcs', commandTo(255, 190, 7, 1));
    assert.equal(ap.got.length + cam.got.length + gcs2.got.length, 3);
    assert.equal(router.stats().unknownTarget, 1);
  });

  test('a target that lives only behind the origin is not echoed back', () => {
    const { router, gcs } = setup();
    router.route('gcs', commandTo(255, 190, 255, 190));
    assert.equal(gcs.got.length, 0);
    assert.equal(router.stats().noRoute, 1);
  });

  test('silent nodes are forgotten', () => {
    const { router, ap, cam, gcs2 } = setup();
    (router as unknown as { advance(ms: number): void }).advance(20_000);
    router.route('gcs', commandTo(255, 190, 1, 1));
    // The autopilot was forgotten, so the command is treated as to an unknown target: broadcast.
    assert.equal(ap.got.length + cam.got.length + gcs2.got.length, 3);
  });

  test('in/out filters by msgid, sysid and compid', () => {
    const { router, ap, gcs, cam } = setup({ camera: { out: { allowMsgids: [0] } }, gcs: { in: { blockMsgids: [76] } } });
    router.route('autopilot', commandTo(1, 1, 0, 0));
    assert.equal(cam.got.length, 0, 'camera only takes HEARTBEAT');
    router.route('autopilot', heartbeat(1, 1));
    assert.equal(cam.got.length, 1);
    router.route('gcs', commandTo(255, 190, 1, 1));
    assert.equal(ap.got.length, 0, 'gcs may not send COMMAND_LONG');
    const s = router.stats();
    assert.equal(s.ports.find((p) => p.id === 'gcs')?.filteredIn, 1);
    assert.equal(s.ports.find((p) => p.id === 'camera')?.filteredOut, 1);
    assert.ok(gcs.got.length >= 1);
  });

  test('removed ports get nothing', () => {
    const { router, gcs2 } = setup();
    router.removePort('gcs2');
    router.route('autopilot', heartbeat(1, 1));
    assert.equal(gcs2.got.length, 0);
  });
});
