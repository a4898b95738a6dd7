import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtemp, readFile, rm, open } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ardupilotmegaDialect } from '../../src/mavlink/dialect.js';
import { Framer } from '../../src/mavlink/framer.js';
import { telemetryFrames } from './framer.js';

/**
 * pty -> `mavmq air` (compiled JS, its own process) -> local UDP endpoint, at the pace of a
 * 921600-baud link (~2,400 frames/s of ~38-byte telemetry). CPU is read from /proc for the router
 * process alone, over the streaming window only.
 */
export interface RoutingBench {
  framesSent: number;
  framesReceived: number;
  framesLost: number;
  seconds: number;
  framesPerS: number;
  cpuUsPerFrame: number;
  cpuPercentOfCore: number;
  peakRssMb: number;
}

const CLK_TCK = 100;
export const MAVMQ_BIN = new URL('../../bin/mavmq.js', import.meta.url).pathname;

async function procCpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

async function procPeakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export async function benchRouting(opts: { seconds?: number; framesPerS?: number }): Promise<RoutingBench> {
  const seconds = opts.seconds ?? 10;
  const rate = opts.framesPerS ?? 2400;
  const dir = await mkdtemp(join(tmpdir(), 'mavmq-bench-'));
  const a = join(dir, 'autopilot');
  const b = join(dir, 'router');
  const socat = spawn('socat', [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: 'ignore' });
  let router: ChildProcess | null = null;
  const udp = createSocket('udp4');
  try {
    await waitFor(() => existsSync(a) && existsSync(b), 5000, 'socat ptys');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    const port = udp.address().port;
    const framer = new Framer(ardupilotmegaDialect());
    // Warm-up frames come from sysid 1, measured ones from sysid 2: late warm-up frames never count.
    let received = 0;
    let warmReceived = 0;
    udp.on('message', (msg) => framer.push(msg, (f) => { if (f.sysid === 2) received++; else warmReceived++; }));

    // Launched exactly as installs run it: bin/mavmq.js (its shebang's node flags) on compiled JS.
    router = spawn(MAVMQ_BIN, ['air', '--link', `serial://${b}?baud=921600`, '--endpoint', `udp://127.0.0.1:${port}`, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, MAVMQ_USE_DIST: '1' } });
    const pid = router.pid as number;
    const fh = await open(a, 'r+');
    // Warm up until frames flow end to end (the router has opened the pty and the JIT is warm).
    const warm = telemetryFrames(50, 1, 1);
    for (let i = 0; warmReceived < 500; i++) {
      if (router.exitCode !== null) throw new Error(`router exited ${router.exitCode}`);
      if (i > 200) throw new Error('router never forwarded the warm-up frames');
      await fh.write(Buffer.concat(warm));
      await sleep(100);
    }
    await sleep(300);

    const frames = telemetryFrames(rate * seconds, 2, 1);
    const tickMs = 10;
    const perTick = Math.round((rate * tickMs) / 1000);
    const cpu0 = await procCpuTicks(pid);
    const t0 = performance.now();
    let sent = 0;
    for (let tick = 0; sent < frames.length; tick++) {
      const batch = frames.slice(sent, sent + perTick);
      await fh.write(Buffer.concat(batch));
      sent += batch.length;
      const due = t0 + (tick + 1) * tickMs;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
    }
    const elapsedS = (performance.now() - t0) / 1000;
    await waitFor(() => received >= sent, 3000, 'last frames').catch(() => undefined);
    const cpu1 = await procCpuTicks(pid);
    const rss = await procPeakRssMb(pid);
    await fh.close();
    const cpuS = (cpu1 - cpu0) / CLK_TCK;
    return {
      framesSent: sent,
      framesReceived: received,
      framesLost: sent - received,
      seconds: elapsedS,
      framesPerS: sent / elapsedS,
      cpuUsPerFrame: (cpuS * 1e6) / sent,
      cpuPercentOfCore: (cpuS / elapsedS) * 100,
      peakRssMb: rss,
    };
  } finally {
    router?.kill('SIGTERM');
    socat.kill('SIGKILL');
    udp.close();
    await sleep(200);
    await rm(dir, { recursive: true, force: true });
  }
}
