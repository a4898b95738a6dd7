import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { common, minimal, type MavLinkData } from 'node-mavlink';
import { ardupilotmegaDialect } from '../../src/mavlink/dialect.js';
import { Codec, FrameWriter } from '../../src/mavlink/codec.js';
import { Framer, type Frame } from '../../src/mavlink/framer.js';

/**
 * A ground station for end-to-end tests, over a real TCP socket, in real time: it does what
 * QGroundControl/MAVProxy do at the protocol level (heartbeats, parameter download with re-requests
 * of missing indices, mission upload/download handshakes with retries, commands with acks).
 */
export interface Rx {
  atMs: number;
  frame: Frame;
  msg: MavLinkData | undefined;
  name: string;
}

const MAX_RX = 200_000;

export class GcsClient {
  readonly dialect = ardupilotmegaDialect();
  readonly codec = new Codec(this.dialect);
  private readonly framer = new Framer(this.dialect);
  readonly writer: FrameWriter;
  rx: Rx[] = [];
  private socket: Socket | null = null;
  private hbTimer: NodeJS.Timeout | null = null;
  targetSystem = 1;
  targetComponent = 1;

  constructor(sysid = 255, compid = 190) {
    this.writer = new FrameWriter(this.codec, sysid, compid);
  }

  async connect(port: number, host = '127.0.0.1'): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        this.socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(port, host, () => resolve(s));
          s.once('error', reject);
        });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(100);
      }
    }
    this.socket.on('data', (chunk: Buffer) => this.framer.push(chunk, (frame) => {
      if (this.rx.length > MAX_RX) this.rx = this.rx.slice(-MAX_RX / 2);
      this.rx.push({ atMs: performance.now(), frame, msg: this.codec.decode(frame), name: this.dialect.messageName(frame.msgid) });
    }));
    this.socket.on('error', () => undefined);
    this.hbTimer = setInterval(() => this.heartbeat(), 1000);
    this.heartbeat();
  }

  close(): void {
    if (this.hbTimer) clearInterval(this.hbTimer);
    this.socket?.destroy();
  }

  heartbeat(): void {
    const hb = new minimal.Heartbeat();
    hb.type = 6 as minimal.MavType; // GCS
    hb.autopilot = 8 as minimal.MavAutopilot; // invalid: not an autopilot
    hb.mavlinkVersion = 3;
    this.send(hb);
  }

  send(msg: MavLinkData): void {
    this.socket?.write(this.writer.encode(msg));
  }

  get mark(): number {
    return this.rx.length;
  }

  count(name: string, since = 0): number {
    let n = 0;
    for (let i = since; i < this.rx.length; i++) if (this.rx[i]!.name === name) n++;
    return n;
  }

  async waitFor<T extends MavLinkData>(name: string, pred: (m: T) => boolean = () => true, timeoutMs = 10_000, since = this.mark): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    let i = since;
    for (;;) {
      for (; i < this.rx.length; i++) {
        const r = this.rx[i]!;
        if (r.name === name && r.msg !== undefined && pred(r.msg as T)) return r.msg as T;
      }
      if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${name}`);
      await sleep(10);
    }
  }

  async command(command: number, params: number[] = [], timeoutMs = 3000, retries = 3): Promise<number> {
    for (let attempt = 0; attempt <= retries; attempt++) {
      const mark = this.mark;
      const c = new common.CommandLong();
      c.targetSystem = this.targetSystem;
      c.targetComponent = this.targetComponent;
      c.command = command as common.MavCmd;
      c.confirmation = attempt;
      [c._param1, c._param2, c._param3, c._param4, c._param5, c._param6, c._param7] = [0, 1, 2, 3, 4, 5, 6].map((i) => params[i] ?? 0) as [number, number, number, number, number, number, number];
      this.send(c);
      try {
        const ack = await this.waitFor<common.CommandAck>('COMMAND_ACK', (a) => a.command === command, timeoutMs, mark);
        return ack.result;
      } catch (err) {
        if (attempt === retries) throw err;
      }
    }
    throw new Error('unreachable');
  }

  async setMode(customMode: number): Promise<number> {
    return this.command(176, [1, customMode]); // MAV_CMD_DO_SET_MODE, MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
  }

  /** PARAM_REQUEST_LIST, then PARAM_REQUEST_READ by index for whatever is missing (what QGC does). */
  async downloadParams(timeoutMs = 60_000): Promise<Map<string, number>> {
    const mark = this.mark;
    const req = new common.ParamRequestList();
    req.targetSystem = this.targetSystem;
    req.targetComponent = this.targetComponent;
    this.send(req);
    const first = await this.waitFor<common.ParamValue>('PARAM_VALUE', () => true, 10_000, mark);
    const total = first.paramCount;
    const byIndex = new Map<number, common.ParamValue>();
    const deadline = performance.now() + timeoutMs;
    let scanned = mark;
    let lastProgress = performance.now();
    while (byIndex.size < total) {
      for (; scanned < this.rx.length; scanned++) {
        const r = this.rx[scanned]!;
        if (r.name === 'PARAM_VALUE') {
          const pv = r.msg as common.ParamValue;
          if (!byIndex.has(pv.paramIndex)) lastProgress = performance.now();
          byIndex.set(pv.paramIndex, pv);
        }
      }
      if (performance.now() > deadline) throw new Error(`parameter download: ${byIndex.size}/${total} after ${timeoutMs} ms`);
      if (performance.now() - lastProgress > 1500) {
        for (let i = 0; i < total; i++) {
          if (byIndex.has(i)) continue;
          const rr = new common.ParamRequestRead();
          rr.targetSystem = this.targetSystem;
          rr.targetComponent = this.targetComponent;
          rr.paramIndex = i;
          rr.paramId = '';
          this.send(rr);
        }
        lastProgress = performance.now();
      }
      await sleep(20);
    }
    return new Map([...byIndex.values()].map((p) => [p.paramId, p.paramValue]));
  }

  /** MISSION_COUNT -> answer each MISSION_REQUEST(_INT) -> MISSION_ACK, resending the count on silence. */
  async uploadMission(items: common.MissionItemInt[], timeoutMs = 30_000): Promise<number> {
    const mark = this.mark;
    const count = new common.MissionCount();
    count.targetSystem = this.targetSystem;
    count.targetComponent = this.targetComponent;
    count.count = items.length;
    count.missionType = 0 as common.MavMissionType;
    this.send(count);
    const deadline = performance.now() + timeoutMs;
    let scanned = mark;
    let lastActivity = performance.now();
    for (;;) {
      for (; scanned < this.rx.length; scanned++) {
        const r = this.rx[scanned]!;
        if (r.name === 'MISSION_REQUEST_INT' || r.name === 'MISSION_REQUEST') {
          const seq = (r.msg as common.MissionRequestInt).seq;
          const item = items[seq];
          if (item) this.send(item);
          lastActivity = performance.now();
        } else if (r.name === 'MISSION_ACK') {
          return (r.msg as common.MissionAck).type;
        }
      }
      if (performance.now() > deadline) throw new Error('mission upload timed out');
      if (performance.now() - lastActivity > 3000) {
        this.send(count); // the autopilot lost the handshake (e.g. broker restart): start over
        lastActivity = performance.now();
      }
      await sleep(10);
    }
  }

  async downloadMission(timeoutMs = 30_000): Promise<common.MissionItemInt[]> {
    const deadline = performance.now() + timeoutMs;
    const mark = this.mark;
    const list = new common.MissionRequestList();
    list.targetSystem = this.targetSystem;
    list.targetComponent = this.targetComponent;
    list.missionType = 0 as common.MavMissionType;
    this.send(list);
    const count = await this.waitFor<common.MissionCount>('MISSION_COUNT', () => true, 5000, mark);
    const items: common.MissionItemInt[] = [];
    for (let seq = 0; seq < count.count; seq++) {
      for (;;) {
        const m = this.mark;
        const req = new common.MissionRequestInt();
        req.targetSystem = this.targetSystem;
        req.targetComponent = this.targetComponent;
        req.seq = seq;
        req.missionType = 0 as common.MavMissionType;
        this.send(req);
        try {
          items.push(await this.waitFor<common.MissionItemInt>('MISSION_ITEM_INT', (it) => it.seq === seq, 2000, m));
          break;
        } catch (err) {
          if (performance.now() > deadline) throw err;
        }
      }
    }
    const ack = new common.MissionAck();
    ack.targetSystem = this.targetSystem;
    ack.targetComponent = this.targetComponent;
    ack.type = 0 as common.MavMissionResult;
    ack.missionType = 0 as common.MavMissionType;
    this.send(ack);
    return items;
  }

  lastHeartbeatFrom(sysid: number, compid: number): minimal.Heartbeat | undefined {
    for (let i = this.rx.length - 1; i >= 0; i--) {
      const r = this.rx[i]!;
      if (r.name === 'HEARTBEAT' && r.frame.sysid === sysid && r.frame.compid === compid) return r.msg as minimal.Heartbeat;
    }
    return undefined;
  }
}

/**
 * Waypoints around a point, as a GCS plans them for ArduPilot: item 0 is the home slot (the
 * autopilot overwrites it with its home), item 1 a takeoff, the rest waypoints.
 */
export function squareMission(count: number, lat = -35.363261, lon = 149.165230, altM = 20, targetSystem = 1, targetComponent = 1): common.MissionItemInt[] {
  const items: common.MissionItemInt[] = [];
  for (let seq = 0; seq < count; seq++) {
    const it = new common.MissionItemInt();
    it.targetSystem = targetSystem;
    it.targetComponent = targetComponent;
    it.seq = seq;
    it.frame = 3 as common.MavFrame; // GLOBAL_RELATIVE_ALT
    it.command = (seq === 1 ? 22 : 16) as common.MavCmd; // home slot, TAKEOFF, then WAYPOINTs
    it.current = 0;
    it.autocontinue = 1;
    it.x = Math.round((lat + 0.0002 * Math.sin(seq)) * 1e7);
    it.y = Math.round((lon + 0.0002 * Math.cos(seq)) * 1e7);
    it.z = altM + seq;
    it.missionType = 0 as common.MavMissionType;
    items.push(it);
  }
  return items;
}
