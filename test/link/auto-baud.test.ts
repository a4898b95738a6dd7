import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { AutoBaud, type BaudSettable } from '../../src/link/auto-baud.js';
import { silentLogger } from '../../src/obs/logger.js';

/** A port stand-in: frames "arrive" only while the rate matches the device's (the unit under test is AutoBaud). */
class FakePort implements BaudSettable {
  baudRate = 57600;
  switches: number[] = [];
  constructor(public deviceBaud: number) {}
  setBaudRate(baud: number): Promise<void> {
    this.baudRate = baud;
    this.switches.push(baud);
    return Promise.resolve();
  }
}

test('cycles through the rates until frames arrive, then keeps the rate', async () => {
  const port = new FakePort(921600);
  let frames = 0;
  const ticker = setInterval(() => { if (port.baudRate === port.deviceBaud) frames += 10; }, 5);
  const ac = new AbortController();
  const ab = new AutoBaud({ port, rates: [57600, 115200, 921600], validFrames: () => frames, logger: silentLogger(), probeMs: 40, relockAfterMs: 10_000 });
  ab.start(ac.signal);
  await sleep(400);
  ac.abort();
  clearInterval(ticker);
  assert.equal(port.baudRate, 921600);
  assert.deepEqual(port.switches.slice(0, 2), [115200, 921600]);
  assert.equal(ab.isLocked, true);
  assert.equal(port.switches.length, 2, 'no switching once frames flow');
});

test('a long silence after locking starts the hunt again', async () => {
  const port = new FakePort(57600);
  let frames = 0;
  let deviceUp = true;
  const ticker = setInterval(() => { if (deviceUp && port.baudRate === port.deviceBaud) frames += 10; }, 5);
  const ac = new AbortController();
  const ab = new AutoBaud({ port, rates: [57600, 115200], validFrames: () => frames, logger: silentLogger(), probeMs: 30, relockAfterMs: 120 });
  ab.start(ac.signal);
  await sleep(150);
  assert.equal(port.switches.length, 0);
  // The autopilot comes back at another rate.
  deviceUp = true;
  port.deviceBaud = 115200;
  await sleep(400);
  ac.abort();
  clearInterval(ticker);
  assert.equal(port.baudRate, 115200);
  assert.equal(ab.isLocked, true);
});
