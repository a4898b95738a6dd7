/**
 * A real pseudo-terminal pair made by socat, standing in for a USB serial cable:
 *   socat -d -d pty,raw,echo=0,link=<dir>/a pty,raw,echo=0,link=<dir>/b
 * Bytes written to one end come out of the other. kill() is a USB unplug (socat removes both
 * links, the ptys hang up); start() again is the replug (same link paths, new /dev/pts/N).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function socatAvailable(): boolean {
  return spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;
}

const live = new Set<ChildProcess>();
// A failed test must not leave socat behind holding ptys.
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export class PtyPair {
  readonly dir: string;
  readonly pathA: string;
  readonly pathB: string;
  private child: ChildProcess | null = null;
  private readonly ownsDir: boolean;

  /** Links are created in `dir` (a fresh temp dir when omitted). Call start() to create the ptys. */
  constructor(dir?: string) {
    this.ownsDir = dir === undefined;
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'mavmq-pty-'));
    this.pathA = join(this.dir, 'a');
    this.pathB = join(this.dir, 'b');
  }

  get running(): boolean {
    return this.child !== null;
  }

  /**
   * Spawns socat and resolves once both links exist and socat reports its transfer loop running
   * (by then it has applied raw/echo=0 to both ptys, so an early opener cannot race its termios).
   */
  async start(timeoutMs = 5_000): Promise<void> {
    if (this.child !== null) throw new Error('pty pair already running');
    const child = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${this.pathA}`, `pty,raw,echo=0,link=${this.pathB}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    live.add(child);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    let exited = false;
    child.once('exit', () => {
      exited = true;
      live.delete(child);
    });
    const deadline = Date.now() + timeoutMs;
    while (!(stderr.includes('starting data transfer loop') && existsSync(this.pathA) && existsSync(this.pathB))) {
      if (exited) {
        this.child = null;
        throw new Error(`socat exited early: ${stderr}`);
      }
      if (Date.now() > deadline) {
        await this.kill();
        throw new Error(`socat links did not appear within ${timeoutMs} ms: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** "Unplugs": terminates socat, waits for it to exit, and makes sure both links are gone. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child !== null && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM'); // SIGTERM lets socat unlink its links itself
      const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.pathA, { force: true });
    rmSync(this.pathB, { force: true });
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  /** kill() and remove the temp dir (if this pair created it). */
  async dispose(): Promise<void> {
    await this.kill();
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }
}
