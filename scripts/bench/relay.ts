import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtemp, readFile, rm, open, writeFile, type FileHandle } from 'node:fs/promises';
import { connect } from 'node:net';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { ardupilotmegaDialect } from '../../src/mavlink/dialect.js';
import { encodeFrame } from '../../src/mavlink/encode.js';
import { frameLengthAt, MAGIC_V2, V2_HEADER_LENGTH } from '../../src/mavlink/framer.js';
import { Mosquitto, freePort } from '../../test/fakes/mosquitto.js';
import { TELEMETRY_MIX } from './framer.js';
import { benchRouting, MAVMQ_BIN, type RoutingBench } from './routing.js';

/**
 * Issue 4's relay benchmark, every part real and in its own process, on loopback:
 *
 *   bench --pty (socat)--> `mavmq air` --MQTT--> mosquitto --MQTT--> `mavmq ground` --UDP--> bench
 *                                                     \--> spy (mqtt.js: envelopes, sizes)
 *
 * The air and ground run as installs run them (bin/mavmq.js on dist/, like routing.ts): build
 * first. Frames are the telemetry mix of framer.ts (same messages, sizes and v2 truncation) with a
 * 32-bit frame index in the first payload bytes, so every frame is matched at the GCS socket: loss
 * and autopilot-write -> GCS-receive latency for every frame, not a sample. Each phase uses its own
 * source sysid, so late frames of an earlier phase never count in a later one. CPU is read from
 * /proc per process over the streaming window only (first write to last frame received), as
 * routing.ts does; the CPU the rest of the machine used meanwhile is reported as noise. MQTT bytes
 * are the kernel's count for the air's TCP connection to the broker (`ss -ti`), the spy's sum of
 * PUBLISH sizes when `ss` is missing.
 *
 * Phases (defaults):
 *   routing     benchRouting (routing.ts) at the throughput rate, alone on the machine: the plain
 *               air router to a UDP endpoint, the baseline of the air-CPU ratio.
 *   throughput  2,400 frames/s (the 921600-baud ceiling) x 10 s: seal+publish / receive+open rate,
 *               CPU us/frame of air, ground and broker, wire overhead, loss.
 *   latency     1,200 frames/s (half the ceiling) x 10 s: latency p50/p99/max, wire overhead.
 *   *-hb1       the same two with HEARTBEAT at 1 Hz (as autopilots send it) instead of 1 frame in 17
 *               as in the mix (141 Hz at 2,400 frames/s). HEARTBEAT is latency-critical (it flushes
 *               the batch), so the mix as is hides the batching window from latency and inflates the
 *               per-envelope overhead. The targets use the mix as is (as the routing baseline does);
 *               the 1 Hz figures are reported next to them.
 *   ceiling     ascending paced steps (x1.5 from 2x the throughput rate, 3 s each, up to 400k/s)
 *               until a step loses a frame or cannot be fed: the highest zero-loss rate.
 */
export interface RelayBenchOptions {
  /** Seconds per paced phase (default 10). */
  seconds?: number;
  /** Rate of the throughput phase and of the routing baseline (default 2400, ~921600 baud). */
  throughputFramesPerS?: number;
  /** Rate of the latency phase (default 1200, half the ceiling). */
  latencyFramesPerS?: number;
  /** Also run both phases with HEARTBEAT at 1 Hz (default true). */
  heartbeat1Hz?: boolean;
  /** Run the routing baseline (default true). */
  routing?: boolean;
  /** Seconds per ceiling step; 0 skips the ceiling search (default 3). */
  ceilingStepSeconds?: number;
  /** The launcher of the air and ground processes (default bin/mavmq.js with MAVMQ_USE_DIST=1, as routing.ts). A scratch build's bin compares a patch. */
  mavmqBin?: string;
  /**
   * Start mosquitto with `set_tcp_nodelay true` (default false: test/fakes/mosquitto.ts as is,
   * i.e. mosquitto's default, Nagle on the broker's sockets: up to a 40 ms delayed-ACK stall per
   * envelope on the broker -> ground hop).
   */
  brokerTcpNoDelay?: boolean;
  /** Use this broker instead of starting mosquitto (e.g. one with other settings); pid for its CPU. */
  broker?: { url: string; pid: number | null };
  /**
   * Extra node flags for the air and ground processes, e.g. ['--cpu-prof', '--cpu-prof-dir=DIR']
   * (profiling; not allowed in NODE_OPTIONS). They are then run as `node <bin's shebang flags> <these> bin`.
   */
  childNodeArgs?: string[];
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface ProcessCpu {
  cpuUsPerFrame: number;
  cpuPercentOfCore: number;
}

export interface WireStats {
  /** MAVLink bytes written to the autopilot pty in the phase. */
  mavlinkBytes: number;
  /**
   * MQTT bytes the air sent: from the kernel (`ss -ti`: TCP payload bytes of the air's connection
   * to the broker, every MQTT packet) when available, else the spy's estimate.
   */
  mqttBytes: number;
  mqttBytesSource: 'kernel' | 'spy';
  /**
   * The spy's sum of the PUBLISH packets on the up topics, sized as published with the full topic
   * name (fixed header + topic + packet id + properties + payload): too high if the air uses MQTT 5
   * topic aliases, which the kernel figure sees.
   */
  spyMqttBytes: number;
  /** Envelope (sealed payload) bytes: the part of the overhead that is the envelope's own. */
  envelopeBytes: number;
  envelopes: number;
  /** Mean MAVLink frames per envelope (frames fed / envelopes). */
  framesPerEnvelope: number;
  /** (mqttBytes - mavlinkBytes) / envelopes: the cost of one envelope on the wire. */
  overheadBytesPerEnvelope: number;
  /** (mqttBytes - mavlinkBytes) / mavlinkBytes, in percent: the target's figure. */
  overheadPercent: number;
  /** (envelopeBytes - mavlinkBytes) / mavlinkBytes, in percent: header + kind + tag alone. */
  envelopeOverheadPercent: number;
  /** TCP data segments the air sent (null without `ss`): each costs 40-60 bytes of TCP/IP headers on a real link. */
  tcpSegments: number | null;
}

export interface LatencyStats {
  samples: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

export interface RelayPhase {
  name: string;
  targetFramesPerS: number;
  /** Frames fed per second, measured. */
  framesPerS: number;
  framesSent: number;
  framesReceived: number;
  framesLost: number;
  seconds: number;
  /** Frames opened and delivered to the GCS per second (received / streaming window). */
  receivedFramesPerS: number;
  /** Envelopes sealed and published per second (the spy's count / streaming window). */
  envelopesPerS: number;
  air: ProcessCpu;
  ground: ProcessCpu;
  broker: ProcessCpu | null;
  latency: LatencyStats;
  wire: WireStats;
  /**
   * Noise: CPU the rest of the machine used during the window, in cores (from /proc/stat, minus
   * air, ground, broker, socat and this process). Tail latency on a shared machine is only
   * meaningful when this is near 0.
   */
  otherLoadCores: number;
  /** UDP datagrams the kernel dropped for a full receive buffer meanwhile (whole machine; the GCS socket is 4+ MB). */
  udpRcvbufErrors: number;
}

export interface CeilingStep {
  targetFramesPerS: number;
  framesPerS: number;
  receivedFramesPerS: number;
  framesLost: number;
  airCpuPercent: number;
  groundCpuPercent: number;
  brokerCpuPercent: number | null;
  udpRcvbufErrors: number;
  otherLoadCores: number;
}

export interface RelayBench {
  meanFrameBytes: number;
  batching: { maxBytes: number; maxDelayMs: number };
  /** How the broker ran: mosquitto's defaults (Nagle on) or set_tcp_nodelay; 'external' with opts.broker. */
  broker: 'mosquitto' | 'mosquitto set_tcp_nodelay' | 'external';
  throughput: RelayPhase;
  latency: RelayPhase;
  throughputHb1: RelayPhase | null;
  latencyHb1: RelayPhase | null;
  routing: RoutingBench | null;
  /** air cpuUsPerFrame (throughput phase) / routing cpuUsPerFrame, same pace and mix. */
  airCpuRatio: number | null;
  ceiling: { steps: CeilingStep[]; zeroLossFramesPerS: number | null; limitedBy: string } | null;
  /** VmHWM after the paced phases, and at the end (after the ceiling search). */
  peakRssMb: { air: number; ground: number; airAfterCeiling: number; groundAfterCeiling: number };
  targets: {
    airCpuRatio: { value: number | null; max: number; met: boolean | null };
    overheadPercent: { value: number; max: number; met: boolean; hb1Value: number | null };
    p99LatencyMs: { value: number; max: number; met: boolean; hb1Value: number | null };
  };
}

const CLK_TCK = 100;
const VEHICLE = 'bench';
const PREFIX = 'mavmq';
/** The defaults of config/schema.ts (the processes run with them). */
const BATCHING = { maxBytes: 1024, maxDelayMs: 20 };
const WARM_SYSID = 1;

// ---------------------------------------------------------------------------------------------
// /proc

async function procCpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

/** bytes_sent and data_segs_out of `pid`'s TCP connection(s) to 127.0.0.1:port, from `ss -ti`. */
async function tcpSent(pid: number, port: number): Promise<{ bytes: number; segments: number } | null> {
  const out = await new Promise<string | null>((resolve) => {
    execFile('ss', ['-Htinp', 'state', 'established', 'dst', `127.0.0.1:${port}`], (err, stdout) => resolve(err ? null : stdout));
  });
  if (out === null) return null;
  const lines = out.split('\n');
  let bytes = 0;
  let segments = 0;
  let found = false;
  for (let i = 0; i < lines.length; i++) {
    if (!(lines[i] ?? '').includes(`pid=${pid},`)) continue;
    const info = lines[i + 1] ?? '';
    bytes += Number(/bytes_sent:(\d+)/.exec(info)?.[1] ?? 0);
    segments += Number(/data_segs_out:(\d+)/.exec(info)?.[1] ?? 0);
    found = true;
  }
  return found ? { bytes, segments } : null;
}

/** Busy clock ticks of all CPUs (user + nice + system + irq + softirq + steal), from /proc/stat. */
async function procMachineBusyTicks(): Promise<number> {
  const stat = await readFile('/proc/stat', 'utf8');
  const f = (stat.split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((s, v) => s + v, 0);
  return total - (f[3] ?? 0) - (f[4] ?? 0); // minus idle and iowait
}

async function procUdpRcvbufErrors(): Promise<number> {
  const lines = (await readFile('/proc/net/snmp', 'utf8')).split('\n').filter((l) => l.startsWith('Udp:'));
  const names = (lines[0] ?? '').split(/\s+/);
  const values = (lines[1] ?? '').split(/\s+/);
  return Number(values[names.indexOf('RcvbufErrors')] ?? 0);
}

async function procPeakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

async function waitForPort(port: number, proc: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (proc.exitCode !== null) throw new Error(`mosquitto exited ${proc.exitCode}`);
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}`);
    await sleep(50);
  }
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------------------------
// Frames

/** Frames laid out back to back in one buffer; frame i is data[offsets[i], offsets[i+1]). */
interface FrameStream {
  data: Buffer;
  offsets: Uint32Array;
  count: number;
}

/**
 * framer.ts's telemetryFrames() with the frame index (u32 LE) in payload bytes 0-3 instead of
 * random bytes: same messages, shares, lengths and v2 truncation. With `heartbeatEvery`, only
 * every n-th HEARTBEAT slot stays a HEARTBEAT; the others become ATTITUDE (the mix's commonest).
 */
function indexedFrames(count: number, sysid: number, heartbeatEvery = 1): FrameStream {
  const dialect = ardupilotmegaDialect();
  const seq: number[] = [];
  for (const [id, share] of TELEMETRY_MIX) for (let i = 0; i < share; i++) seq.push(id);
  const parts: Buffer[] = [];
  const offsets = new Uint32Array(count + 1);
  let x = 12345;
  let hb = 0;
  let off = 0;
  for (let i = 0; i < count; i++) {
    let msgid = seq[i % seq.length] as number;
    if (msgid === 0 && hb++ % heartbeatEvery !== 0) msgid = 30;
    const len = dialect.maxPayloadLength(msgid);
    const payload = Buffer.alloc(len);
    const fill = Math.min(len, 28);
    for (let j = 0; j < fill; j++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      payload[j] = x & 0xff;
    }
    payload.writeUInt32LE(i, 0);
    const f = encodeFrame(dialect, { version: 2, seq: i & 0xff, sysid, compid: 1, msgid }, payload);
    parts.push(f);
    offsets[i] = off;
    off += f.length;
  }
  offsets[count] = off;
  return { data: Buffer.concat(parts, off), offsets, count };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

// ---------------------------------------------------------------------------------------------
// The GCS socket and the MQTT spy

/** What arrives for the phase being measured (frames of one sysid). */
class PhaseReceiver {
  received = 0;
  lastAtMs = 0;
  readonly seen: Uint8Array;
  readonly latencyMs: Float64Array;
  readonly sentAtMs: Float64Array;

  constructor(readonly sysid: number, readonly count: number) {
    this.seen = new Uint8Array(count);
    this.latencyMs = new Float64Array(count).fill(NaN);
    this.sentAtMs = new Float64Array(count).fill(NaN);
  }

  onFrame(index: number, nowMs: number): void {
    if (index >= this.count || this.seen[index] === 1) return;
    this.seen[index] = 1;
    this.received++;
    this.lastAtMs = nowMs;
    this.latencyMs[index] = nowMs - (this.sentAtMs[index] as number);
  }

  latency(): LatencyStats {
    const xs: number[] = [];
    for (let i = 0; i < this.count; i++) {
      const v = this.latencyMs[i] as number;
      if (!Number.isNaN(v)) xs.push(v);
    }
    const sorted = Float64Array.from(xs).sort();
    const sum = xs.reduce((s, v) => s + v, 0);
    return {
      samples: sorted.length,
      p50Ms: percentile(sorted, 50),
      p90Ms: percentile(sorted, 90),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted.length ? (sorted[sorted.length - 1] as number) : NaN,
      meanMs: sorted.length ? sum / sorted.length : NaN,
    };
  }
}

/** The GCS: one UDP socket the ground gateway sends to. Warm-up frames (sysid 1) are only counted. */
class GcsSocket {
  readonly socket: Socket = createSocket('udp4');
  warmReceived = 0;
  phase: PhaseReceiver | null = null;

  async bind(): Promise<number> {
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    try {
      this.socket.setRecvBufferSize(8 * 1024 * 1024); // capped by net.core.rmem_max
    } catch {
      // keep the default
    }
    this.socket.on('message', (msg) => this.onDatagram(msg));
    return this.socket.address().port;
  }

  private onDatagram(msg: Buffer): void {
    const now = performance.now();
    let i = 0;
    while (i < msg.length) {
      const total = frameLengthAt(msg, i);
      if (total < 0 || i + total > msg.length) return;
      if (msg[i] === MAGIC_V2 && msg[i + 6] === 1) {
        const sysid = msg[i + 5] as number;
        const p = this.phase;
        if (sysid === WARM_SYSID) this.warmReceived++;
        else if (p !== null && sysid === p.sysid) {
          const len = msg[i + 1] as number;
          const o = i + V2_HEADER_LENGTH;
          // Trailing zeros may be truncated (never in practice: bytes 4-27 are random).
          const index = (msg[o] ?? 0) | (len > 1 ? (msg[o + 1] as number) << 8 : 0) | (len > 2 ? (msg[o + 2] as number) << 16 : 0) | (len > 3 ? (msg[o + 3] as number) * 0x1000000 : 0);
          p.onFrame(index >>> 0, now);
        }
      }
      i += total;
    }
  }

  close(): void {
    this.socket.close();
  }
}

function varintBytes(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

/** Subscribes to the vehicle's up topics and sums the size of the PUBLISH packets the air sent. */
class MqttSpy {
  private client: MqttClient | null = null;
  counting = false;
  bytes = 0;
  envelopeBytes = 0;
  envelopes = 0;

  async start(url: string, protocolVersion: 4 | 5): Promise<void> {
    const client = await mqtt.connectAsync(url, { clientId: `mavmq-bench-spy-${process.pid}`, protocolVersion, clean: true, reconnectPeriod: 0 });
    this.client = client;
    await client.subscribeAsync(`${PREFIX}/${VEHICLE}/up/+`, { qos: 1 });
    client.on('message', (topic, payload, packet) => {
      if (!this.counting || topic.endsWith('/status') || topic.endsWith('/hello')) return;
      // Size of the packet as the air published it: the subscription keeps its QoS (1 >= 0/1).
      const rest = 2 + Buffer.byteLength(topic) + (packet.qos > 0 ? 2 : 0) + (protocolVersion === 5 ? 1 : 0) + payload.length;
      this.bytes += 1 + varintBytes(rest) + rest;
      this.envelopeBytes += payload.length;
      this.envelopes++;
    });
  }

  reset(): void {
    this.bytes = this.envelopeBytes = this.envelopes = 0;
  }

  async stop(): Promise<void> {
    await this.client?.endAsync(true).catch(() => undefined);
    this.client = null;
  }
}

// ---------------------------------------------------------------------------------------------
// Processes

/** Launched as routing.ts launches the router, i.e. as installs run it: bin/mavmq.js (its shebang's node flags) on dist/. */
async function spawnMavmq(bin: string, args: string[], nodeArgs?: string[]): Promise<ChildProcess> {
  const env = { ...process.env, MAVMQ_USE_DIST: '1' };
  const stdio: ['ignore', 'ignore', 'inherit'] = ['ignore', 'ignore', 'inherit'];
  if (nodeArgs === undefined || nodeArgs.length === 0) return spawn(bin, args, { stdio, env });
  // Same flags as the shebang (`#!/usr/bin/env -S node FLAGS`), plus ours.
  const first = (await readFile(bin, 'utf8')).split('\n')[0] ?? '';
  const words = first.startsWith('#!') ? first.slice(2).trim().split(/\s+/) : [];
  const shebangFlags = words.slice(words.findIndex((w) => w === 'node' || w.endsWith('/node')) + 1);
  return spawn(process.execPath, [...shebangFlags, ...nodeArgs, bin, ...args], { stdio, env });
}

async function stopChild(child: ChildProcess | null): Promise<void> {
  if (child === null || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  // --cpu-prof writes its profile on a clean exit: give it the time.
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

async function runToExit(bin: string, args: string[]): Promise<void> {
  const child = await spawnMavmq(bin, args);
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`mavmq ${args.join(' ')} exited ${code}`);
}

interface Rig {
  fh: FileHandle;
  gcs: GcsSocket;
  spy: MqttSpy;
  air: ChildProcess;
  ground: ChildProcess;
  brokerPid: number | null;
  brokerPort: number;
  socatPid: number | null;
}

interface CpuSample {
  air: number;
  ground: number;
  broker: number | null;
  tcp: { bytes: number; segments: number } | null;
  /** Busy ticks of the whole machine, and of the processes of the bench (self, socat). */
  machineBusy: number;
  bench: number;
  udpRcvbufErrors: number;
}

async function sampleCpu(rig: Rig): Promise<CpuSample> {
  const [air, ground, broker, tcp, machineBusy, self, socat, udpRcvbufErrors] = await Promise.all([
    procCpuTicks(rig.air.pid as number),
    procCpuTicks(rig.ground.pid as number),
    rig.brokerPid === null ? Promise.resolve(null) : procCpuTicks(rig.brokerPid).catch(() => null),
    tcpSent(rig.air.pid as number, rig.brokerPort),
    procMachineBusyTicks(),
    procCpuTicks(process.pid),
    rig.socatPid === null ? Promise.resolve(0) : procCpuTicks(rig.socatPid).catch(() => 0),
    procUdpRcvbufErrors(),
  ]);
  return { air, ground, broker, tcp, machineBusy, bench: self + socat, udpRcvbufErrors };
}

function checkAlive(rig: Rig): void {
  if (rig.air.exitCode !== null) throw new Error(`air exited ${rig.air.exitCode}`);
  if (rig.ground.exitCode !== null) throw new Error(`ground exited ${rig.ground.exitCode}`);
}

/**
 * Writes the stream to the pty at `rate` frames/s in 10 ms ticks (catching up after a late tick,
 * as routing.ts does), records each frame's write time, waits for the last frames, and reads CPU
 * over [first write, last frame received].
 */
async function runPhase(rig: Rig, name: string, stream: FrameStream, sysid: number, rate: number): Promise<RelayPhase> {
  checkAlive(rig);
  const recv = new PhaseReceiver(sysid, stream.count);
  rig.gcs.phase = recv;
  rig.spy.reset();
  rig.spy.counting = true;
  const tickMs = 10;
  const c0 = await sampleCpu(rig);
  const t0 = performance.now();
  let sent = 0;
  for (let tick = 0; sent < stream.count; tick++) {
    const due = Math.min(stream.count, Math.round(((tick + 1) * tickMs * rate) / 1000));
    if (due > sent) {
      const now = performance.now();
      for (let i = sent; i < due; i++) recv.sentAtMs[i] = now;
      await rig.fh.write(stream.data.subarray(stream.offsets[sent], stream.offsets[due]));
      sent = due;
    }
    const wait = t0 + (tick + 1) * tickMs - performance.now();
    if (wait > 0) await sleep(wait);
  }
  const feedS = (performance.now() - t0) / 1000;
  await waitFor(() => recv.received >= sent, 3000, 'last frames').catch(() => undefined);
  // The window ends with the last frame received (a lost tail: now).
  const endMs = recv.received >= sent ? recv.lastAtMs : performance.now();
  const c1 = await sampleCpu(rig);
  await sleep(100); // the spy sees the last envelopes a little after the GCS does
  rig.spy.counting = false;
  rig.gcs.phase = null;
  const windowS = Math.max(feedS, (endMs - t0) / 1000);
  const cpu = (ticks: number): ProcessCpu => {
    const s = ticks / CLK_TCK;
    return { cpuUsPerFrame: (s * 1e6) / sent, cpuPercentOfCore: (s / windowS) * 100 };
  };
  const mavlinkBytes = stream.offsets[sent] as number;
  return {
    name,
    targetFramesPerS: rate,
    framesPerS: sent / feedS,
    framesSent: sent,
    framesReceived: recv.received,
    framesLost: sent - recv.received,
    seconds: feedS,
    receivedFramesPerS: recv.received / windowS,
    envelopesPerS: rig.spy.envelopes / windowS,
    air: cpu(c1.air - c0.air),
    ground: cpu(c1.ground - c0.ground),
    broker: c0.broker === null || c1.broker === null ? null : cpu(c1.broker - c0.broker),
    latency: recv.latency(),
    udpRcvbufErrors: c1.udpRcvbufErrors - c0.udpRcvbufErrors,
    otherLoadCores: Math.max(0, (c1.machineBusy - c0.machineBusy) - (c1.air - c0.air) - (c1.ground - c0.ground) - ((c1.broker ?? 0) - (c0.broker ?? 0)) - (c1.bench - c0.bench)) / CLK_TCK / windowS,
    wire: wireStats(mavlinkBytes, sent, rig.spy, c0.tcp !== null && c1.tcp !== null ? { bytes: c1.tcp.bytes - c0.tcp.bytes, segments: c1.tcp.segments - c0.tcp.segments } : null),
  };
}

function wireStats(mavlinkBytes: number, frames: number, spy: MqttSpy, tcp: { bytes: number; segments: number } | null): WireStats {
  const mqttBytes = tcp?.bytes ?? spy.bytes;
  return {
    mavlinkBytes,
    mqttBytes,
    mqttBytesSource: tcp ? 'kernel' : 'spy',
    spyMqttBytes: spy.bytes,
    envelopeBytes: spy.envelopeBytes,
    envelopes: spy.envelopes,
    framesPerEnvelope: spy.envelopes === 0 ? NaN : frames / spy.envelopes,
    overheadBytesPerEnvelope: spy.envelopes === 0 ? NaN : (mqttBytes - mavlinkBytes) / spy.envelopes,
    overheadPercent: ((mqttBytes - mavlinkBytes) / mavlinkBytes) * 100,
    envelopeOverheadPercent: ((spy.envelopeBytes - mavlinkBytes) / mavlinkBytes) * 100,
    tcpSegments: tcp?.segments ?? null,
  };
}

export function formatPhase(p: RelayPhase): string {
  const f = (n: number, d = 1): string => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
  return [
    `${p.name}: ${f(p.framesPerS, 0)} frames/s fed (target ${p.targetFramesPerS}) x ${f(p.seconds)} s, ${p.framesReceived}/${p.framesSent} at the GCS (lost ${p.framesLost}), ${f(p.receivedFramesPerS, 0)} frames/s opened, ${f(p.envelopesPerS, 0)} envelopes/s`,
    `  CPU us/frame: air ${f(p.air.cpuUsPerFrame, 2)} (${f(p.air.cpuPercentOfCore)}% core), ground ${f(p.ground.cpuUsPerFrame, 2)} (${f(p.ground.cpuPercentOfCore)}%)` +
      (p.broker ? `, mosquitto ${f(p.broker.cpuUsPerFrame, 2)} (${f(p.broker.cpuPercentOfCore)}%)` : '') +
      `; rest of the machine ${f(p.otherLoadCores, 2)} cores` + (p.udpRcvbufErrors > 0 ? `; UDP rcvbuf drops ${p.udpRcvbufErrors}` : ''),
    `  latency ms: p50 ${f(p.latency.p50Ms, 2)} p90 ${f(p.latency.p90Ms, 2)} p99 ${f(p.latency.p99Ms, 2)} max ${f(p.latency.maxMs, 2)} mean ${f(p.latency.meanMs, 2)} (${p.latency.samples} frames)`,
    `  wire: ${p.wire.mqttBytes} MQTT bytes (${p.wire.mqttBytesSource}; spy ${p.wire.spyMqttBytes}) for ${p.wire.mavlinkBytes} MAVLink bytes = +${f(p.wire.overheadPercent, 2)}%` +
      ` (envelope alone +${f(p.wire.envelopeOverheadPercent, 2)}%); ${p.wire.envelopes} envelopes of ${f(p.wire.framesPerEnvelope)} frames, ${f(p.wire.overheadBytesPerEnvelope)} B overhead each` +
      (p.wire.tcpSegments !== null ? `, ${p.wire.tcpSegments} TCP segments` : ''),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------

export async function benchRelay(opts: RelayBenchOptions = {}): Promise<RelayBench> {
  const seconds = opts.seconds ?? 10;
  const tpRate = opts.throughputFramesPerS ?? 2400;
  const latRate = opts.latencyFramesPerS ?? 1200;
  const stepS = opts.ceilingStepSeconds ?? 3;
  const log = opts.log ?? ((): void => undefined);
  const bin = opts.mavmqBin ?? MAVMQ_BIN;

  // The baseline first, alone on the machine (nothing of the relay is running yet).
  let routing: RoutingBench | null = null;
  if (opts.routing ?? true) {
    log(`routing baseline: ${tpRate} frames/s x ${seconds} s`);
    routing = await benchRouting({ seconds, framesPerS: tpRate });
  }

  const dir = await mkdtemp(join(tmpdir(), 'mavmq-bench-relay-'));
  const a = join(dir, 'autopilot');
  const b = join(dir, 'air');
  const broker = new Mosquitto();
  const gcs = new GcsSocket();
  const spy = new MqttSpy();
  let socat: ChildProcess | null = null;
  let ownBroker: ChildProcess | null = null;
  let air: ChildProcess | null = null;
  let ground: ChildProcess | null = null;
  let fh: FileHandle | null = null;
  try {
    await runToExit(bin, ['keys', 'new', '--vehicle', VEHICLE, '--out', join(dir, 'keys')]);
    const keyFile = join(dir, 'keys', `${VEHICLE}.key`);
    let brokerUrl: string;
    let brokerPid: number | null;
    if (opts.broker) {
      ({ url: brokerUrl, pid: brokerPid } = opts.broker);
    } else if (opts.brokerTcpNoDelay === true) {
      const port = await freePort();
      const conf = join(dir, 'mosquitto.conf');
      await writeFile(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest none', 'set_tcp_nodelay true', ''].join('\n'));
      ownBroker = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
      brokerUrl = `mqtt://127.0.0.1:${port}`;
      brokerPid = ownBroker.pid ?? null;
      await waitForPort(port, ownBroker);
    } else {
      await broker.start();
      brokerUrl = broker.url;
      // The fake keeps its process private; its pid is only read for /proc/PID/stat.
      brokerPid = (broker as unknown as { proc: ChildProcess | null }).proc?.pid ?? null;
    }
    const gcsPort = await gcs.bind();
    await spy.start(brokerUrl, 5);
    socat = spawn('socat', [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: 'ignore' });
    await waitFor(() => existsSync(a) && existsSync(b), 5000, 'socat ptys');

    // Ground first, so it is subscribed before the air's first HELLO.
    ground = await spawnMavmq(bin, ['ground', '--broker', brokerUrl, '--vehicle', `${VEHICLE}=${keyFile}`, '--gcs', `udp://127.0.0.1:${gcsPort}`, '--log-level', 'warn'], opts.childNodeArgs);
    await sleep(500);
    air = await spawnMavmq(bin, ['air', '--link', `serial://${b}?baud=921600`, '--broker', brokerUrl, '--vehicle', VEHICLE, '--key', keyFile, '--log-level', 'warn'], opts.childNodeArgs);
    fh = await open(a, 'r+');
    const rig: Rig = { fh, gcs, spy, air, ground, brokerPid, brokerPort: Number(new URL(brokerUrl).port), socatPid: socat.pid ?? null };

    // Warm up until frames flow end to end (handshake done, JIT warm), as routing.ts does.
    log('relay: waiting for the session and warming up');
    const warm = indexedFrames(50, WARM_SYSID);
    for (let i = 0; gcs.warmReceived < 2000; i++) {
      checkAlive(rig);
      if (i > 300) throw new Error(`the relay never forwarded the warm-up frames (${gcs.warmReceived} received)`);
      await fh.write(warm.data);
      await sleep(i < 20 ? 100 : 20);
    }
    await sleep(500);

    let sysid = 10;
    const phase = async (name: string, rate: number, heartbeatEvery: number): Promise<RelayPhase> => {
      const stream = indexedFrames(Math.round(rate * seconds), sysid++, heartbeatEvery);
      log(`relay ${name}: ${rate} frames/s x ${seconds} s`);
      const p = await runPhase(rig, name, stream, sysid - 1, rate);
      log(formatPhase(p));
      await sleep(500);
      return p;
    };
    // HEARTBEAT is 1 frame in 17 of the mix: at `rate` frames/s, keep one in rate/17 for 1 Hz.
    const hb1 = (rate: number): number => Math.max(1, Math.round(rate / 17));
    const throughput = await phase('throughput', tpRate, 1);
    const latency = await phase('latency', latRate, 1);
    const throughputHb1 = (opts.heartbeat1Hz ?? true) ? await phase('throughput-hb1', tpRate, hb1(tpRate)) : null;
    const latencyHb1 = (opts.heartbeat1Hz ?? true) ? await phase('latency-hb1', latRate, hb1(latRate)) : null;

    const [airRss, groundRss] = await Promise.all([procPeakRssMb(air.pid as number), procPeakRssMb(ground.pid as number)]);
    let ceiling: RelayBench['ceiling'] = null;
    if (stepS > 0) {
      const steps: CeilingStep[] = [];
      let best: number | null = null;
      let limitedBy = 'no step lost a frame up to the last one tried';
      for (let rate = tpRate * 2; rate <= 400_000; rate = Math.round(rate * 1.5)) {
        const stream = indexedFrames(Math.round(rate * stepS), sysid++);
        const p = await runPhase(rig, 'ceiling', stream, sysid - 1, rate);
        const step: CeilingStep = {
          targetFramesPerS: rate, framesPerS: p.framesPerS, receivedFramesPerS: p.receivedFramesPerS, framesLost: p.framesLost,
          airCpuPercent: p.air.cpuPercentOfCore, groundCpuPercent: p.ground.cpuPercentOfCore, brokerCpuPercent: p.broker?.cpuPercentOfCore ?? null,
          udpRcvbufErrors: p.udpRcvbufErrors, otherLoadCores: p.otherLoadCores,
        };
        steps.push(step);
        log(`ceiling step ${rate}: fed ${p.framesPerS.toFixed(0)}/s, opened ${p.receivedFramesPerS.toFixed(0)}/s, lost ${p.framesLost} (UDP rcvbuf drops ${p.udpRcvbufErrors}), CPU air ${step.airCpuPercent.toFixed(0)}% ground ${step.groundCpuPercent.toFixed(0)}% mosquitto ${step.brokerCpuPercent?.toFixed(0) ?? '?'}%`);
        await sleep(1000);
        if (p.framesLost > 0) {
          // The GCS socket is this process: drops there mean the bench, not the relay, fell behind.
          limitedBy = p.udpRcvbufErrors >= p.framesLost
            ? `frames lost at ${rate} frames/s in UDP receive buffers (the bench's GCS socket: the bench is the limit)`
            : `frames lost at ${rate} frames/s (${p.udpRcvbufErrors} of ${p.framesLost} in UDP receive buffers)`;
          break;
        }
        if (p.framesPerS < rate * 0.95) {
          limitedBy = `the bench could feed only ${p.framesPerS.toFixed(0)} of ${rate} frames/s`;
          best = p.framesPerS;
          break;
        }
        if (p.receivedFramesPerS < rate * 0.9) {
          limitedBy = `the relay fell behind: ${p.receivedFramesPerS.toFixed(0)} of ${rate} frames/s delivered in the window`;
          break;
        }
        best = rate;
      }
      ceiling = { steps, zeroLossFramesPerS: best, limitedBy };
    }

    const [airRssEnd, groundRssEnd] = await Promise.all([procPeakRssMb(air.pid as number), procPeakRssMb(ground.pid as number)]);
    const airCpuRatio = routing === null ? null : throughput.air.cpuUsPerFrame / routing.cpuUsPerFrame;
    const p99Max = BATCHING.maxDelayMs + 5;
    return {
      meanFrameBytes: throughput.wire.mavlinkBytes / throughput.framesSent,
      batching: BATCHING,
      broker: opts.broker ? 'external' : opts.brokerTcpNoDelay === true ? 'mosquitto set_tcp_nodelay' : 'mosquitto',
      throughput,
      latency,
      throughputHb1,
      latencyHb1,
      routing,
      airCpuRatio,
      ceiling,
      peakRssMb: { air: airRss, ground: groundRss, airAfterCeiling: airRssEnd, groundAfterCeiling: groundRssEnd },
      targets: {
        airCpuRatio: { value: airCpuRatio, max: 2, met: airCpuRatio === null ? null : airCpuRatio <= 2 },
        overheadPercent: {
          value: throughput.wire.overheadPercent, max: 10, met: throughput.wire.overheadPercent < 10,
          hb1Value: throughputHb1?.wire.overheadPercent ?? null,
        },
        p99LatencyMs: { value: latency.latency.p99Ms, max: p99Max, met: latency.latency.p99Ms < p99Max, hb1Value: latencyHb1?.latency.p99Ms ?? null },
      },
    };
  } finally {
    await fh?.close().catch(() => undefined);
    await Promise.all([stopChild(air), stopChild(ground)]);
    socat?.kill('SIGKILL');
    ownBroker?.kill('SIGKILL');
    gcs.close();
    await spy.stop();
    await broker.dispose();
    await sleep(200);
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatRelayBench(r: RelayBench): string {
  const f = (n: number | null, d = 1): string => (n !== null && Number.isFinite(n) ? n.toFixed(d) : 'n/a');
  const lines: string[] = [`relay bench: mean frame ${f(r.meanFrameBytes)} bytes, batching ${r.batching.maxBytes} B / ${r.batching.maxDelayMs} ms, broker ${r.broker}`];
  if (r.routing) {
    lines.push(`routing baseline: ${f(r.routing.framesPerS, 0)} frames/s, ${r.routing.framesReceived}/${r.routing.framesSent}, ${f(r.routing.cpuUsPerFrame, 2)} us/frame (${f(r.routing.cpuPercentOfCore)}% core)`);
  }
  for (const p of [r.throughput, r.latency, r.throughputHb1, r.latencyHb1]) if (p) lines.push(formatPhase(p));
  if (r.ceiling) {
    for (const s of r.ceiling.steps) {
      lines.push(`ceiling ${s.targetFramesPerS}: fed ${f(s.framesPerS, 0)}/s opened ${f(s.receivedFramesPerS, 0)}/s lost ${s.framesLost} (UDP rcvbuf drops ${s.udpRcvbufErrors}); CPU air ${f(s.airCpuPercent, 0)}% ground ${f(s.groundCpuPercent, 0)}% mosquitto ${f(s.brokerCpuPercent, 0)}%; rest ${f(s.otherLoadCores, 2)} cores`);
    }
    lines.push(`ceiling: ${f(r.ceiling.zeroLossFramesPerS, 0)} frames/s with zero loss (${r.ceiling.limitedBy})`);
  }
  lines.push(`peak RSS: air ${f(r.peakRssMb.air)} MB, ground ${f(r.peakRssMb.ground)} MB (after the ceiling search: ${f(r.peakRssMb.airAfterCeiling)} / ${f(r.peakRssMb.groundAfterCeiling)} MB)`);
  const t = r.targets;
  const mark = (met: boolean | null): string => (met === null ? '?' : met ? 'met' : 'MISSED');
  lines.push(`target air CPU <= ${t.airCpuRatio.max}x routing: ${f(t.airCpuRatio.value, 2)}x ${mark(t.airCpuRatio.met)}`);
  lines.push(`target wire overhead < ${t.overheadPercent.max}%: ${f(t.overheadPercent.value, 2)}% ${mark(t.overheadPercent.met)} (HEARTBEAT 1 Hz: ${f(t.overheadPercent.hb1Value, 2)}%)`);
  lines.push(`target p99 < ${t.p99LatencyMs.max} ms: ${f(t.p99LatencyMs.value, 2)} ms ${mark(t.p99LatencyMs.met)} (HEARTBEAT 1 Hz: ${f(t.p99LatencyMs.hb1Value, 2)} ms)`);
  return lines.join('\n');
}
