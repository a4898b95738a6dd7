import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { freeTcpPort } from '../../src/link/free-port.js';
import { SimAutopilot } from '../../src/sim/index.js';
import { createTransport } from '../../src/link/index.js';
import { silentLogger } from '../../src/obs/logger.js';
import { MAVMQ_BIN } from './routing.js';

/**
 * Cold start of the compiled air side: from spawning `mavmq air` to the first autopilot frame
 * relayed to a local UDP endpoint, with the autopilot already streaming; then RSS at idle.
 */
export interface StartupBench {
  firstFrameMs: number;
  idleRssMb: number;
}

export async function benchStartup(runs = 5): Promise<StartupBench> {
  const simPort = await freeTcpPort();
  const ac = new AbortController();
  const sim = new SimAutopilot({ link: `tcp-listen://127.0.0.1:${simPort}`, logger: silentLogger(), transportFactory: createTransport });
  await sim.start(ac.signal);
  const times: number[] = [];
  let idleRssMb = 0;
  try {
    for (let run = 0; run < runs; run++) {
      const udp = createSocket('udp4');
      await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
      let firstAt = 0;
      udp.once('message', () => { firstAt = performance.now(); });
      const t0 = performance.now();
      const child = spawn(MAVMQ_BIN, ['air', '--link', `tcp://127.0.0.1:${simPort}`, '--endpoint', `udp://127.0.0.1:${udp.address().port}`, '--log-level', 'warn'], {
        stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, MAVMQ_USE_DIST: '1' },
      });
      const deadline = t0 + 10_000;
      while (firstAt === 0 && performance.now() < deadline) await sleep(2);
      if (firstAt === 0) throw new Error('no frame relayed within 10 s');
      times.push(firstAt - t0);
      if (run === runs - 1) {
        await sleep(3000);
        const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
        idleRssMb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
      }
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      udp.close();
    }
  } finally {
    await sim.stop();
  }
  times.sort((a, b) => a - b);
  return { firstFrameMs: times[Math.floor(times.length / 2)] ?? NaN, idleRssMb };
}
