import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { common, type minimal } from 'node-mavlink';
import { Chain } from '../fakes/chain.js';

/** The same policy engine on the gateway (defense in depth, enabled here): refusals never leave the ground. */
const chain = new Chain({ ground: { policy: { enabled: true } }, sim: { speedup: 4 } });
before(() => chain.start());
after(() => chain.stop());

test('the ground-side policy refuses SERIAL_CONTROL before it is sealed; allowed commands still run', async () => {
  const gcs = chain.gcs!;
  await gcs.waitFor<minimal.Heartbeat>('HEARTBEAT', (h) => h.autopilot === 3, 15_000, 0);
  const airIn = chain.air!.snapshot().relay!.framesIn;
  const mark = gcs.mark;
  const sc = new common.SerialControl();
  sc.device = 0 as common.SerialControlDev;
  sc.flags = 0 as common.SerialControlFlag;
  sc.count = 3;
  sc.data = [65, 66, 67, ...new Array<number>(67).fill(0)];
  gcs.send(sc);
  const text = await gcs.waitFor<common.StatusText>('STATUSTEXT', (t) => /DENIED/i.test(t.text), 5000, mark);
  assert.match(text.text, /mavmq/i);
  await sleep(500);
  const v = chain.ground!.snapshot().vehicles[0]!.relay;
  assert.ok(v.framesRefused >= 1, 'counted at the gateway');
  // Only the GCS's own heartbeats went up meanwhile: SERIAL_CONTROL (msgid 126) never reached the air.
  const snap = chain.air!.snapshot();
  assert.ok(snap.relay!.framesIn - airIn <= 3, 'nothing but heartbeats reached the vehicle');
  assert.equal(snap.policy?.byRule ? Object.keys(snap.policy.byRule).some((r) => /serial/i.test(r)) : false, false, 'the air policy never saw it');
  // An allowed command still works through both policies.
  assert.equal(await gcs.command(511, [33, 200_000]), 0);
});
