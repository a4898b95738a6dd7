import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeFrame } from '../../src/mavlink/encode.js';
import { Framer, splitFrames, type Frame } from '../../src/mavlink/framer.js';
import { dialect, makeEngine, policyWith } from './helpers.js';

/**
 * Whatever arrives from the ground (valid encodings of any message with random field bytes, or
 * garbage that is merely framed the way splitFrames frames it), check() never throws and gives
 * exactly one verdict per frame; every reply is one complete, CRC-valid frame.
 */

const knownMsgids: number[] = [];
for (let id = 0; id < 65536; id++) if (dialect.messageClass(id) !== undefined) knownMsgids.push(id);
/** The ones the engine looks inside, drawn more often. */
const interesting = [0, 11, 22, 23, 66, 75, 76, 110, 245, 253];

const validFrame = fc
  .record({
    msgid: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...interesting) }, { weight: 2, arbitrary: fc.constantFrom(...knownMsgids) }),
    v1: fc.boolean(),
    sysid: fc.integer({ min: 0, max: 255 }),
    compid: fc.integer({ min: 0, max: 255 }),
    seq: fc.integer({ min: 0, max: 255 }),
    payload: fc.uint8Array({ minLength: 0, maxLength: 255 }),
    useFloats: fc.array(fc.oneof(fc.float(), fc.constantFrom(Number.NaN, Infinity, -1, 0, 1, 21196, 2989, 246, 185, 400)), { maxLength: 8 }),
  })
  .map(({ msgid, v1, sysid, compid, seq, payload, useFloats }): Frame => {
    const max = dialect.maxPayloadLength(msgid);
    const body = Buffer.alloc(max);
    Buffer.from(payload.subarray(0, max)).copy(body);
    // Sprinkle meaningful values where COMMAND_LONG/INT keep params and the command id.
    useFloats.forEach((f, i) => {
      if ((i + 1) * 4 <= Math.min(max, 28)) body.writeFloatLE(f, i * 4);
    });
    if ((msgid === 76 || msgid === 75) && payload.length > 0) body.writeUInt16LE([246, 185, 400, 511, 20, 180][payload[0]! % 6]!, 28);
    const version = v1 && msgid < 256 ? 1 : 2;
    const bytes = encodeFrame(dialect, { version, seq, sysid, compid, msgid }, body);
    const frames: Frame[] = [];
    splitFrames(bytes, (f) => frames.push(f));
    return frames[0]!;
  });

const garbageFrame = fc
  .record({
    v2: fc.boolean(),
    incompat: fc.integer({ min: 0, max: 255 }),
    header: fc.uint8Array({ minLength: 10, maxLength: 10 }),
    payload: fc.uint8Array({ minLength: 0, maxLength: 255 }),
    tail: fc.uint8Array({ minLength: 15, maxLength: 15 }),
  })
  .map(({ v2, incompat, header, payload, tail }): Frame | null => {
    const h = Buffer.from(header);
    h[0] = v2 ? 0xfd : 0xfe;
    h[1] = payload.length;
    if (v2) h[2] = incompat;
    const headerLen = v2 ? 10 : 6;
    const total = headerLen + payload.length + 2 + (v2 && (incompat & 1) !== 0 ? 13 : 0);
    const bytes = Buffer.concat([h.subarray(0, headerLen), Buffer.from(payload), Buffer.from(tail)]).subarray(0, total);
    let out: Frame | null = null;
    splitFrames(bytes, (f) => (out = f));
    return out;
  });

const op = fc.oneof(
  { weight: 5, arbitrary: validFrame.map((f) => ({ kind: 'check' as const, f })) },
  { weight: 3, arbitrary: garbageFrame.map((f) => ({ kind: 'check' as const, f })) },
  { weight: 2, arbitrary: validFrame.map((f) => ({ kind: 'observe' as const, f })) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 10_000 }).map((ms) => ({ kind: 'tick' as const, ms })) },
);

function assertValidReply(bytes: Buffer): void {
  const framer = new Framer(dialect);
  let n = 0;
  framer.push(bytes, () => n++);
  assert.equal(n, 1, `reply ${bytes.toString('hex')}`);
  assert.equal(framer.stats.crcErrors + framer.stats.garbageBytes, 0);
}

for (const [label, dryRun, answerAs] of [['enforcing', false, 'target'], ['dry run', true, 'target'], ['companion answers', false, 'companion']] as const) {
  test(`random frames: never a throw, exactly one verdict each (${label})`, () => {
    const seen = new Map<string, number>();
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), (ops) => {
        const { engine, clock, records } = makeEngine(policyWith((p) => (p.replies = { answerAs })), { dryRun });
        let checks = 0;
        for (const o of ops) {
          if (o.kind === 'tick') {
            clock.advance(o.ms);
            continue;
          }
          if (o.f === null) continue;
          if (o.kind === 'observe') {
            engine.observe(o.f);
            continue;
          }
          const before = records.length;
          const v = engine.check(o.f);
          checks++;
          assert.equal(records.length, before + 1, 'one record per check');
          assert.ok(['allow', 'deny', 'confirm'].includes(v.action));
          const key = `${records.at(-1)!.verdict}:${v.rule}`;
          seen.set(key, (seen.get(key) ?? 0) + 1);
          assert.equal(records.at(-1)!.verdict, v.action === 'allow' && v.wouldBe ? v.wouldBe.action : v.action);
          if (v.action === 'allow') {
            assert.ok(Buffer.isBuffer(v.frame.bytes));
            if (dryRun) assert.equal(v.frame, o.f);
            if (v.rewritten) assertValidReply(v.frame.bytes);
          } else {
            assert.ok(!dryRun);
            assert.ok(v.rule.length > 0 && v.reason.length > 0);
            v.replies.forEach(assertValidReply);
          }
        }
        const s = engine.stats();
        assert.equal(s.frames, checks);
        assert.equal(s.allow + s.deny + s.confirm, checks);
        assert.equal(s.internalErrors, 0, 'no internal errors');
        assert.equal(Object.values(s.byRule).reduce((n, c) => n + c.allow + c.deny + c.confirm, 0), checks);
      }),
      { numRuns: 300 },
    );
    // The generators reach the interesting paths, not just "malformed".
    const kinds = [...seen.keys()];
    for (const want of ['allow:message-allowed', 'allow:command-default', 'deny:message-not-allowed', 'deny:malformed', 'deny:reboot-while-armed']) {
      assert.ok(kinds.includes(want), `never saw ${want}: ${kinds.join(', ')}`);
    }
  });
}
