/**
 * Micro-benchmark of the two AEADs node:crypto offers us, at the payload sizes the relay sees
 * (a typical batch of MAVLink frames is a few hundred bytes; a full batch about 1 KB).
 *
 *   node --import tsx scripts/bench-aead.ts [--ms=300] [--rounds=9]
 *
 * To approximate a CPU without AES instructions on x86, mask AES-NI and PCLMULQDQ from OpenSSL:
 *   OPENSSL_ia32cap='~0x200000200000000' node --import tsx scripts/bench-aead.ts
 *
 * Each op = one full seal (createCipheriv + setAAD + update + final + getAuthTag) or one full open,
 * which is exactly what src/crypto/envelope.ts does per envelope, so per-call setup cost counts.
 * Run it on the target hardware: the decision recorded in docs/PROTOCOL.md depends on the CPU
 * (AES is fast only with hardware AES, which the Raspberry Pi 4's Cortex-A72 lacks).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { arch, cpus } from 'node:os';

type Algorithm = 'chacha20-poly1305' | 'aes-256-gcm';

const TAG_BYTES = 16;

function seal(alg: Algorithm, key: Buffer, nonce: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
  // Two literal calls: node's typings pick the AEAD overload only for a literal algorithm.
  const c =
    alg === 'aes-256-gcm'
      ? createCipheriv(alg, key, nonce, { authTagLength: TAG_BYTES })
      : createCipheriv(alg, key, nonce, { authTagLength: TAG_BYTES });
  c.setAAD(aad, { plaintextLength: plaintext.length });
  const ct = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  return ct;
}

function open(alg: Algorithm, key: Buffer, nonce: Buffer, aad: Buffer, sealed: Buffer): Buffer {
  const ctLen = sealed.length - TAG_BYTES;
  const d =
    alg === 'aes-256-gcm'
      ? createDecipheriv(alg, key, nonce, { authTagLength: TAG_BYTES })
      : createDecipheriv(alg, key, nonce, { authTagLength: TAG_BYTES });
  d.setAAD(aad, { plaintextLength: ctLen });
  d.setAuthTag(sealed.subarray(ctLen));
  return Buffer.concat([d.update(sealed.subarray(0, ctLen)), d.final()]);
}

/** Runs fn repeatedly for about durationMs and returns operations per second. */
function measureOpsPerSec(durationMs: number, fn: () => void): number {
  // Warm-up so JIT and OpenSSL's lazy init are not in the numbers.
  for (let i = 0; i < 1000; i++) fn();
  const startNs = process.hrtime.bigint();
  const budgetNs = BigInt(durationMs) * 1_000_000n;
  let ops = 0;
  let elapsedNs = 0n;
  while (elapsedNs < budgetNs) {
    for (let i = 0; i < 500; i++) fn();
    ops += 500;
    elapsedNs = process.hrtime.bigint() - startNs;
  }
  return ops / (Number(elapsedNs) / 1e9);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

function main(): void {
  const arg = (name: string, dflt: number): number => {
    const a = process.argv.find((x) => x.startsWith(`--${name}=`));
    return a ? Number(a.slice(name.length + 3)) : dflt;
  };
  const roundMs = arg('ms', 300);
  const rounds = arg('rounds', 9);
  const key = randomBytes(32);
  const nonce = Buffer.alloc(12);
  const aad = randomBytes(64); // about the size of our AAD (context + topic + 18-byte header)
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log(`node ${process.version} (OpenSSL ${process.versions.openssl}) ${arch()} ${cpu}`);
  console.log(`median of ${rounds} interleaved rounds of ${roundMs} ms per case (interleaving spreads background load evenly)`);
  const cases = (['chacha20-poly1305', 'aes-256-gcm'] as const).flatMap((alg) =>
    [300, 1024].map((sizeBytes) => {
      const plaintext = randomBytes(sizeBytes);
      const sealed = seal(alg, key, nonce, aad, plaintext);
      if (!open(alg, key, nonce, aad, sealed).equals(plaintext)) throw new Error(`${alg} round trip failed`);
      return { alg, sizeBytes, plaintext, sealed, sealOps: [] as number[], openOps: [] as number[] };
    }),
  );
  for (let r = 0; r < rounds; r++) {
    for (const c of cases) {
      c.sealOps.push(measureOpsPerSec(roundMs, () => void seal(c.alg, key, nonce, aad, c.plaintext)));
      c.openOps.push(measureOpsPerSec(roundMs, () => void open(c.alg, key, nonce, aad, c.sealed)));
    }
  }
  console.log('algorithm            payload  seal ops/s  open ops/s  seal MB/s');
  for (const c of cases) {
    const sealOps = median(c.sealOps);
    const openOps = median(c.openOps);
    console.log(
      `${c.alg.padEnd(20)} ${String(c.sizeBytes).padStart(5)} B  ${Math.round(sealOps).toString().padStart(10)}  ${Math.round(openOps).toString().padStart(10)}  ${((sealOps * c.sizeBytes) / 1e6).toFixed(1).padStart(9)}`,
    );
  }
}

main();
