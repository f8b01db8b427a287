/** The runner's end of a lease holder process: lines in, nonce-framed replies out; and the break. */
import { randomBytes } from 'node:crypto';
import { LabError } from '../drivers/errors.js';
import { type CommandStream, type SshSession, shellQuote } from '../drivers/ssh.js';
import { type LeaseState, parseState, printable } from './lease-protocol.js';
import { BREAK_SCRIPT, HOLDER_BODY, HOLDER_SCRIPT } from './lease-scripts.js';

/** What the probe needs of the lease's options. */
interface Where {
  path: string;
  runId: string;
  reservePath?: string;
}

const command = (script: string, name: string, args: string[]) => ['sh', '-c', script, name, ...args].map(shellQuote).join(' ');

export const defaultReservePath = (path: string) => `/var/lib/labrig/${path.split('/').filter(Boolean).pop() ?? 'labrig.lease'}.reserved`;

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

export interface Probe {
  ch: HolderChannel;
  state: LeaseState;
}

/** Opens a holder process and reads the lease's state; the caller answers take or leave. */
export async function probe(ssh: SshSession, o: Where, mode: 'acquired' | 'reclaimed', token: string, who: string): Promise<Probe> {
  const nonce = randomBytes(16).toString('hex');
  const info = `{"holder":${JSON.stringify(who)},"runId":${JSON.stringify(o.runId)},"token":${JSON.stringify(token)},`;
  const ch = new HolderChannel(
    await ssh.openCommand(
      command(HOLDER_SCRIPT, 'labrig-lease', [mode, o.path, o.reservePath ?? defaultReservePath(o.path), info, token, HOLDER_BODY]),
    ),
    nonce,
  );
  ch.send(nonce);
  const asked = await ch.until('ask', 30_000);
  const state = asked ? parseState(ch.text, nonce) : undefined;
  if (!state) {
    await ch.close();
    throw new LabError(
      'lab-setup',
      `cannot read the lease at ${o.path}: ${printable(ch.stderr.trim() || ch.text.trim() || 'no answer within 30 s', 400)}`,
      { host: ssh.host },
    );
  }
  return { ch, state };
}

/** Answers take; resolves to the holder's pid once it holds the lease. */
export async function take(ssh: SshSession, o: Where, p: Probe): Promise<number> {
  p.ch.send('take');
  const m = await p.ch.until(/taken (\d+)/, 30_000);
  if (!m) {
    await p.ch.close();
    throw new LabError(
      'lab-setup',
      `the lease holder at ${o.path} did not take the lease: ${printable(p.ch.stderr.trim() || 'no answer', 400)}`,
      { host: ssh.host },
    );
  }
  return Number(m[1]);
}

export async function leave(p: Probe): Promise<void> {
  p.ch.send('leave');
  await p.ch.close();
}

/** Kills `pid` only if it is the process holding the lease's lock (checked on the host); logs `line`. */
export async function breakHolder(ssh: SshSession, o: Where, pid: number, line: string): Promise<boolean> {
  if (!Number.isSafeInteger(pid) || pid <= 1) return false;
  const r = await ssh.exec(command(BREAK_SCRIPT, 'labrig-lease-break', [String(pid), o.path, line]), { timeoutMs: 10_000 });
  return r.code === 0;
}
