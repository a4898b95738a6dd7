import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { common, minimal } from 'node-mavlink';
import type { AirRelayStats } from '../../src/app/relay-air.js';
import { Chain } from '../fakes/chain.js';
import { until as waitUntil } from '../fakes/wait.js';
import { CommandProbe, type BridgedMessage } from '../fakes/mqtt-spy.js';

/**
 * Stale commands are refused, never run late. The air is on its own broker, bridged to the
 * gateway's by a man in the middle that can delay what the air receives. Once a ping has given
 * the air a basis (its GroundClock), a DO_SET_MODE held ~7 s on the way down (TTL 5 s) must not
 * reach the autopilot: the air counts it as stale and answers COMMAND_ACK TEMPORARILY_REJECTED in
 * the autopilot's name. A 1 s delay (under the TTL) and no delay let commands run.
 */
const VEHICLE = 'stale-1';
const DO_SET_MODE = 176;
const CUSTOM_MODE = 1;
const STABILIZE = 0;
const ALT_HOLD = 2;
const LOITER = 5;
const ACCEPTED = 0;
const TEMPORARILY_REJECTED = 1;
const TTL_MS = 5000;
const STALE_DELAY_MS = 7000;
const OK_DELAY_MS = 1000;

const chain = new Chain({ vehicleId: VEHICLE, sim: { speedup: 4, gpsDelayMs: 0, paramDefaults: { ARMING_CHECK: 0 } }, mitm: true, air: { commandTtlMs: TTL_MS, policy: { enabled: false } } });
const probe = new CommandProbe();
/** Down messages the delay hook still holds (timers pending). */
let inFlight = 0;
let delayMs = 0;

function airStats(): AirRelayStats {
  return chain.air!.snapshot().relay!;
}

/** Delays every down message (handshake, commands, pings) by the current `delayMs`, order kept. */
function delayDown(m: BridgedMessage, forward: (m: BridgedMessage) => void): void {
  if (delayMs <= 0 && inFlight === 0) {
    forward(m);
    return;
  }
  inFlight++;
  setTimeout(() => {
    inFlight--;
    forward(m);
  }, Math.max(0, delayMs));
}

async function setDelay(ms: number): Promise<void> {
  delayMs = ms;
  if (ms === 0) await waitUntil(() => inFlight === 0, 'delayed down traffic drained', STALE_DELAY_MS + 5000);
}

/** One tagged DO_SET_MODE, sent once (no GCS retry); resolves with its tag, its ack and how long the ack took. */
async function setMode(mode: number, ackTimeoutMs = 15_000): Promise<{ tag: number; ack: common.CommandAck; ackFrom: { sysid: number; compid: number }; ms: number }> {
  const gcs = chain.gcs!;
  const mark = gcs.mark;
  const t0 = performance.now();
  const tag = probe.send(gcs, DO_SET_MODE, [CUSTOM_MODE, mode]);
  const ack = await gcs.waitFor<common.CommandAck>('COMMAND_ACK', (a) => a.command === DO_SET_MODE, ackTimeoutMs, mark);
  const ms = performance.now() - t0;
  const rx = gcs.rx.slice(mark).find((r) => r.msg === ack)!;
  return { tag, ack, ackFrom: { sysid: rx.frame.sysid, compid: rx.frame.compid }, ms };
}

before(async () => {
  await chain.start();
  chain.mitm!.down = delayDown;
  probe.attach(chain.sim!.link!);
  await chain.gcs!.waitFor<minimal.Heartbeat>('HEARTBEAT', (h) => h.autopilot === 3, 15_000, 0);
  // Both ends on one session, and a ping answered: the gateway pings right after a new session, the
  // air records the ping in its GroundClock before it sends the pong that sets the gateway's RTT.
  await waitUntil(() => {
    const a = airStats().sessionId;
    const g = chain.ground!.snapshot().vehicles[0]!.relay;
    return a !== null && a === g.sessionId && g.rttMs !== null;
  }, 'session established and a ping exchanged');
});

after(async () => {
  delayMs = 0;
  await chain.stop();
});

test('commands delayed beyond the TTL are refused, never run; timely ones run', { timeout: 80_000 }, async (t) => {
  const sim = chain.sim!.core!;

  await t.test('baseline: without delay a command runs', async () => {
    const r = await setMode(ALT_HOLD);
    assert.equal(r.ack.result, ACCEPTED);
    await probe.waitReceived(r.tag);
    assert.equal(sim.vehicle.mode, ALT_HOLD);
  });

  await t.test(`a ${STALE_DELAY_MS} ms delay: refused as stale, TEMPORARILY_REJECTED, never executed`, async () => {
    const staleBefore = airStats().framesStale;
    const commandsBefore = probe.commandsIn;
    await setDelay(STALE_DELAY_MS);
    const r = await setMode(LOITER, STALE_DELAY_MS + 8000);
    t.diagnostic(`stale command answered after ${Math.round(r.ms)} ms from ${r.ackFrom.sysid}/${r.ackFrom.compid}`);
    assert.equal(r.ack.result, TEMPORARILY_REJECTED, 'COMMAND_ACK result TEMPORARILY_REJECTED');
    assert.ok(r.ms >= STALE_DELAY_MS - 500, `the refusal came after the delay (${Math.round(r.ms)} ms), from the air`);
    assert.deepEqual(r.ackFrom, { sysid: 1, compid: 1 }, 'answered in the name of the addressed component');
    await setDelay(0);
    await sleep(500);
    assert.equal(probe.received(r.tag), 0, 'the stale command never reached the autopilot');
    assert.equal(probe.commandsIn, commandsBefore, 'no COMMAND_LONG reached the autopilot at all');
    assert.equal(sim.vehicle.mode, ALT_HOLD, 'mode unchanged');
    const staleAfter = airStats().framesStale;
    t.diagnostic(`framesStale ${staleBefore} -> ${staleAfter}`);
    assert.ok(staleAfter > staleBefore, 'the air counted stale frames');
  });

  await t.test('delay removed: a fresh command runs normally', async () => {
    const r = await setMode(LOITER);
    assert.equal(r.ack.result, ACCEPTED);
    await probe.waitReceived(r.tag);
    assert.equal(probe.received(r.tag), 1);
    assert.equal(sim.vehicle.mode, LOITER);
  });

  await t.test(`control: a ${OK_DELAY_MS} ms delay (under the TTL) lets the command run`, async () => {
    const staleBefore = airStats().framesStale;
    await setDelay(OK_DELAY_MS);
    const r = await setMode(STABILIZE);
    t.diagnostic(`delayed command answered after ${Math.round(r.ms)} ms`);
    assert.equal(r.ack.result, ACCEPTED);
    assert.ok(r.ms >= OK_DELAY_MS - 100, 'it was delayed');
    await probe.waitReceived(r.tag);
    assert.equal(probe.received(r.tag), 1);
    assert.equal(sim.vehicle.mode, STABILIZE);
    await setDelay(0);
    assert.equal(airStats().framesStale, staleBefore, 'nothing refused as stale');
  });
});
