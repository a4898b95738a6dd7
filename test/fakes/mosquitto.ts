import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A real mosquitto broker on 127.0.0.1 and a free port, for tests. It can be stopped and started
 * again on the same port (broker restart scenarios).
 */
export { freeTcpPort as freePort } from '../../src/link/free-port.js';
import { freeTcpPort as freePort } from '../../src/link/free-port.js';

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export class Mosquitto {
  private proc: ChildProcess | null = null;
  private dir = '';
  port = 0;

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    if (this.dir === '') this.dir = await mkdtemp(join(tmpdir(), 'mavmq-mosq-'));
    const conf = join(this.dir, 'mosquitto.conf');
    await writeFile(conf, [`listener ${this.port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest none', 'set_tcp_nodelay true', ''].join('\n'));
    const proc = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(this.port))) {
      if (proc.exitCode !== null) throw new Error(`mosquitto exited ${proc.exitCode}: ${stderr} (is it installed? apt-get install -y mosquitto)`);
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${this.port}: ${stderr}`);
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = null;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }

  async dispose(): Promise<void> {
    await this.stop();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
