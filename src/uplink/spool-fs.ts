import { open, mkdir, readdir, unlink, rename, stat, type FileHandle } from 'node:fs/promises';

/**
 * The few file operations the spool needs, behind an interface so tests can inject faults (a full
 * disk, failing fsync, partial writes). Positions are explicit (pwrite/pread); nothing relies on
 * O_APPEND or on the file offset.
 */
export interface SpoolFile {
  /** Write all of buf at position; may throw (ENOSPC, EIO) after writing part of it. */
  write(buf: Uint8Array, position: number): Promise<void>;
  /** Read up to length bytes at position into buf[offset..]; returns the count (0 at EOF). */
  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  datasync(): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export interface SpoolFs {
  mkdirp(dir: string): Promise<void>;
  readdir(dir: string): Promise<string[]>;
  /** 'create': create or truncate, read-write. 'rw': existing, read-write. 'r': existing, read-only. */
  open(path: string, mode: 'create' | 'rw' | 'r'): Promise<SpoolFile>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  size(path: string): Promise<number>;
  /** fsync a directory, so that created names survive a power cut. */
  syncDir(dir: string): Promise<void>;
}

class NodeFile implements SpoolFile {
  constructor(private readonly fh: FileHandle) {}
  async write(buf: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await this.fh.write(buf, done, buf.length - done, position + done);
      if (bytesWritten <= 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
      done += bytesWritten;
    }
  }
  async read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return (await this.fh.read(buf, offset, length, position)).bytesRead;
  }
  datasync(): Promise<void> {
    return this.fh.datasync();
  }
  truncate(length: number): Promise<void> {
    return this.fh.truncate(length);
  }
  async size(): Promise<number> {
    return (await this.fh.stat()).size;
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}

export const nodeSpoolFs: SpoolFs = {
  async mkdirp(dir) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  },
  readdir: (dir) => readdir(dir),
  async open(path, mode) {
    return new NodeFile(await open(path, mode === 'create' ? 'w+' : mode === 'rw' ? 'r+' : 'r', 0o600));
  },
  unlink: (path) => unlink(path),
  rename: (from, to) => rename(from, to),
  async size(path) {
    return (await stat(path)).size;
  },
  async syncDir(dir) {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
};
