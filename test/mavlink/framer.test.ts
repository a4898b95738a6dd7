import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MavLinkPacketSplitter, MavLinkPacketParser, minimal, common, type MavLinkPacket } from 'node-mavlink';
import { Readable } from 'node:stream';
import { ardupilotmegaDialect } from '../../src/mavlink/dialect.js';
import { Framer, MAX_FRAME_LENGTH, type Frame } from '../../src/mavlink/framer.js';
import { encodeFrame } from '../../src/mavlink/encode.js';
import { Codec, FrameWriter } from '../../src/mavlink/codec.js';
import { crc16, crc16Byte } from '../../src/mavlink/crc.js';

const dialect = ardupilotmegaDialect();
const codec = new Codec(dialect);
const KNOWN_MSGIDS = [0, 1, 24, 30, 33, 74, 76, 77, 22, 39, 44, 73, 147, 253, 245, 11, 20, 21, 23, 66];
/** msgids no dialect we carry defines (forwarded unchecked). */
const UNKNOWN_MSGIDS = [60000, 54321, 9999];

function collect(framer: Framer, chunks: Buffer[]): Frame[] {
  const out: Frame[] = [];
  for (const c of chunks) framer.push(c, (f) => out.push(f));
  return out;
}

/** A valid frame generator: known msgids (CRC checked), v1 and v2, signed v2, and unknown msgids. */
const frameArb = fc
  .record({
    kind: fc.constantFrom('v1', 'v2', 'v2signed', 'unknown'),
    msgIndex: fc.nat(),
    seq: fc.integer({ min: 0, max: 255 }),
    sysid: fc.integer({ min: 1, max: 255 }),
    compid: fc.integer({ min: 0, max: 255 }),
    payloadSeed: fc.uint8Array({ minLength: 255, maxLength: 255 }),
    signature: fc.uint8Array({ minLength: 13, maxLength: 13 }),
  })
  .map((r) => makeFrame(r));

function makeFrame(r: { kind: string; msgIndex: number; seq: number; sysid: number; compid: number; payloadSeed: Uint8Array; signature: Uint8Array }): Buffer {
  if (r.kind === 'unknown') {
    const msgid = UNKNOWN_MSGIDS[r.msgIndex % UNKNOWN_MSGIDS.length] as number;
    const len = 1 + (r.msgIndex % 40);
    const b = Buffer.alloc(12 + len);
    b[0] = 0xfd; b[1] = len; b[4] = r.seq; b[5] = r.sysid; b[6] = r.compid;
    b[7] = msgid & 0xff; b[8] = (msgid >> 8) & 0xff; b[9] = msgid >> 16;
    b.set(r.payloadSeed.subarray(0, len), 10);
    b.writeUInt16LE(crc16(b, 1, 10 + len), 10 + len);
    return b;
  }
  const msgid = KNOWN_MSGIDS[r.msgIndex % KNOWN_MSGIDS.length] as number;
  const full = dialect.maxPayloadLength(msgid);
  const payload = Buffer.from(r.payloadSeed.subarray(0, full));
  const version = r.kind === 'v1' ? 1 : 2;
  const frame = encodeFrame(dialect, { version, seq: r.seq, sysid: r.sysid, compid: r.compid, msgid }, payload);
  if (r.kind !== 'v2signed') return frame;
  // Signed: set the incompat flag, recompute the CRC, append a (random) signature.
  const signed = Buffer.concat([frame, Buffer.from(r.signature)]);
  signed[2] = 0x01;
  const len = signed[1] as number;
  signed.writeUInt16LE(crc16Byte(crc16(signed, 1, 10 + len), dialect.crcExtra(msgid)), 10 + len);
  return signed;
}

/** Frames whose CRC the framer can check: the stream is unambiguous, so output must be exact. */
const knownFrameArb = frameArb.filter((f) => !(f[0] === 0xfd && dialect.crcExtra(f.readUIntLE(7, 3)) < 0));

/** Garbage that cannot contain a start byte, so the expected output is exactly the valid frames. */
const garbageArb = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a.filter((b) => b !== 0xfd && b !== 0xfe)));

function chunkAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

describe('framer', () => {
  test('decodes frames we encode, with node-mavlink as an independent oracle for CRCs', async () => {
    const w2 = new FrameWriter(codec, 1, 1);
    const w1 = new FrameWriter(codec, 1, 1, 1);
    const hb = new minimal.Heartbeat();
    hb.type = 2 as minimal.MavType; hb.customMode = 4; hb.mavlinkVersion = 3;
    const cmd = new common.CommandLong();
    cmd.command = 400 as common.MavCmd; cmd._param1 = 1; cmd.targetSystem = 1; cmd.targetComponent = 1;
    const bytes = Buffer.concat([w2.encode(hb), w2.encode(cmd), w1.encode(hb), w1.encode(cmd)]);
    // Oracle: node-mavlink's own splitter + parser must accept every frame.
    const packets: MavLinkPacket[] = [];
    await new Promise<void>((resolve, reject) => {
      Readable.from([bytes]).pipe(new MavLinkPacketSplitter()).pipe(new MavLinkPacketParser())
        .on('data', (p: MavLinkPacket) => packets.push(p)).on('end', resolve).on('error', reject);
    });
    assert.deepEqual(packets.map((p) => p.header.msgid), [0, 76, 0, 76]);
    const frames = collect(new Framer(dialect), [bytes]);
    assert.deepEqual(frames.map((f) => [f.version, f.msgid, f.seq, f.checked]), [[2, 0, 0, true], [2, 76, 1, true], [1, 0, 0, true], [1, 76, 1, true]]);
    const decoded = codec.decode<common.CommandLong>(frames[1]!);
    assert.equal(decoded?.command, 400);
    assert.equal(decoded?._param1, 1);
  });

  test('a known v2 HEARTBEAT from the spec decodes (fixed bytes)', () => {
    // ArduPilot Copter heartbeat: sysid 1 compid 1, quadrotor, ardupilotmega, GUIDED, armed.
    const payload = Buffer.from([4, 0, 0, 0, 2, 3, 0x81 + 0x50, 4, 3]);
    const frame = encodeFrame(dialect, { version: 2, seq: 9, sysid: 1, compid: 1, msgid: 0 }, payload);
    const [f] = collect(new Framer(dialect), [frame]);
    assert.ok(f);
    const hb = codec.decode<minimal.Heartbeat>(f);
    assert.equal(hb?.customMode, 4);
    assert.equal(hb?.type, 2);
    assert.equal(hb?.mavlinkVersion, 3);
    // A single flipped bit anywhere in the frame is a CRC error, never a frame.
    for (let i = 1; i < frame.length; i++) {
      const bad = Buffer.from(frame);
      bad[i] = (bad[i] as number) ^ 0x10;
      const framer = new Framer(dialect);
      assert.equal(collect(framer, [bad]).length, 0, `bit flip at byte ${i} accepted`);
    }
  });

  test('property: valid frames among garbage, chunked anywhere, come out exactly and in order', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(garbageArb, knownFrameArb), { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 8 }), (pairs, cuts) => {
        const stream = Buffer.concat(pairs.flatMap(([g, f]) => [g, f]));
        const framer = new Framer(dialect);
        const got = collect(framer, chunkAt(stream, cuts));
        const expected = pairs.map(([, f]) => f);
        assert.deepEqual(got.map((f) => f.bytes.toString('hex')), expected.map((f) => f.toString('hex')));
        const signedIn = expected.filter((f) => f[0] === 0xfd && f[2] === 1).length;
        assert.equal(got.filter((f) => f.signed).length, signedIn);
        assert.equal(framer.stats.crcErrors, 0);
      }),
      { numRuns: 3000 },
    );
  });

  test('property: 10^5 valid-CRC mutations never throw, never exceed bounds, and resync within one frame', () => {
    // Mutate header fields (length, flags, msgid, payload) and then FIX the CRC, so the framer
    // sees frames that pass the CRC but lie about their structure; then a clean sentinel frame.
    const sentinel = encodeFrame(dialect, { version: 2, seq: 0, sysid: 42, compid: 42, msgid: 0 }, Buffer.from([0, 0, 0, 0, 6, 8, 0, 4, 3]));
    let mutations = 0;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(frameArb, fc.nat({ max: 11 }), fc.nat({ max: 255 }), fc.boolean()), { minLength: 50, maxLength: 50 }),
        (items) => {
          const parts: Buffer[] = [];
          for (const [frame, pos, value, fixCrc] of items) {
            const m = Buffer.from(frame);
            m[Math.min(pos, m.length - 1)] = value;
            if (fixCrc && m[0] === 0xfd && m.length >= 12) {
              const len = Math.min(m[1] as number, m.length - 12);
              const msgid = (m[7] as number) | ((m[8] as number) << 8) | ((m[9] as number) << 16);
              const extra = dialect.crcExtra(msgid);
              if (extra >= 0 && 12 + len <= m.length) m.writeUInt16LE(crc16Byte(crc16(m, 1, 10 + len), extra), 10 + len);
            }
            parts.push(m);
            mutations++;
          }
          const framer = new Framer(dialect);
          const got: Frame[] = [];
          // The mutated stream, then enough zero bytes to complete any frame a lying length opened,
          // then the sentinel: it must come out (resync within one frame of the garbage ending).
          const stream = Buffer.concat([...parts, Buffer.alloc(MAX_FRAME_LENGTH), sentinel]);
          for (let i = 0; i < stream.length; i += 97) {
            framer.push(stream.subarray(i, i + 97), (f) => got.push(f));
          }
          for (const f of got) {
            assert.ok(f.bytes.length <= MAX_FRAME_LENGTH);
            assert.ok(f.payloadOffset + f.payloadLength + 2 <= f.bytes.length);
          }
          assert.equal(got.at(-1)?.bytes.toString('hex'), sentinel.toString('hex'));
        },
      ),
      { numRuns: 2000 },
    );
    assert.ok(mutations >= 100_000, `only ${mutations} mutated frames`);
  });

  test('property: random bytes never throw and memory stays bounded', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 512 }), { maxLength: 20 }), (chunks) => {
        const framer = new Framer(dialect);
        for (const c of chunks) framer.push(Buffer.from(c), () => undefined);
        const pending = (framer as unknown as { pending: Buffer | null }).pending;
        assert.ok(pending === null || pending.length < MAX_FRAME_LENGTH);
      }),
      { numRuns: 2000 },
    );
  });

  test('counts CRC errors, garbage, resyncs, unknown msgids and per-source sequence loss', () => {
    const mk = (seq: number, msgid = 0): Buffer => encodeFrame(dialect, { version: 2, seq, sysid: 1, compid: 1, msgid }, Buffer.alloc(dialect.maxPayloadLength(msgid), 1));
    const corrupt = Buffer.from(mk(1));
    corrupt[12] = (corrupt[12] as number) ^ 0x0f;
    const unknown = makeFrame({ kind: 'unknown', msgIndex: 0, seq: 7, sysid: 9, compid: 9, payloadSeed: new Uint8Array(255), signature: new Uint8Array(13) });
    const framer = new Framer(dialect);
    const got = collect(framer, [Buffer.concat([Buffer.from('garbage'), mk(0), corrupt, mk(2), mk(5), unknown, mk(6)])]);
    assert.deepEqual(got.map((f) => f.seq), [0, 2, 5, 7, 6]);
    assert.equal(framer.stats.crcErrors, 1);
    assert.equal(framer.stats.garbageBytes, 7 + corrupt.length);
    assert.equal(framer.stats.resyncs, 2); // the leading garbage, then the corrupt frame
    assert.equal(framer.stats.unknownMsgids, 1);
    assert.equal(got[3]?.checked, false);
    // seq 0 -> 2 loses 1 (the corrupt one), 2 -> 5 loses 2, 5 -> 6 none.
    assert.equal(framer.stats.seqLost, 3);
    const src = framer.sources().find((s) => s.sysid === 1 && s.compid === 1);
    assert.equal(src?.lost, 3);
    assert.equal(src?.received, 4);
  });

  test('a frame split one byte at a time is reassembled', () => {
    const f = encodeFrame(dialect, { version: 2, seq: 3, sysid: 1, compid: 1, msgid: 33 }, Buffer.alloc(dialect.maxPayloadLength(33), 7));
    const framer = new Framer(dialect);
    const got = collect(framer, [...f].map((b) => Buffer.from([b])));
    assert.equal(got.length, 1);
    assert.equal(got[0]?.bytes.toString('hex'), f.toString('hex'));
  });
});
