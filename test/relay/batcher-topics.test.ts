import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Batcher } from '../../src/uplink/batcher.js';
import { Topics } from '../../src/uplink/topics.js';
import { splitFrames } from '../../src/mavlink/framer.js';
import { telemetryFrames } from '../../scripts/bench/framer.js';

test('batcher packs by size, flushes by time and at once for critical frames', async () => {
  const batches: { body: Buffer; frames: number }[] = [];
  const b = new Batcher({ maxBytes: 200, maxDelayMs: 30, onBatch: (body, frames) => batches.push({ body, frames }) });
  const frames = telemetryFrames(20);
  for (const f of frames) b.add(f);
  // Size-bound batches never exceed maxBytes and keep frame order.
  assert.ok(batches.length >= 2);
  assert.ok(batches.every((x) => x.body.length <= 200));
  await sleep(60);
  const all = Buffer.concat(batches.map((x) => x.body));
  assert.ok(all.equals(Buffer.concat(frames)), 'every frame, in order, nothing duplicated');
  const split: Buffer[] = [];
  for (const x of batches) assert.ok(splitFrames(x.body, (f) => split.push(f.bytes)));
  assert.equal(split.length, 20);
  const n = batches.length;
  b.add(frames[0]!, true);
  assert.equal(batches.length, n + 1, 'critical frame flushed immediately');
  b.add(frames[1]!);
  b.clear();
  await sleep(60);
  assert.equal(batches.length, n + 1, 'cleared batch never sent');
});

test('topics: one level per vehicle, parse is the inverse of build, foreign topics rejected', () => {
  const t = new Topics('fleet/a');
  assert.equal(t.up('drone-1', 'telemetry'), 'fleet/a/drone-1/up/telemetry');
  assert.equal(t.down('drone-1', 'command'), 'fleet/a/drone-1/down/command');
  assert.deepEqual(t.parse('fleet/a/drone-1/up/telemetry'), { direction: 'up', vehicleId: 'drone-1', kind: 'telemetry' });
  assert.deepEqual(t.parse('fleet/a/drone-1/down/handshake'), { direction: 'down', vehicleId: 'drone-1', kind: 'handshake' });
  for (const bad of ['fleet/b/drone-1/up/telemetry', 'fleet/a/drone-1/up/bogus', 'fleet/a/drone 1/up/telemetry', 'fleet/a/x/y/up/telemetry', 'fleet/a/_gateways/g/status']) {
    assert.equal(t.parse(bad), null, bad);
  }
  assert.deepEqual(t.groundSubscriptions('drone-1'), ['fleet/a/drone-1/up/+']);
});
