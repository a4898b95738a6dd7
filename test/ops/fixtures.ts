/**
 * Shared fixtures for test/ops: snapshots shaped like AirApp/GroundGateway.snapshot(). Named
 * *.test.ts only to live with the tests it serves; it defines no tests itself (importing a file
 * with tests would run them again in every importer).
 */
import type { AirSnapshot } from '../../src/app/air.js';
import type { GroundSnapshot } from '../../src/app/ground.js';

export function link(name: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name, url: `udp://127.0.0.1:${name.length + 14550}`, connected: true, peers: 1, bytesOut: 5000, dropsOut: 3, reconnects: 1, lastError: null,
    frames: 1000, bytes: 42_000, garbageBytes: 0, crcErrors: 7, badLengths: 0, resyncs: 2, unknownMsgids: 0, seqLost: 10, lossPercent: 0.99, sources: [],
    ...over,
  };
}

export function fakeAirSnapshot(over: Record<string, unknown> = {}): AirSnapshot {
  return {
    autopilot: link('autopilot', { url: 'serial:///dev/autopilot?baud=921600', frames: 5000, bytes: 200_000 }),
    endpoints: [link('local-gcs'), link('apps', { connected: false, peers: 0, lastError: 'EADDRINUSE' })],
    router: { routed: 9000, broadcast: 8000, targeted: 1000, unknownTarget: 2, noRoute: 1, ports: [] },
    tlog: { file: '/var/lib/mavmq/tlog/000001-x.tlog', framesWritten: 5000, bytesWritten: 250_000, framesDropped: 0, filesDeleted: 0, writeErrors: 0 },
    autopilotState: { sysid: 1, compid: 1, autopilot: 3, type: 2, baseMode: 0, customMode: 0, systemStatus: 4, armed: false, lastHeartbeatMs: performance.now() - 400 },
    relay: { sessionId: 'ab12cd34ef567890', sessions: 2, envelopesOut: 300, framesOut: 4000, bytesOut: 99_000, framesUnsentNoSession: 5, envelopesIn: 20, framesIn: 25, framesRefused: 3, rejected: { 'auth-failed': 2, replay: 1 } },
    mqtt: { connected: true, connects: 1, published: 320, publishErrors: 0, received: 22, outboxBytes: 0, outboxDropped: 0, qos0DroppedOffline: 4, lastError: null },
    ...over,
  } as unknown as AirSnapshot;
}

export function fakeGroundSnapshot(): GroundSnapshot {
  return {
    mqtt: { connected: true, connects: 2, published: 50, publishErrors: 0, received: 400, outboxBytes: 0, outboxDropped: 0, qos0DroppedOffline: 0, lastError: null },
    vehicles: [{
      relay: {
        vehicleId: 'drone-1', online: true, brokerStatus: 'online', sessionId: 'ab12cd34ef567890', sessions: 1, rttMs: 85.5, envelopesIn: 400, envelopesLost: 4,
        lossPercent: 0.99, framesIn: 5000, framesOut: 30, envelopesOut: 12, framesUnsentNoSession: 0, rejected: { replay: 1 }, lastHealth: null,
      },
      gcs: [link('qgc')],
      router: { routed: 5030, broadcast: 5000, targeted: 30, unknownTarget: 0, noRoute: 0, ports: [] },
      tlog: null,
    }],
  } as unknown as GroundSnapshot;
}

