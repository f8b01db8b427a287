/**
 * A console log's sidecar with a wall-clock stamp at the start of every line, as grabserial
 * users time boot stages: `2026-12-02T13:40:00.123Z +12.345 <line>` (seconds since the console
 * opened). The raw log beside it keeps the bytes exactly as they came.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

export const timestampedLogPath = (logPath: string) => logPath.replace(/(\.log)?$/, '.timestamps.log');

export class LineStamper {
  private readonly fd: number;
  private readonly openedAt = Date.now();
  private atLineStart = true;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'a');
  }

  write(chunk: Buffer): void {
    let from = 0;
    while (from < chunk.length) {
      if (this.atLineStart) {
        const now = Date.now();
        writeSync(this.fd, `${new Date(now).toISOString()} +${((now - this.openedAt) / 1000).toFixed(3)} `);
        this.atLineStart = false;
      }
      const nl = chunk.indexOf(0x0a, from);
      const end = nl === -1 ? chunk.length : nl + 1;
      writeSync(this.fd, chunk, from, end - from);
      if (nl !== -1) this.atLineStart = true;
      from = end;
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}
