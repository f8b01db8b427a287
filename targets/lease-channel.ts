/** The runner's end of a lease holder process: lines in, nonce-framed replies out. */
import type { CommandStream } from '../drivers/ssh.js';

export class HolderChannel {
  text = '';
  stderr = '';
  closed = false;
  private cursor = 0;
  private wake: (() => void)[] = [];
  private closeHandler: (() => void) | undefined;

  constructor(
    private readonly stream: CommandStream,
    private readonly nonce: string,
  ) {
    stream.stdout.on('data', (d: Buffer) => {
      this.text += d.toString('utf8');
      this.poke();
    });
    stream.stderr.on('data', (d: Buffer) => {
      if (this.stderr.length < 8192) this.stderr += d.toString('utf8');
    });
    stream.stdout.once('close', () => {
      this.closed = true;
      this.poke();
      this.closeHandler?.();
    });
    stream.stdin.on('error', () => undefined);
  }

  /** Called once when the holder's channel closes (at once if it already has). */
  set onClose(handler: () => void) {
    this.closeHandler = handler;
    if (this.closed) handler();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = [];
    w.forEach((f) => f());
  }

  send(line: string): void {
    if (!this.closed && this.stream.stdin.writable) this.stream.stdin.write(`${line}\n`);
  }

  /**
   * The next reply `\n<nonce> <reply>\n` after the last one matched whose reply matches
   * `reply` (a word, or a pattern for the whole reply line); undefined on close or timeout.
   */
  async until(reply: string | RegExp, timeoutMs: number): Promise<RegExpExecArray | undefined> {
    const body = typeof reply === 'string' ? reply.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : reply.source;
    const re = new RegExp(`\\n${this.nonce} (?:${body})\\n`, 'g');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      re.lastIndex = this.cursor;
      const m = re.exec(this.text);
      if (m) {
        this.cursor = re.lastIndex - 1;
        return m;
      }
      const left = deadline - Date.now();
      if (this.closed || left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    await this.stream.close();
  }
}
