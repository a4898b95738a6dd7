import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { common, minimal } from 'node-mavlink';
import { Chain } from '../fakes/chain.js';
import { squareMission } from '../fakes/gcs-client.js';

/**
 * The end-to-end proof, through a real mosquitto: sim -> air -> broker -> ground -> GCS.
 * Heartbeat, full parameter download, 10-waypoint mission round trip, arm, takeoff to 10 m, RTL,
 * landed and disarmed.
 */
const chain = new Chain({ sim: { speedup: 5, gpsDelayMs: 1500 } });
before(async () => {
  await chain.start();
});
after(async () => {
  await chain.stop();
});

const GUIDED = 4;
const RTL = 6;
const ARMED = 128;

test('a ground station flies the simulated vehicle through the encrypted relay', { timeout: 180_000 }, async (t) => {
  const gcs = chain.gcs!;

  await t.test('heartbeat of the autopilot arrives', async () => {
    const hb = await gcs.waitFor<minimal.Heartbeat>('HEARTBEAT', (h) => h.autopilot === 3, 15_000, 0);
    assert.equal(hb.type, 2);
  });

  await t.test('all parameters download, count matching', async () => {
    const params = await gcs.downloadParams(90_000);
    const first = await gcs.waitFor<common.ParamValue>('PARAM_VALUE', () => true, 1000, 0);
    assert.equal(params.size, first.paramCount);
    assert.ok(params.size > 300, `only ${params.size} parameters`);
    assert.ok(params.has('SYSID_THISMAV'));
  });

  await t.test('a 10-waypoint mission uploads and reads back equal', async () => {
    const items = squareMission(10);
    const result = await gcs.uploadMission(items);
    assert.equal(result, 0, 'MAV_MISSION_ACCEPTED');
    const back = await gcs.downloadMission();
    assert.equal(back.length, 10);
    // Item 0 is ArduPilot's home slot (rewritten by the autopilot); the rest must come back as sent.
    assert.equal(back[0]!.command, 16);
    for (let i = 1; i < 10; i++) {
      assert.equal(back[i]!.command, items[i]!.command, `item ${i} command`);
      assert.equal(back[i]!.x, items[i]!.x, `item ${i} lat`);
      assert.equal(back[i]!.y, items[i]!.y, `item ${i} lon`);
      assert.ok(Math.abs(back[i]!.z - items[i]!.z) < 1e-3, `item ${i} alt`);
    }
  });

  await t.test('GUIDED, arm, takeoff to 10 m', async () => {
    assert.equal(await gcs.setMode(GUIDED), 0);
    // Arming waits for the GPS fix like a real autopilot; retry until accepted.
    let armed = -1;
    for (let i = 0; i < 20 && armed !== 0; i++) {
      armed = await gcs.command(400, [1]);
      if (armed !== 0) await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(armed, 0, 'arming accepted');
    assert.equal(await gcs.command(22, [0, 0, 0, 0, 0, 0, 10]), 0, 'takeoff accepted');
    const pos = await gcs.waitFor<common.GlobalPositionInt>('GLOBAL_POSITION_INT', (p) => p.relativeAlt >= 9_500, 60_000);
    assert.ok(pos.relativeAlt >= 9_500);
  });

  await t.test('RTL brings it home, landed and disarmed', async () => {
    assert.equal(await gcs.setMode(RTL), 0);
    await gcs.waitFor<minimal.Heartbeat>('HEARTBEAT', (h) => h.customMode === RTL, 10_000);
    const disarmed = await gcs.waitFor<minimal.Heartbeat>('HEARTBEAT', (h) => h.autopilot === 3 && (h.baseMode & ARMED) === 0, 120_000);
    assert.equal(disarmed.baseMode & ARMED, 0);
    const pos = await gcs.waitFor<common.GlobalPositionInt>('GLOBAL_POSITION_INT', (p) => p.relativeAlt < 500, 5_000);
    assert.ok(pos.relativeAlt < 500);
  });

  await t.test('the gateway reports link health', () => {
    const snap = chain.ground!.snapshot();
    const v = snap.vehicles[0]!.relay;
    assert.equal(v.online, true);
    assert.ok(v.sessionId !== null);
    assert.ok(v.framesIn > 1000);
    assert.ok(v.framesOut > 10);
    assert.deepEqual(v.rejected, {});
  });
});
