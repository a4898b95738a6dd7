import { strict as assert } from 'node:assert';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { common, minimal, type MavLinkData } from 'node-mavlink';
import { Codec, FrameWriter } from '../../src/mavlink/codec.js';
import { Framer, type Frame } from '../../src/mavlink/framer.js';
import type { EndpointSpec } from '../../src/link/endpoint-url.js';
import type { TcpListenTransport } from '../../src/link/index.js';
import type { ByteLink, Transport, TransportEvents, TransportStats } from '../../src/link/transport.js';
import { silentLogger } from '../../src/obs/logger.js';
import { CopterMode, SimAutopilot, simDialect, type SimScheduler } from '../../src/sim/index.js';

const R = common.MavResult;
const CMD = common.MavCmd;

/** A GCS on a real TCP socket, waiting in real time. */
class SocketGcs {
  readonly rx: Array<{ frame: Frame; msg: MavLinkData | undefined; name: string }> = [];
  readonly dialect = simDialect();
  readonly codec = new Codec(this.dialect);
  readonly framer = new Framer(this.dialect);
  readonly writer = new FrameWriter(this.codec, 255, 190);
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) =>
      this.framer.push(chunk, (frame) => this.rx.push({ frame, msg: this.codec.decode(frame), name: this.dialect.messageName(frame.msgid) })));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<SocketGcs> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(new SocketGcs(s)));
      s.once('error', reject);
    });
  }

  get mark(): number {
    return this.rx.length;
  }

  send(msg: MavLinkData): void {
    this.socket.write(this.writer.encode(msg));
  }

  all<T extends MavLinkData>(name: string, since = 0): T[] {
    return this.rx.slice(since).filter((r) => r.name === name).map((r) => r.msg as T);
  }

  async waitFor<T extends MavLinkData>(name: string, pred: (m: T) => boolean = () => true, timeoutMs = 5000, since = this.mark): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    for (let i = since; ; ) {
      for (; i < this.rx.length; i++) {
        const r = this.rx[i]!;
        if (r.name === name && r.msg !== undefined && pred(r.msg as T)) return r.msg as T;
      }
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${name}`);
      await sleep(5);
    }
  }

  async command(command: number, params: number[] = []): Promise<common.MavResult> {
    const m = new common.CommandLong();
    m.targetSystem = 1;
    m.targetComponent = 1;
    m.command = command as common.MavCmd;
    const p = [...params, 0, 0, 0, 0, 0, 0, 0];
    [m._param1, m._param2, m._param3, m._param4, m._param5, m._param6, m._param7] = p as [number, number, number, number, number, number, number];
    const since = this.mark;
    this.send(m);
    return (await this.waitFor<common.CommandAck>('COMMAND_ACK', (a) => a.command === (command as common.MavCmd), 2000, since)).result;
  }

  close(): void {
    this.socket.destroy();
  }
}

const LISTEN: EndpointSpec = { kind: 'tcp-listen', url: 'tcp-listen://127.0.0.1:0', host: '127.0.0.1', port: 0 };

async function startSim(sim: ConstructorParameters<typeof SimAutopilot>[0]['sim'] = {}): Promise<{ sim: SimAutopilot; port: number; ac: AbortController }> {
  const ac = new AbortController();
  const s = new SimAutopilot({ link: LISTEN, logger: silentLogger(), sim: { speedup: 10, paramRatePerSec: 3000, ...sim } });
  await s.start(ac.signal);
  const addr = (s.link as TcpListenTransport).address();
  assert.ok(addr !== null, 'listening');
  return { sim: s, port: addr.port, ac };
}

describe('SimAutopilot over a real tcp-listen socket', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('a GCS connects, downloads all parameters, uploads and downloads a mission, and flies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mavmq-sim-'));
    dirs.push(dir);
    const paramsFile = join(dir, 'params.json');
    const { sim, port, ac } = await startSim({ paramsFile });
    const gcs = await SocketGcs.connect(port);
    try {
      const hb = await gcs.waitFor<minimal.Heartbeat>('HEARTBEAT', () => true, 3000, 0);
      assert.equal(hb.autopilot, minimal.MavAutopilot.ARDUPILOTMEGA);

      // Parameters.
      const since = gcs.mark;
      const prl = new common.ParamRequestList();
      prl.targetSystem = 1;
      prl.targetComponent = 1;
      gcs.send(prl);
      const count = sim.core!.params.count;
      const deadline = performance.now() + 5000;
      while (gcs.all('PARAM_VALUE', since).length < count && performance.now() < deadline) await sleep(20);
      const values = gcs.all<common.ParamValue>('PARAM_VALUE', since);
      assert.equal(values.length, count);
      assert.equal(new Set(values.map((v) => v.paramIndex)).size, count);
      assert.ok(values.every((v) => v.paramCount === count));

      const ps = new common.ParamSet();
      ps.targetSystem = 1;
      ps.targetComponent = 1;
      ps.paramId = 'RTL_ALT';
      ps.paramValue = 1200;
      ps.paramType = common.MavParamType.INT32;
      gcs.send(ps);
      await gcs.waitFor<common.ParamValue>('PARAM_VALUE', (v) => v.paramId === 'RTL_ALT' && v.paramValue === 1200);

      // Mission: 10 waypoints up and back down.
      const items: common.MissionItemInt[] = [];
      for (let i = 0; i <= 10; i++) {
        const it = new common.MissionItemInt();
        Object.assign(it, { targetSystem: 1, targetComponent: 1, seq: i, frame: common.MavFrame.GLOBAL_RELATIVE_ALT_INT, command: CMD.NAV_WAYPOINT });
        Object.assign(it, { autocontinue: 1, x: -353632610 + i * 1000, y: 1491652300 + i * 700, z: 20 + i, param1: i });
        items.push(it);
      }
      const mc = new common.MissionCount();
      Object.assign(mc, { targetSystem: 1, targetComponent: 1, count: items.length });
      let s2 = gcs.mark;
      gcs.send(mc);
      for (let seq = 0; seq < items.length; seq++) {
        await gcs.waitFor<common.MissionRequestInt>('MISSION_REQUEST_INT', (r) => r.seq === seq, 2000, s2);
        gcs.send(items[seq]!);
      }
      assert.equal((await gcs.waitFor<common.MissionAck>('MISSION_ACK', () => true, 2000, s2)).type, common.MavMissionResult.ACCEPTED);
      const rl = new common.MissionRequestList();
      Object.assign(rl, { targetSystem: 1, targetComponent: 1 });
      s2 = gcs.mark;
      gcs.send(rl);
      assert.equal((await gcs.waitFor<common.MissionCount>('MISSION_COUNT', () => true, 2000, s2)).count, 11);
      for (let seq = 1; seq <= 10; seq++) {
        const req = new common.MissionRequestInt();
        Object.assign(req, { targetSystem: 1, targetComponent: 1, seq });
        const s3 = gcs.mark;
        gcs.send(req);
        const got = await gcs.waitFor<common.MissionItemInt>('MISSION_ITEM_INT', (m) => m.seq === seq, 2000, s3);
        assert.deepEqual([got.x, got.y, got.z, got.param1], [items[seq]!.x, items[seq]!.y, items[seq]!.z, seq]);
      }

      // Fly: GUIDED, arm once the GPS is fixed, take off, RTL, land, disarm.
      await gcs.waitFor<common.GpsRawInt>('GPS_RAW_INT', (g) => g.fixType === common.GpsFixType.GPS_FIX_TYPE_3D_FIX, 3000, 0);
      assert.equal(await gcs.command(CMD.DO_SET_MODE, [1, CopterMode.GUIDED]), R.ACCEPTED);
      assert.equal(await gcs.command(CMD.COMPONENT_ARM_DISARM, [1]), R.ACCEPTED);
      assert.equal(await gcs.command(CMD.NAV_TAKEOFF, [0, 0, 0, 0, 0, 0, 10]), R.ACCEPTED);
      await gcs.waitFor<common.GlobalPositionInt>('GLOBAL_POSITION_INT', (p) => p.relativeAlt > 9_700, 5000);
      const s4 = gcs.mark;
      assert.equal(await gcs.command(CMD.NAV_RETURN_TO_LAUNCH), R.ACCEPTED);
      await gcs.waitFor<minimal.Heartbeat>('HEARTBEAT', (h) => (h.baseMode & minimal.MavModeFlag.SAFETY_ARMED) === 0, 8000, s4);
      assert.ok(Math.max(...gcs.all<common.GlobalPositionInt>('GLOBAL_POSITION_INT', s4).map((p) => p.relativeAlt)) >= 11_500, 'climbed to RTL_ALT 12 m first');

      assert.equal(gcs.framer.stats.crcErrors, 0);
      assert.equal(gcs.framer.stats.seqLost, 0);
      assert.ok(gcs.rx.every((r) => r.frame.checked));
    } finally {
      gcs.close();
      ac.abort();
      await sim.stop();
    }
    assert.equal(sim.core, null);
    const saved = JSON.parse(readFileSync(paramsFile, 'utf8')) as { params: Record<string, number> };
    assert.equal(saved.params['RTL_ALT'], 1200, 'params file flushed on stop');
  });

  it('serves each connected GCS separately, and stop() closes them', async () => {
    const { sim, port } = await startSim();
    const a = await SocketGcs.connect(port);
    const b = await SocketGcs.connect(port);
    try {
      await a.waitFor('HEARTBEAT', () => true, 3000, 0);
      await b.waitFor('HEARTBEAT', () => true, 3000, 0);
      assert.equal(sim.core!.links, 2);
      assert.equal(await a.command(CMD.SET_MESSAGE_INTERVAL, [common.Attitude.MSG_ID, -1]), R.ACCEPTED);
      const sa = a.mark;
      const sb = b.mark;
      await sleep(600);
      assert.equal(a.all('ATTITUDE', sa).length, 0, 'disabled on link a');
      assert.ok(b.all('ATTITUDE', sb).length >= 1, 'still streamed on link b');
      assert.equal(b.rx[0]!.frame.seq, 0, 'b has its own sequence');
      assert.equal(b.all('COMMAND_ACK').length, 0, 'acks go only to the requester');
      // Statustext goes to everyone.
      assert.equal(await a.command(CMD.COMPONENT_ARM_DISARM, [1, 21196]), R.ACCEPTED);
      await b.waitFor<common.StatusText>('STATUSTEXT', (t) => t.text === 'Arming motors', 1000, 0);
    } finally {
      await sim.stop();
    }
    await sleep(50);
    assert.ok(a.closed && b.closed, 'clients disconnected by stop()');
  });
});

/** A transport that never does I/O, to check the runner's wiring and cleanup. */
class FakeTransport extends EventEmitter<TransportEvents> implements Transport {
  started = false;
  stopped = false;
  constructor(readonly spec: EndpointSpec) {
    super();
  }
  start(): Promise<void> {
    this.started = true;
    return Promise.resolve();
  }
  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }
  stats(): TransportStats {
    return { url: this.spec.url, connected: true, peers: 0, bytesIn: 0, bytesOut: 0, dropsOut: 0, reconnects: 0, lastError: null };
  }
}

describe('SimAutopilot wiring', () => {
  it('ticks through the injected scheduler, honours maxLinks, and clears its timer on abort', async () => {
    let t = 0;
    let tick = null as (() => void) | null;
    let cleared = false;
    const scheduler: SimScheduler = {
      now: () => t,
      setInterval: (fn) => ((tick = fn), 'h'),
      clearInterval: (h) => (cleared = h === 'h'),
    };
    let transport = null as FakeTransport | null;
    const sim = new SimAutopilot({
      link: 'udp://127.0.0.1:14550',
      logger: silentLogger(),
      sim: { maxLinks: 1 },
      scheduler,
      transportFactory: (spec) => (transport = new FakeTransport(spec)),
    });
    assert.equal(transport, null, 'the constructor does nothing');
    const ac = new AbortController();
    await sim.start(ac.signal);
    assert.ok(transport!.started && tick !== null);
    const out: Buffer[] = [];
    const link = (id: string): ByteLink => ({ id, write: (d) => (out.push(Buffer.from(d)), true) });
    transport!.emit('open', link('one'));
    transport!.emit('open', link('two'));
    assert.equal(sim.core!.links, 1, 'second link ignored');
    t += 1000;
    tick!();
    assert.ok(out.length > 0, 'telemetry written to the link');
    await assert.rejects(sim.start(ac.signal), /twice/);
    ac.abort();
    await sim.stop();
    assert.ok(cleared && transport!.stopped);
    assert.equal(sim.core, null);
  });

  it('start() with an already aborted signal starts nothing', async () => {
    let made = 0;
    const sim = new SimAutopilot({
      link: 'tcp-listen://127.0.0.1:5760', logger: silentLogger(),
      transportFactory: (spec) => (made++, new FakeTransport(spec)),
    });
    await sim.start(AbortSignal.abort());
    assert.equal(made, 0);
    assert.equal(sim.core, null);
  });

  it('validates options in the constructor', () => {
    assert.throws(() => new SimAutopilot({ link: 'tcp-listen://127.0.0.1:5760', logger: silentLogger(), sim: { speedup: 0 } }), /sim\.speedup/);
    assert.throws(() => new SimAutopilot({ link: 'bogus://x', logger: silentLogger() }), /unknown scheme/);
  });
});
