/**
 * `npm run bench`: speed and memory targets, measured in one run on this machine and printed as
 * figures and ratios. A benchmark, not a test: shared machines are noisy, so nothing here fails
 * CI; it reports whether each target was met.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { benchFramer } from './bench/framer.js';
import { benchRouting } from './bench/routing.js';
import { benchStartup } from './bench/startup.js';
import { benchRelay, formatRelayBench } from './bench/relay.js';
import { benchSpool } from './bench/spool.js';

interface Row {
  what: string;
  value: string;
  target: string;
  met: boolean | null;
}

const rows: Row[] = [];
function row(what: string, value: string, target = '', met: boolean | null = null): void {
  rows.push({ what, value, target, met });
  console.log(`  ${what.padEnd(48)} ${value.padStart(16)}  ${target ? `${met ? 'MET ' : 'MISS'} (${target})` : ''}`);
}
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const only = process.argv.slice(2);
const want = (name: string): boolean => only.length === 0 || only.includes(name);

if (!existsSync('dist/cli/run.js') || process.env['MAVMQ_BENCH_NO_BUILD'] !== '1') {
  // The daemons are measured as users run them: compiled JavaScript, not tsx.
  const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
}

console.log(`mavmq benchmark — node ${process.version}, ${new Date().toISOString()}`);

if (want('framer')) {
  console.log('\nFramer (bytes -> frames, CRC checked), typical telemetry mix:');
  const f = await benchFramer();
  row('mean frame size (bytes)', fmt(f.meanFrameBytes, 1));
  row('mavmq framer frames/s', fmt(f.oursFramesPerS), '>= 1,000,000', f.oursFramesPerS >= 1e6);
  row('mavmq framer MB/s', fmt(f.oursMBPerS, 1));
  row('node-mavlink MavLinkPacketSplitter frames/s', fmt(f.splitterFramesPerS));
  row('ratio mavmq / node-mavlink splitter', `${fmt(f.ratio, 1)}x`, '>= 5x', f.ratio >= 5);
}

if (want('routing')) {
  console.log('\nRouting: pty (921600-baud pace) -> mavmq air (compiled) -> local UDP endpoint:');
  const r = await benchRouting({ seconds: 10 });
  row('frames sent / received', `${r.framesSent} / ${r.framesReceived}`);
  row('frames lost', fmt(r.framesLost), '0', r.framesLost === 0);
  row('pace (frames/s)', fmt(r.framesPerS));
  row('CPU per frame (us)', fmt(r.cpuUsPerFrame, 1), '< 20 us (mavlink-router: 34-60 us here)', r.cpuUsPerFrame < 20);
  row('CPU (% of one core)', fmt(r.cpuPercentOfCore, 1), '< 5%', r.cpuPercentOfCore < 5);
  row('peak RSS (MB)', fmt(r.peakRssMb, 1), '< 80 MB', r.peakRssMb < 80);
}

if (want('startup')) {
  console.log('\nStartup of the compiled air side (autopilot already streaming):');
  const s = await benchStartup();
  row('spawn -> first frame relayed (ms, median of 5)', fmt(s.firstFrameMs), '< 1,500 ms', s.firstFrameMs < 1500);
  row('RSS at idle (MB)', fmt(s.idleRssMb, 1));
}

if (want('relay')) {
  console.log('\nEncrypted relay: pty -> mavmq air -> mosquitto (loopback, set_tcp_nodelay) -> mavmq ground -> UDP GCS:');
  const r = await benchRelay({ brokerTcpNoDelay: true, ceilingStepSeconds: 0 });
  console.log(formatRelayBench(r).split('\n').map((l) => `    ${l}`).join('\n'));
  const t = r.targets;
  row('air CPU per frame / plain routing path', t.airCpuRatio.value === null ? 'n/a' : `${fmt(t.airCpuRatio.value, 2)}x`, `<= ${t.airCpuRatio.max}x`, t.airCpuRatio.met);
  row('wire overhead at default batching (%)', fmt(t.overheadPercent.value, 1), `< ${t.overheadPercent.max}%`, t.overheadPercent.met);
  row('p99 latency at half the 921600 ceiling (ms)', fmt(t.p99LatencyMs.value, 1), `< ${t.p99LatencyMs.max} ms`, t.p99LatencyMs.met);
  row('frames lost (throughput phase)', fmt(r.throughput.framesLost), '0', r.throughput.framesLost === 0);
}

if (want('spool')) {
  console.log('\nStore-and-forward spool (~1 KB batches, group commit):');
  const sp = await benchSpool();
  for (const res of sp.results) {
    row(`${res.design}: write batches/s`, fmt(res.writeBatchesPerS));
    if (res.drainBatchesPerS !== null) row(`${res.design}: drain batches/s`, fmt(res.drainBatchesPerS));
    row(`${res.design}: disk bytes per telemetry byte`, fmt(res.diskPerTelemetryByte, 3));
  }
  row('link budget cost per frame, off / on (ns)', `${fmt(sp.budgetNsPerFrameOff, 1)} / ${fmt(sp.budgetNsPerFrameOn, 1)}`);
}

const missed = rows.filter((r) => r.met === false);
console.log(`\n${rows.filter((r) => r.met === true).length} targets met, ${missed.length} missed${missed.length ? `: ${missed.map((m) => m.what).join('; ')}` : ''}.`);
