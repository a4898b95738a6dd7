import { MavLinkPacketSplitter } from 'node-mavlink';
import { ardupilotmegaDialect } from '../../src/mavlink/dialect.js';
import { Framer } from '../../src/mavlink/framer.js';
import { encodeFrame } from '../../src/mavlink/encode.js';

/** A typical telemetry mix (msgid, share): mean frame ~38 bytes on the wire. */
export const TELEMETRY_MIX: [number, number][] = [
  [30, 4], // ATTITUDE
  [33, 3], // GLOBAL_POSITION_INT
  [74, 2], // VFR_HUD
  [1, 1], // SYS_STATUS
  [0, 1], // HEARTBEAT
  [27, 2], // RAW_IMU
  [24, 1], // GPS_RAW_INT
  [36, 1], // SERVO_OUTPUT_RAW
  [62, 1], // NAV_CONTROLLER_OUTPUT
  [147, 1], // BATTERY_STATUS
];

/** Deterministic realistic frames: random-ish payload bytes with typical trailing zeros truncated. */
export function telemetryFrames(count: number, sysid = 1, compid = 1): Buffer[] {
  const dialect = ardupilotmegaDialect();
  const seq: number[] = [];
  for (const [id, share] of TELEMETRY_MIX) for (let i = 0; i < share; i++) seq.push(id);
  const out: Buffer[] = [];
  let x = 12345;
  for (let i = 0; i < count; i++) {
    const msgid = seq[i % seq.length] as number;
    const len = dialect.maxPayloadLength(msgid);
    const payload = Buffer.alloc(len);
    // Fill the base fields, leave extensions zero (as autopilots commonly do).
    const fill = Math.min(len, 28);
    for (let j = 0; j < fill; j++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      payload[j] = x & 0xff;
    }
    out.push(encodeFrame(dialect, { version: 2, seq: i & 0xff, sysid, compid, msgid }, payload));
  }
  return out;
}

function chunk(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

export interface FramerBench {
  frames: number;
  bytes: number;
  meanFrameBytes: number;
  oursFramesPerS: number;
  oursMBPerS: number;
  splitterFramesPerS: number;
  splitterMBPerS: number;
  ratio: number;
}

export async function benchFramer(frameCount = 300_000, chunkBytes = 1024): Promise<FramerBench> {
  const frames = telemetryFrames(frameCount);
  const stream = Buffer.concat(frames);
  const chunks = chunk(stream, chunkBytes);
  const dialect = ardupilotmegaDialect();

  // Ours: best of 5 passes (the first warms the JIT).
  let best = Infinity;
  for (let pass = 0; pass < 5; pass++) {
    const framer = new Framer(dialect);
    let n = 0;
    const t0 = process.hrtime.bigint();
    for (const c of chunks) framer.push(c, () => { n++; });
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (n !== frameCount || framer.stats.crcErrors !== 0) throw new Error(`framer bench: ${n} frames, ${framer.stats.crcErrors} CRC errors`);
    best = Math.min(best, dt);
  }

  // node-mavlink's splitter on the same bytes (a Transform stream, as the library is used).
  let bestSplit = Infinity;
  const splitPasses = 2;
  const splitChunks = chunks.slice(0, Math.ceil(chunks.length / 5)); // it is slow: 1/5 of the data
  const splitFrames = Math.floor(frameCount / 5);
  for (let pass = 0; pass < splitPasses; pass++) {
    const splitter = new MavLinkPacketSplitter();
    let n = 0;
    splitter.on('data', () => { n++; });
    const t0 = process.hrtime.bigint();
    for (const c of splitChunks) splitter.write(c);
    await new Promise<void>((resolve) => setImmediate(resolve));
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (n < splitFrames * 0.99) throw new Error(`splitter bench: only ${n} frames of ${splitFrames}`);
    bestSplit = Math.min(bestSplit, dt * (frameCount / n));
    splitter.destroy();
  }
  return {
    frames: frameCount,
    bytes: stream.length,
    meanFrameBytes: stream.length / frameCount,
    oursFramesPerS: frameCount / best,
    oursMBPerS: stream.length / best / 1e6,
    splitterFramesPerS: frameCount / bestSplit,
    splitterMBPerS: stream.length / bestSplit / 1e6,
    ratio: bestSplit / best,
  };
}
