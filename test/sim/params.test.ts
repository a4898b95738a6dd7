import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { common } from 'node-mavlink';
import { JsonParamFile } from '../../src/sim/index.js';
import { buildParamDefs, coerceParam, ParamTable, type ParamStore } from '../../src/sim/params.js';
import { FakeGcs } from './gcs.js';

const PT = common.MavParamType;

function requestList(g: FakeGcs): void {
  const m = new common.ParamRequestList();
  m.targetSystem = 1;
  m.targetComponent = 1;
  g.send(m);
}

function paramSet(g: FakeGcs, name: string, value: number, type = PT.REAL32): void {
  const m = new common.ParamSet();
  m.targetSystem = 1;
  m.targetComponent = 1;
  m.paramId = name;
  m.paramValue = value;
  m.paramType = type;
  g.send(m);
}

function read(g: FakeGcs, name: string, index = -1): common.ParamValue | undefined {
  const m = new common.ParamRequestRead();
  m.targetSystem = 1;
  m.targetComponent = 1;
  m.paramId = name;
  m.paramIndex = index;
  const since = g.mark;
  g.send(m);
  return g.all<common.ParamValue>('PARAM_VALUE', since)[0];
}

class MemoryStore implements ParamStore {
  saved: Record<string, number> = {};
  saves = 0;
  constructor(private initial: Record<string, number> = {}) {}
  load(): Record<string, number> {
    return { ...this.initial };
  }
  save(values: Record<string, number>): void {
    this.saved = values;
    this.saves++;
  }
}

describe('sim parameters', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('builds several hundred unique, deterministic ArduPilot-style parameters', () => {
    const a = buildParamDefs({ sysid: 1, streamRates: {} });
    const b = buildParamDefs({ sysid: 1, streamRates: {} });
    assert.deepEqual(a, b);
    assert.ok(a.length >= 700, `only ${a.length} params`);
    assert.equal(new Set(a.map((d) => d.name)).size, a.length);
    for (const d of a) assert.ok(d.name.length <= 16 && /^[A-Z0-9_]+$/.test(d.name), d.name);
    const names = new Set(a.map((d) => d.name));
    for (const n of ['SYSID_THISMAV', 'ARMING_CHECK', 'BATT_CAPACITY', 'FS_THR_ENABLE', 'FENCE_ENABLE', 'SERIAL7_BAUD', 'SR6_EXTRA3',
      'WPNAV_SPEED', 'RTL_ALT', 'PILOT_SPEED_UP', 'ATC_RAT_RLL_P', 'PSC_POSXY_P', 'INS_GYROFFS_X', 'COMPASS_OFS_X', 'EK3_ENABLE',
      'BRD_SAFETY_DEFLT', 'LOG_BACKEND_TYPE', 'MOT_SPIN_ARM', 'RC16_OPTION', 'SERVO16_FUNCTION', 'FLTMODE6']) {
      assert.ok(names.has(n), n);
    }
    const types = new Set<number>(a.map((d) => d.type));
    for (const t of [PT.INT8, PT.INT16, PT.INT32, PT.REAL32]) assert.ok(types.has(t), `type ${t}`);
  });

  it('coerces values to the storage type like ArduPilot (constrain, round)', () => {
    assert.equal(coerceParam(PT.INT8, 300), 127);
    assert.equal(coerceParam(PT.INT8, -300), -128);
    assert.equal(coerceParam(PT.INT16, 2.6), 3);
    assert.equal(coerceParam(PT.REAL32, 0.1), Math.fround(0.1));
    const t = new ParamTable(buildParamDefs({ sysid: 1, streamRates: {} }));
    assert.equal(t.set('NO_SUCH_PARAM', 1), undefined);
    assert.equal(t.set('RTL_ALT', NaN), undefined);
    assert.equal(t.get('RTL_ALT'), 1500);
  });

  it('streams every parameter on PARAM_REQUEST_LIST, paced, with matching count and all indices', () => {
    const g = new FakeGcs({ paramRatePerSec: 500 });
    const since = g.mark;
    requestList(g);
    const count = g.core.params.count;
    g.advance(50);
    const early = g.all<common.ParamValue>('PARAM_VALUE', since).length;
    assert.ok(early > 0 && early < 60, `paced, not all at once: ${early} in 50 ms`);
    const deadline = g.now + 10_000;
    while (g.all('PARAM_VALUE', since).length < count && g.now < deadline) g.advance(100);
    const values = g.all<common.ParamValue>('PARAM_VALUE', since);
    assert.equal(values.length, count);
    const elapsed = g.now - 10_000;
    assert.ok(elapsed >= (count / 500) * 1000 - 100, `took ${elapsed} ms for ${count} at 500/s`);
    const indices = new Set(values.map((v) => v.paramIndex));
    assert.equal(indices.size, count);
    for (let i = 0; i < count; i++) assert.ok(indices.has(i), `index ${i} missing`);
    for (const v of values) assert.equal(v.paramCount, count);
    const sysid = values.find((v) => v.paramId === 'SYSID_THISMAV')!;
    assert.equal(sysid.paramValue, 1);
    assert.equal(sysid.paramType, PT.INT16);
    // Telemetry keeps flowing during the download.
    assert.ok(g.all('HEARTBEAT', since).length >= 1);
  });

  it('answers PARAM_REQUEST_READ by name and by index, ignores unknown names', () => {
    const g = new FakeGcs();
    const byName = read(g, 'WPNAV_SPEED')!;
    assert.equal(byName.paramValue, 1000);
    assert.equal(byName.paramType, PT.REAL32);
    const byIndex = read(g, 'ignored', byName.paramIndex)!;
    assert.equal(byIndex.paramId, 'WPNAV_SPEED');
    assert.equal(read(g, 'NOT_A_PARAM'), undefined);
    assert.equal(read(g, '', 30_000), undefined);
  });

  it('PARAM_SET echoes PARAM_VALUE, persists through the store, and survives a reboot', () => {
    const store = new MemoryStore();
    const g = new FakeGcs({ rebootMs: 500 }, { paramStore: store });
    const since = g.mark;
    paramSet(g, 'RTL_ALT', 2500.4, PT.INT32);
    const echo = g.all<common.ParamValue>('PARAM_VALUE', since);
    assert.equal(echo.length, 1);
    assert.equal(echo[0]!.paramId, 'RTL_ALT');
    assert.equal(echo[0]!.paramValue, 2500);
    assert.equal(echo[0]!.paramType, PT.INT32, 'the stored type wins over the one sent');
    assert.deepEqual(store.saved, { RTL_ALT: 2500 });

    const s2 = g.mark;
    paramSet(g, 'NO_SUCH_PARAM', 1);
    assert.equal(g.all('PARAM_VALUE', s2).length, 0, 'unknown names are ignored (ArduPilot sends nothing)');
    assert.equal(store.saves, 1);

    assert.equal(g.command(common.MavCmd.PREFLIGHT_REBOOT_SHUTDOWN, [1]), common.MavResult.ACCEPTED);
    g.advance(1000);
    assert.equal(read(g, 'RTL_ALT')!.paramValue, 2500);
    assert.equal(read(g, 'STAT_BOOTCNT')!.paramValue, 1);
  });

  it('loads saved values at start and applies SYSID_THISMAV on reboot', () => {
    const g = new FakeGcs({ rebootMs: 200 }, { paramStore: new MemoryStore({ WPNAV_SPEED: 500, BOGUS: 3 }) });
    assert.equal(read(g, 'WPNAV_SPEED')!.paramValue, 500);
    paramSet(g, 'SYSID_THISMAV', 7, PT.INT16);
    assert.equal(g.command(common.MavCmd.PREFLIGHT_REBOOT_SHUTDOWN, [1]), common.MavResult.ACCEPTED);
    const since = g.mark;
    g.advance(1500);
    const hb = g.rx.slice(since).find((r) => r.name === 'HEARTBEAT');
    assert.equal(hb?.frame.sysid, 7);
  });

  it('the sysid option overrides a saved SYSID_THISMAV', () => {
    const g = new FakeGcs({ sysid: 42 }, { paramStore: new MemoryStore({ SYSID_THISMAV: 7 }) });
    assert.equal(g.rx.find((r) => r.name === 'HEARTBEAT')?.frame.sysid, 42);
    assert.equal(read(g, 'SYSID_THISMAV'), undefined, 'requests for sysid 1 are not for us');
  });

  it('paramDefaults replaces defaults and rejects unknown names', () => {
    const g = new FakeGcs({ paramDefaults: { DISARM_DELAY: 3 } });
    assert.equal(read(g, 'DISARM_DELAY')!.paramValue, 3);
    assert.deepEqual(g.core.params.changed(), {}, 'a replaced default is not a change');
    assert.throws(() => new FakeGcs({ paramDefaults: { NOPE_NOPE: 1 } }), /unknown simulator parameter/);
  });

  it('JsonParamFile round-trips values through a file, atomically', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mavmq-sim-'));
    dirs.push(dir);
    const path = join(dir, 'params.json');
    const f = new JsonParamFile(path, { debounceMs: 10 });
    assert.deepEqual(f.load(), {}, 'missing file = defaults');
    f.save({ RTL_ALT: 2000 });
    f.save({ RTL_ALT: 3000, FENCE_ENABLE: 1 });
    await f.close();
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { format: string; params: Record<string, number> };
    assert.equal(doc.format, 'mavmq-sim-params');
    assert.deepEqual(doc.params, { FENCE_ENABLE: 1, RTL_ALT: 3000 });
    const g = new FakeGcs({}, { paramStore: new JsonParamFile(path) });
    assert.equal(read(g, 'RTL_ALT')!.paramValue, 3000);
    writeFileSync(path, '{ not json');
    assert.throws(() => new JsonParamFile(path).load(), /not valid JSON/);
  });
});
