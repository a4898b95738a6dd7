import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { common, minimal } from 'node-mavlink';
import { deriveHandshakeKeys, encodeRehello, readKeyFile } from '../../src/crypto/index.js';
import type { AirRelayStats } from '../../src/app/relay-air.js';
import { Chain } from '../fakes/chain.js';
import { until as waitUntil, rejectedDiff as diff } from '../fakes/wait.js';
import { squareMission, type GcsClient } from '../fakes/gcs-client.js';
import { CommandProbe, EnvelopeOracle, MqttSpy, envelopeHeader, isTaggedCommand, type BridgedMessage } from '../fakes/mqtt-spy.js';

/**
 * The relay's fault proofs, end to end through real mosquitto brokers: a broker restart in the
 * middle of a mission upload, and a broker that duplicates and reorders what the air receives.
 * In both, every command a ground station sends once reaches the autopilot at most once (exactly
 * once whenever the link was up), counted on the simulator's side by CommandProbe.
 */
const PREFIX = 'mavmq';
const STABILIZE = 0;
const ALT_HOLD = 2;
const LOITER = 5;
const DO_SET_MODE = 176;
const CUSTOM_MODE = 1;
const SIM = { speedup: 4, gpsDelayMs: 0, paramDefaults: { ARMING_CHECK: 0, DISARM_DELAY: 0 } };


function airStats(chain: Chain): AirRelayStats {
  return chain.air!.snapshot().relay!;
}

/** Both ends agree on one session. */
async function linked(chain: Chain): Promise<string> {
  await waitUntil(() => {
    const a = airStats(chain).sessionId;
    return a !== null && a === chain.ground!.snapshot().vehicles[0]!.relay.sessionId;
  }, 'session established at both ends');
  return airStats(chain).sessionId!;
}

/** One tagged COMMAND_LONG, sent once; resolves with its tag and the autopilot's answer. */
async function command(gcs: GcsClient, probe: CommandProbe, cmd: number, params: number[]): Promise<{ tag: number; result: number }> {
  const mark = gcs.mark;
  const tag = probe.send(gcs, cmd, params);
  const ack = await gcs.waitFor<common.CommandAck>('COMMAND_ACK', (a) => a.command === cmd, 10_000, mark);
  await probe.waitReceived(tag);
  return { tag, result: ack.result };
}

describe('8. broker restart in the middle of a mission upload', () => {
  const chain = new Chain({ vehicleId: 'fault-1', sim: SIM });
  const probe = new CommandProbe();
  let spy: MqttSpy;

  before(async () => {
    await chain.start();
    probe.attach(chain.sim!.link!);
    spy = new MqttSpy(chain.broker.url);
    await spy.start();
    await chain.gcs!.waitFor<minimal.Heartbeat>('HEARTBEAT', (h) => h.autopilot === 3, 15_000, 0);
    await linked(chain);
  });

  after(async () => {
    await spy?.stop();
    await chain.stop();
  });

  test('the upload completes, the mission reads back equal, and no command runs twice', { timeout: 45_000 }, async (t) => {
    const gcs = chain.gcs!;
    const cmdTopic = `${PREFIX}/${chain.vehicleId}/down/command`;
    const before = await command(gcs, probe, DO_SET_MODE, [CUSTOM_MODE, ALT_HOLD]);
    assert.equal(before.result, 0);
    const session1 = await linked(chain);
    const spyMark = spy.mark;

    const items = squareMission(10);
    const mark = gcs.mark;
    const upload = gcs.uploadMission(items, 30_000);
    upload.catch(() => undefined); // awaited below; never an unhandled rejection if the test fails first
    // Mid-way: the autopilot has asked for item 4.
    await gcs.waitFor<common.MissionRequestInt>('MISSION_REQUEST_INT', (r) => r.seq >= 4, 10_000, mark);
    await chain.broker.stop();
    // While the broker is down, a ground station sends one command, once.
    const during = probe.send(gcs, DO_SET_MODE, [CUSTOM_MODE, LOITER]);
    await sleep(2000);
    assert.equal(gcs.count('MISSION_ACK', mark), 0, 'the upload was cut mid-way');
    await chain.broker.start();

    assert.equal(await upload, 0, 'MISSION_ACK: MAV_MISSION_ACCEPTED');
    const session2 = await linked(chain);
    await spy.waitConnected();
    const back = await gcs.downloadMission();
    assert.equal(back.length, 10);
    assert.equal(back[0]!.command, 16, 'item 0 is the home slot');
    for (let i = 1; i < 10; i++) {
      assert.equal(back[i]!.command, items[i]!.command, `item ${i} command`);
      assert.equal(back[i]!.x, items[i]!.x, `item ${i} lat`);
      assert.equal(back[i]!.y, items[i]!.y, `item ${i} lon`);
      assert.ok(Math.abs(back[i]!.z - items[i]!.z) < 1e-3, `item ${i} alt`);
    }

    const afterCmd = await command(gcs, probe, DO_SET_MODE, [CUSTOM_MODE, STABILIZE]);
    assert.equal(afterCmd.result, 0);
    await sleep(1000); // anything still in flight (broker redeliveries, outbox) arrives now
    assert.equal(probe.received(before.tag), 1, 'the command before the outage ran once');
    assert.equal(probe.received(afterCmd.tag), 1, 'the command after the outage ran once');
    assert.ok(probe.received(during) <= 1, `the command sent during the outage ran ${probe.received(during)} times`);
    assert.equal(chain.sim!.core!.vehicle.mode, STABILIZE);

    // Every down/command envelope the broker carried, and how often it carried each.
    const seen = new Map<string, number>();
    for (const m of spy.since(spyMark, cmdTopic)) seen.set(m.payload.toString('hex'), (seen.get(m.payload.toString('hex')) ?? 0) + 1);
    const duplicates = [...seen.values()].reduce((n, c) => n + c - 1, 0);
    // The gateway answers commands it cannot forward during the outage with TEMPORARILY_REJECTED
    // (1) at once; those are failures reported, not executions.
    const acks = gcs.rx.slice(mark).filter((r) => r.name === 'COMMAND_ACK' && (r.msg as common.CommandAck).result !== 1).length;
    t.diagnostic(`sessions ${session1} -> ${session2}; outage command delivered ${probe.received(during)}x; `
      + `down/command envelopes ${seen.size}, broker duplicates seen by the spy ${duplicates}; COMMAND_ACKs ${acks}; `
      + `air rejected ${JSON.stringify(airStats(chain).rejected)}; ground rejected ${JSON.stringify(chain.ground!.snapshot().vehicles[0]!.relay.rejected)}`);
    // One ACK per execution: never more COMMAND_ACKs than commands the autopilot received.
    assert.equal(acks, probe.received(during) + probe.received(afterCmd.tag), 'one COMMAND_ACK per command executed');
  });
});

describe('9. a broker that duplicates 20% of the commands and reorders them', () => {
  // The air daemon on its own broker, bridged to the gateway's by the man in the middle.
  // 40 mode changes in a burst test the replay window, not the command policy's rate limit.
  const chain = new Chain({ vehicleId: 'fault-2', sim: SIM, mitm: true, air: { policy: { enabled: false } } });
  const probe = new CommandProbe();
  let spy: MqttSpy;
  let oracle: EnvelopeOracle;
  const cmdTopic = `${PREFIX}/fault-2/down/command`;

  before(async () => {
    await chain.start();
    probe.attach(chain.sim!.link!);
    spy = new MqttSpy(chain.broker.url);
    await spy.start();
    const psk = await readKeyFile(chain.keyFile);
    oracle = new EnvelopeOracle(spy, new Map([[chain.vehicleId, psk]]));
    await chain.gcs!.waitFor<minimal.Heartbeat>('HEARTBEAT', (h) => h.autopilot === 3, 15_000, 0);
    const first = await linked(chain);
    // The spy joined after the first handshake: have the air run one in front of it (a REHELLO for
    // its session, as the gateway would send), so the oracle can find envelopes by content.
    await spy.publish(`${PREFIX}/${chain.vehicleId}/down/handshake`, encodeRehello(deriveHandshakeKeys(psk, chain.vehicleId), chain.vehicleId, Buffer.alloc(16, 5), Buffer.from(first, 'hex')));
    await waitUntil(() => airStats(chain).sessionId !== first, 'a new session');
    assert.ok(oracle.sessionIds.includes(await linked(chain)), 'the oracle knows the session');
  });

  after(async () => {
    await spy?.stop();
    await chain.stop();
  });

  const N = 40;
  const tags: number[] = [];

  test('live: duplicates are rejected as replay, reordered envelopes accepted once, each command runs once', async (t) => {
    const gcs = chain.gcs!;
    const bridge = chain.mitm!;
    const rnd = mulberry32(20240601);
    const chaos = { originals: 0, duplicates: 0, inversions: 0, lastCounter: -1n };
    let window: BridgedMessage[] = [];
    let timer: NodeJS.Timeout | null = null;
    const release = (forward: (m: BridgedMessage) => void): void => {
      if (timer) clearTimeout(timer);
      timer = null;
      shuffle(window, rnd);
      for (const m of window) {
        const c = envelopeHeader(m.payload)?.counter ?? -1n;
        if (c < chaos.lastCounter) chaos.inversions++;
        chaos.lastCounter = c;
        forward(m);
      }
      window = [];
    };
    const last: { forward: ((m: BridgedMessage) => void) | null } = { forward: null };
    bridge.down = (m, forward) => {
      if (m.topic !== cmdTopic) return forward(m);
      last.forward = forward;
      chaos.originals++;
      window.push(m);
      if (chaos.originals % 5 === 0) { // every fifth envelope: 20%
        chaos.duplicates++;
        window.push(m);
      }
      if (window.length >= 4) release(forward);
      else timer ??= setTimeout(() => release(forward), 40);
    };

    const base = airStats(chain);
    const mark = gcs.mark;
    try {
      for (let i = 0; i < N; i++) {
        tags.push(probe.send(gcs, DO_SET_MODE, [CUSTOM_MODE, i % 2 === 0 ? LOITER : STABILIZE]));
        await sleep(i % 4 === 0 ? 1 : 15); // mostly one envelope each, some pairs batched together
      }
      await waitUntil(() => tags.every((tag) => probe.received(tag) >= 1), 'every command reached the autopilot', 10_000);
      await waitUntil(() => gcs.count('COMMAND_ACK', mark) >= N, `${N} COMMAND_ACKs`, 10_000);
    } finally {
      if (last.forward !== null) release(last.forward);
      bridge.down = (m, forward) => forward(m);
    }
    await sleep(500);
    const d = diff(base.rejected, airStats(chain).rejected);
    t.diagnostic(`chaos: ${chaos.originals} envelopes, ${chaos.duplicates} duplicated, ${chaos.inversions} counter inversions; air rejected ${JSON.stringify(d)}`);
    assert.ok(chaos.duplicates > 0, 'the broker duplicated something');
    assert.ok(chaos.inversions > 0, 'the broker reordered something');
    assert.deepEqual(d, { replay: chaos.duplicates }, 'every duplicate rejected as replay, nothing else rejected');
    assert.deepEqual(tags.filter((tag) => probe.received(tag) !== 1), [], 'every command reached the autopilot exactly once');
    assert.equal(gcs.count('COMMAND_ACK', mark), N, 'one COMMAND_ACK per command');
  });

  test('replayed: republished captured command envelopes (20% duplicated, shuffled) are all rejected', async (t) => {
    const gcs = chain.gcs!;
    const captured = tags.map((tag) => {
      const found = oracle.carrying(cmdTopic, isTaggedCommand(tag));
      assert.ok(found.length >= 1, `the envelope of command ${tag} was captured`);
      return found[0]!;
    });
    const unique = [...new Map(captured.map((m) => [m.payload.toString('hex'), m])).values()];
    const rnd = mulberry32(7);
    const stream = unique.flatMap((m, i) => (i % 5 === 0 ? [m, m] : [m])); // 20% twice
    for (let i = 0; i < stream.length; i += 4) {
      const w = stream.slice(i, i + 4);
      shuffle(w, rnd);
      stream.splice(i, w.length, ...w);
    }
    const base = airStats(chain);
    const mark = gcs.mark;
    const modeBefore = chain.sim!.core!.vehicle.mode;
    for (const m of stream) await spy.publish(cmdTopic, m.payload);
    await waitUntil(() => (airStats(chain).rejected.replay ?? 0) - (base.rejected.replay ?? 0) >= stream.length, 'all republished envelopes rejected', 10_000)
      .catch(() => undefined);
    await sleep(300);
    t.diagnostic(`republished ${stream.length} envelopes (${stream.length - unique.length} duplicated) carrying ${N} commands`);
    assert.deepEqual(diff(base.rejected, airStats(chain).rejected), { replay: stream.length });
    assert.deepEqual(tags.filter((tag) => probe.received(tag) !== 1), [], 'still exactly once each');
    assert.equal(gcs.count('COMMAND_ACK', mark), 0);
    assert.equal(chain.sim!.core!.vehicle.mode, modeBefore);
  });

  // Regression: the gateway used to hold down/command envelopes in its offline outbox and publish
  // them all when the broker returned; the air, still in the same session, ran every attempt a GCS
  // made during the outage, late, in a burst. GCS frames are now dropped (counted) while offline,
  // and a command gets COMMAND_ACK TEMPORARILY_REJECTED from the gateway at once: a failure now,
  // not a surprise later.
  test('a command a GCS retried during an outage of the gateway\'s broker runs at most once, never late', async (t) => {
    const gcs = chain.gcs!;
    await linked(chain);
    const base = probe.commandsIn;
    assert.equal((await command(gcs, probe, DO_SET_MODE, [CUSTOM_MODE, STABILIZE])).result, 0);
    const mark = gcs.mark;
    await chain.broker.stop();
    const killedAt = performance.now();
    // What a GCS does: the command, then up to 3 retries 1.5 s apart, all while the broker is down.
    const result = gcs.command(DO_SET_MODE, [CUSTOM_MODE, LOITER], 1500, 3).then((r) => `ack ${r}`, (err: Error) => err.message);
    await sleep(6500);
    await chain.broker.start();
    const restartedAt = performance.now();
    await spy.waitConnected();
    await sleep(1500);
    const ran = probe.commandsIn - base - 1;
    const firstLate = gcs.rx.slice(mark).find((r) => r.name === 'COMMAND_ACK' && (r.msg as common.CommandAck).result !== 1);
    t.diagnostic(`GCS: ${await result}; the autopilot ran the command ${ran}x; first ACK ${firstLate ? ((firstLate.atMs - killedAt) / 1000).toFixed(1) : '-'} s after the command was first sent (broker back after ${((restartedAt - killedAt) / 1000).toFixed(1)} s)`);
    assert.equal((await command(gcs, probe, DO_SET_MODE, [CUSTOM_MODE, STABILIZE])).result, 0, 'the link works again');
    assert.ok(ran <= 1, `the command ran ${ran} times`);
    assert.equal(firstLate, undefined, 'nothing queued during the outage runs after it');
    assert.equal(await result, 'ack 1', 'the GCS was told at once: MAV_RESULT_TEMPORARILY_REJECTED');
  });
});

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<T>(a: T[], rnd: () => number): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
}
