import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse as parseYaml } from 'yaml';
import { common, type minimal } from 'node-mavlink';
import type { AirConfigInput } from '../../src/config/schema.js';
import { Chain } from '../fakes/chain.js';
import { GcsClient, squareMission } from '../fakes/gcs-client.js';
import { MqttSpy } from '../fakes/mqtt-spy.js';

/**
 * Issue 6's proof: the satellite profile (5 kbit/s = 625 B/s) on the air side, through a real
 * mosquitto. The ground station keeps its heartbeat, gets GLOBAL_POSITION_INT at the profile's
 * rate, every STATUSTEXT the autopilot sent, parameters (by index: a full download at this budget
 * takes minutes, see the diagnostics), and a mission upload; and the bytes the air publishes never
 * exceed 625 B/s × 10 s over any 10 s window.
 *
 * Accounting is the relay's own (AirRelay.charge): per publish, payload + topic + 7 bytes of MQTT
 * header (fixed header, topic length, packet id, properties).
 */
const VEHICLE = 'budget-1';
const PREFIX = 'mavmq';
const MQTT_OVERHEAD = 7;
const ARM = 400;
const DO_SET_MODE = 176;
const MAV_RESULT_FAILED = 4;
const PARAMS_BY_INDEX = 60;

interface Profile {
  budget: NonNullable<AirConfigInput['budget']> & { bytesPerSecond: number; windowMs: number; messageRatesHz: Record<string, number> };
  batching: AirConfigInput['batching'];
}

const profile = parseYaml(await readFile(new URL('../../config/profiles/satellite.yaml', import.meta.url), 'utf8')) as Profile;

let spy: MqttSpy | null = null;

/** Starts the spy on the up topics as soon as the broker is up, before the air's first publish. */
class SpiedChain extends Chain {
  override async startSim(): Promise<void> {
    spy = new MqttSpy(this.broker.url, `${PREFIX}/${this.vehicleId}/up/+`);
    await spy.start();
    await super.startSim();
  }
}

// No GPS fix during the test (sim ms; speedup 4): arming is refused with "PreArm:" texts.
const chain = new SpiedChain({ vehicleId: VEHICLE, sim: { speedup: 4, gpsDelayMs: 3_600_000 }, air: { budget: profile.budget, batching: profile.batching } });
/** A second ground station directly on the simulator's port: what the autopilot really sent. */
const direct = new GcsClient(254, 190);
let t0 = 0;

before(async () => {
  t0 = performance.now();
  await chain.start();
  await direct.connect(chain.simPort);
  await chain.gcs!.waitFor<minimal.Heartbeat>('HEARTBEAT', (h) => h.autopilot === 3, 15_000, 0);
});

after(async () => {
  direct.close();
  await spy?.stop();
  await chain.stop();
});

function texts(gcs: GcsClient, since: number): string[] {
  return gcs.rx.slice(since).filter((r) => r.name === 'STATUSTEXT' && r.frame.sysid === 1).map((r) => (r.msg as common.StatusText).text);
}

test('the satellite budget: a usable link, never over budget', { timeout: 85_000 }, async (t) => {
  const gcs = chain.gcs!;
  const bps = profile.budget.bytesPerSecond;
  const windowMs = profile.budget.windowMs;
  const gpiHz = profile.budget.messageRatesHz.GLOBAL_POSITION_INT!;
  assert.equal(bps, 625, 'the satellite profile is 5 kbit/s');

  let allParams = new Map<string, number>();
  await t.test('reference parameter list, straight from the autopilot', async () => {
    allParams = await direct.downloadParams(20_000);
    assert.ok(allParams.size > PARAMS_BY_INDEX);
  });

  await t.test('telemetry: HEARTBEAT and GLOBAL_POSITION_INT at the profile rate', async () => {
    const mark = gcs.mark;
    const directMark = direct.mark;
    const from = performance.now();
    await sleep(10_000);
    const secs = (performance.now() - from) / 1000;
    const gpiAt = gcs.rx.slice(mark).filter((r) => r.name === 'GLOBAL_POSITION_INT' && r.frame.sysid === 1).map((r) => r.atMs);
    const gpi = gpiAt.length;
    const gaps = gpiAt.slice(1).map((at, i) => Math.round(at - gpiAt[i]!));
    const gpiDirect = direct.rx.slice(directMark).filter((r) => r.name === 'GLOBAL_POSITION_INT').length;
    const hb = gcs.rx.slice(mark).filter((r) => r.name === 'HEARTBEAT' && r.frame.sysid === 1 && r.frame.compid === 1).length;
    t.diagnostic(`in ${secs.toFixed(1)} s: GLOBAL_POSITION_INT ${gpi} through the relay (autopilot sent ${gpiDirect}), autopilot HEARTBEAT ${hb}; GLOBAL_POSITION_INT gaps ${gaps.join(' ')} ms`);
    assert.ok(gpiDirect > gpi * 1.5, 'the autopilot streams faster than the cap (the cap is doing something)');
    assert.ok(gpi >= Math.round(gpiHz * secs * 0.8) && gpi <= Math.ceil(gpiHz * secs) + 1, `GLOBAL_POSITION_INT ${gpi} in ${secs.toFixed(1)} s, profile ${gpiHz} Hz`);
    assert.ok(hb >= secs * 0.7, `HEARTBEAT ${hb} in ${secs.toFixed(1)} s`);
  });

  await t.test('every STATUSTEXT the autopilot sent arrives (arming refused before the GPS fix, a refused mode)', async () => {
    const mark = gcs.mark;
    const directMark = direct.mark;
    assert.equal(await gcs.command(ARM, [1], 10_000, 0), MAV_RESULT_FAILED, 'arming refused: no GPS fix');
    assert.equal(await gcs.command(DO_SET_MODE, [1, 99], 10_000, 0), MAV_RESULT_FAILED, 'unsupported mode refused');
    const sent = texts(direct, directMark);
    assert.ok(sent.some((s) => s.startsWith('PreArm:')), `PreArm texts sent: ${JSON.stringify(sent)}`);
    assert.ok(sent.some((s) => s.startsWith('Mode change')), `mode text sent: ${JSON.stringify(sent)}`);
    const deadline = performance.now() + 15_000;
    for (;;) {
      const got = texts(gcs, mark);
      const missing = [...sent];
      for (const s of got) {
        const i = missing.indexOf(s);
        if (i >= 0) missing.splice(i, 1);
      }
      if (missing.length === 0) {
        t.diagnostic(`STATUSTEXT: autopilot sent ${sent.length}, ground station got ${got.length}: ${JSON.stringify(got)}`);
        break;
      }
      if (performance.now() > deadline) assert.fail(`STATUSTEXT missing at the ground station: ${JSON.stringify(missing)} (got ${JSON.stringify(got)})`);
      await sleep(50);
    }
  });

  await t.test('a 5-item mission uploads and reads back', async () => {
    const items = squareMission(5);
    const from = performance.now();
    assert.equal(await gcs.uploadMission(items, 30_000), 0, 'MAV_MISSION_ACCEPTED');
    const back = await gcs.downloadMission(30_000);
    t.diagnostic(`mission upload + download: ${Math.round(performance.now() - from)} ms`);
    assert.equal(back.length, items.length);
    for (let i = 1; i < items.length; i++) {
      assert.equal(back[i]!.command, items[i]!.command, `item ${i} command`);
      assert.equal(back[i]!.x, items[i]!.x, `item ${i} lat`);
      assert.equal(back[i]!.y, items[i]!.y, `item ${i} lon`);
    }
  });

  await t.test(`parameters by index (${PARAMS_BY_INDEX} of them), values equal to the autopilot's`, async () => {
    const mark = gcs.mark;
    const from = performance.now();
    const want = new Set<number>(Array.from({ length: PARAMS_BY_INDEX }, (_, i) => i));
    const got = new Map<number, common.ParamValue>();
    let scanned = mark;
    let lastRequest = Number.NEGATIVE_INFINITY;
    let lastProgress = performance.now();
    const deadline = performance.now() + 30_000;
    while (got.size < want.size) {
      for (; scanned < gcs.rx.length; scanned++) {
        const r = gcs.rx[scanned]!;
        if (r.name !== 'PARAM_VALUE') continue;
        const pv = r.msg as common.ParamValue;
        if (want.has(pv.paramIndex) && !got.has(pv.paramIndex)) {
          got.set(pv.paramIndex, pv);
          lastProgress = performance.now();
        }
      }
      // Ask for what is missing; again only after a silence (the budget trickles the answers).
      if (performance.now() - Math.max(lastRequest, lastProgress) > 5000) {
        for (const i of want) {
          if (got.has(i)) continue;
          const rr = new common.ParamRequestRead();
          rr.targetSystem = 1;
          rr.targetComponent = 1;
          rr.paramIndex = i;
          rr.paramId = '';
          gcs.send(rr);
        }
        lastRequest = performance.now();
      }
      if (performance.now() > deadline) assert.fail(`parameters by index: ${got.size}/${want.size} after 30 s`);
      await sleep(20);
    }
    const ms = performance.now() - from;
    const perParamMs = ms / PARAMS_BY_INDEX;
    t.diagnostic(`${PARAMS_BY_INDEX} parameters in ${Math.round(ms)} ms; the full list of ${allParams.size} would take ~${Math.round(perParamMs * allParams.size / 1000)} s at this rate`);
    for (const pv of got.values()) {
      assert.equal(pv.paramCount, allParams.size, 'param count');
      assert.ok(allParams.has(pv.paramId), `unknown parameter ${pv.paramId}`);
      assert.equal(pv.paramValue, allParams.get(pv.paramId), `value of ${pv.paramId}`);
    }
  });

  await t.test(`the air never publishes more than ${bps} B/s × ${windowMs / 1000} s in any window`, async () => {
    await sleep(1000); // whatever is still batched goes out
    const hbAt = gcs.rx.filter((r) => r.name === 'HEARTBEAT' && r.frame.sysid === 1 && r.frame.compid === 1).map((r) => r.atMs);
    const hbGap = Math.max(...hbAt.slice(1).map((at, i) => at - hbAt[i]!));
    const gapAt = hbAt.slice(1).findIndex((at, i) => at - hbAt[i]! === hbGap);
    t.diagnostic(`autopilot HEARTBEAT: ${hbAt.length}, longest gap ${Math.round(hbGap)} ms over the whole test, ending ${((hbAt[gapAt + 1]! - hbAt[0]!) / 1000).toFixed(1)} s after the first`);
    const msgs = spy!.messages;
    assert.ok(msgs.length > 50, `${msgs.length} publishes captured`);
    const limit = (bps * windowMs) / 1000;
    let worst = 0;
    let worstAt = 0;
    let sum = 0;
    let j = 0;
    // Sliding window ending at each publish: [m.atMs - windowMs, m.atMs].
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      sum += m.payload.length + m.topic.length + MQTT_OVERHEAD;
      while (msgs[j]!.atMs <= m.atMs - windowMs) {
        sum -= msgs[j]!.payload.length + msgs[j]!.topic.length + MQTT_OVERHEAD;
        j++;
      }
      if (sum > worst) {
        worst = sum;
        worstAt = m.atMs;
      }
    }
    const total = msgs.reduce((n, m) => n + m.payload.length + m.topic.length + MQTT_OVERHEAD, 0);
    const spanS = (msgs.at(-1)!.atMs - msgs[0]!.atMs) / 1000;
    const byTopic: Record<string, number> = {};
    for (const m of msgs) byTopic[m.topic.split('/').at(-1)!] = (byTopic[m.topic.split('/').at(-1)!] ?? 0) + 1;
    t.diagnostic(`${msgs.length} publishes ${JSON.stringify(byTopic)}, ${total} B in ${spanS.toFixed(1)} s (${Math.round(total / spanS)} B/s average); `
      + `worst ${windowMs / 1000} s window ${worst} B of ${limit} (ending ${((worstAt - t0) / 1000).toFixed(1)} s after start)`);
    assert.ok(worst <= limit, `a ${windowMs} ms window carried ${worst} B > ${limit} B`);
    assert.ok(hbGap <= 2500, `HEARTBEAT gap ${Math.round(hbGap)} ms (HEARTBEAT is critical: never capped)`);
  });
});
