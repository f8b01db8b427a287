/**
 * A host's console: a byte stream drained into a log file from the moment it opens,
 * whoever reads (pytest-embedded's idea: everything matchable is already evidence),
 * with expect() reading from a cursor so no byte is lost or matched twice.
 *
 * Record vs matching: the log file holds the raw bytes (after the telnet layer, if any);
 * the in-memory text is their UTF-8 decoding, CRs and ANSI escapes included, and
 * patterns match that text as it is. `stripAnsi`/`cleanForHumans` are offered for what a
 * caller does with `before`; tails in errors are cleaned for reading.
 */

import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { type ExpectResult, Waiters } from './console-expect.js';
import type { ConsoleConfig } from './console-options.js';
import { ConsoleText, cleanForHumans, defaultDeathStrings, describePatterns, type Found, toScanner } from './console-text.js';
import { LineStamper, timestampedLogPath } from './console-timestamps.js';
import { type ConsoleDeps, openTransport, type Transport } from './console-transport.js';
import { LabError, ProductError } from './errors.js';
import { type Recorder, silentRecorder } from './recorder.js';

export type { ExpectResult } from './console-expect.js';
export { cleanForHumans, defaultDeathStrings, stripAnsi } from './console-text.js';
export type { CommandStream, ConsoleDeps } from './console-transport.js';
export { describeConsole } from './console-transport.js';

export interface ConsoleOptions {
  /** Host name, used in errors. */
  name: string;
  /** Raw bytes are appended here, from open to close. */
  logPath: string;
  /** Extra death strings, on top of defaultDeathStrings. */
  failOn?: RegExp[];
  recorder?: Recorder;
  /**
   * Longest match an expect is guaranteed to find when the text arrives in pieces
   * (default 16 KiB): each new piece is searched together with this much before it.
   */
  maxMatchChars?: number;
  /**
   * How bytes become matchable text: 'utf8' (default) or 'latin1', where one char is one
   * byte, so `Buffer.from(before, 'latin1')` gives back exactly what arrived (binary output).
   */
  encoding?: 'utf8' | 'latin1';
  /**
   * A wait that times out on a console that never sent one byte is the lab's failure
   * (`[lab:console-silent]`: ser2net dead, the socket held by another client), not the
   * product's. Default true for consoles of the lab config, false for `fromStreams`.
   */
  silentIsLab?: boolean;
}

export type Pattern = RegExp | string;

export interface ExpectOptions {
  /** Default 30 s. */
  timeoutMs?: number;
  /** Death strings for this wait only, on top of the console's. */
  failOn?: RegExp[];
  /** Search from this offset instead of the cursor. */
  from?: number;
  /** Words for messages ("login prompt"); default: the patterns. */
  what?: string;
  /** false: ignore defaultDeathStrings for this wait (e.g. output of `dmesg | grep BUG:`). */
  defaultFailOn?: boolean;
  /** Report the wait as a recorder step with this title. */
  step?: string;
  /** Abandon the wait: it rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Death strings do not fire on a line whose text before them matches this: a shell's own
   * framed output (`echo 'Oops, file not found'`) is not a kernel message.
   */
  deathExempt?: RegExp;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const TAIL_LINES = 25;

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((r) => {
    timer = setTimeout(() => r(undefined), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export class Console {
  readonly logPath: string;
  /** The same bytes with a wall-clock stamp on every line (console-timestamps.ts). */
  private stamped: LineStamper | undefined;
  readonly name: string;
  /** Where the bytes come from ("serial /dev/ttyUSB0 @115200"). */
  readonly where: string;
  private readonly store = new ConsoleText();
  private readonly decoder: StringDecoder;
  private readonly silentIsLab: boolean;
  private bytesIn = 0;
  private readonly recorder: Recorder;
  private readonly failOn: RegExp[];
  private readonly waiters: Waiters;
  private readonly byteListeners = new Set<(chunk: Buffer) => void>();
  private logFd: number | undefined;
  private logError: Error | undefined;
  private pos = 0;
  private finished: Promise<void> | undefined;
  private reason: string | undefined;

  static async open(config: ConsoleConfig, opts: ConsoleOptions, deps: ConsoleDeps = {}): Promise<Console> {
    const recorder = opts.recorder ?? silentRecorder;
    return recorder.step(`console ${opts.name}: open`, { kind: config.kind, log: opts.logPath }, async () => {
      const transport = await openTransport(config, opts.name, deps);
      try {
        return new Console(transport, opts);
      } catch (e) {
        // Most likely the log file: release the port so the next attempt is not "busy".
        await transport.close().catch(() => {});
        throw new LabError(
          'lab-setup',
          `cannot record console ${transport.where} to ${opts.logPath}: ${(e as Error).message}`,
          { host: opts.name },
          { cause: e },
        );
      }
    });
  }

  /** Any byte stream as a console (an SSH channel, a test's socket). */
  static fromStreams(readable: Readable | NodeJS.ReadableStream, writable: Writable | undefined, opts: ConsoleOptions): Console {
    const close = async (): Promise<void> => {
      writable?.end();
      if (readable instanceof Readable) readable.destroy();
      else readable.removeAllListeners('data');
    };
    return new Console({ readable, writable, where: 'stream', close }, { silentIsLab: false, ...opts });
  }

  private constructor(
    private readonly transport: Transport,
    opts: ConsoleOptions,
  ) {
    this.name = opts.name;
    this.logPath = opts.logPath;
    this.where = transport.where;
    this.recorder = opts.recorder ?? silentRecorder;
    this.failOn = opts.failOn ?? [];
    this.decoder = new StringDecoder(opts.encoding ?? 'utf8');
    this.silentIsLab = opts.silentIsLab ?? true;
    this.waiters = new Waiters(
      this.store,
      {
        advance: (to) => (this.pos = Math.max(this.pos, to)),
        isEnded: () => this.closed,
        panic: (death, what) => this.panicError(death, what),
        timeout: (what, ms) =>
          this.silentIsLab && this.bytesIn === 0
            ? new LabError(
                'console-silent',
                `waited ${ms / 1000}s for ${what} on ${this.where}, and not one byte has arrived since it opened: the console is dead or another client holds it`,
                this.context(),
              )
            : new ProductError('timeout', `waited ${ms / 1000}s for ${what} on ${this.where}`, this.context()),
        ended: (what) => new LabError('unreachable', `console closed while waiting for ${what} (${this.reason})`, this.context()),
      },
      opts.maxMatchChars ?? 16 * 1024,
    );
    mkdirSync(dirname(this.logPath), { recursive: true });
    this.logFd = openSync(this.logPath, 'a');
    this.stamped = new LineStamper(timestampedLogPath(this.logPath));
    const { readable, writable } = transport;
    readable.on('data', (chunk: Buffer | string) => this.ingest(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    readable.once('end', () => void this.finish('the stream ended', false));
    readable.once('close', (err?: Error) => void this.finish(err ? `the stream closed: ${err.message}` : 'the stream closed', false));
    readable.on('error', (e: Error) => void this.finish(`stream error: ${e.message}`, false));
    // A write to a peer that is gone fails in write()'s callback; this only keeps the
    // stream's 'error' event from crashing the process.
    if (writable && (writable as unknown) !== readable) writable.on('error', () => {});
  }

  get cursor(): number {
    return this.pos;
  }

  get received(): number {
    return this.store.length;
  }

  /** True once close() was called or the stream ended. */
  get closed(): boolean {
    return this.finished !== undefined;
  }

  /** Why the console ended (undefined while open). */
  get endReason(): string | undefined {
    return this.reason;
  }

  /** Move the cursor (default: past everything received so far), e.g. to resynchronise. */
  seek(to: number = this.store.length): void {
    this.pos = Math.max(0, Math.min(to, this.store.length));
  }

  /** Raw bytes as they arrive (for an interactive attach); returns an unsubscribe. */
  onBytes(listener: (chunk: Buffer) => void): () => void {
    this.byteListeners.add(listener);
    return () => this.byteListeners.delete(listener);
  }

  text(from: number, to?: number): string {
    return this.store.slice(from, to);
  }

  /** The last lines, without ANSI escapes and with CRLF as LF: for people, not matching. */
  tail(lines = TAIL_LINES): string {
    return this.store.tail(lines);
  }

  async write(data: string | Buffer): Promise<void> {
    const w = this.transport.writable;
    if (!w) throw new LabError('unreachable', `console ${this.where} is read-only`, { host: this.name });
    if (this.closed) throw new LabError('unreachable', `console closed (${this.reason}); cannot write`, this.context());
    await new Promise<void>((resolve, reject) =>
      w.write(data, (err) =>
        err ? reject(new LabError('unreachable', `console write failed: ${err.message}`, this.context(), { cause: err })) : resolve(),
      ),
    );
  }

  /**
   * Waits for the earliest match of any pattern (a string is a literal) from the cursor
   * (or `from`), and moves the cursor to its end; the cursor never moves backwards, so a
   * watcher with its own `from` does not rewind the main reader. Meanwhile a death string
   * ends the wait at once (ProductError 'panic'); the deadline gives ProductError
   * 'timeout'; the stream ending gives LabError 'unreachable'. Each names the log file
   * and carries the tail.
   */
  expect(patterns: Pattern | Pattern[], opts: ExpectOptions = {}): Promise<ExpectResult> {
    const list = Array.isArray(patterns) ? patterns : [patterns];
    if (list.length === 0) throw new Error('expect: no pattern given');
    const run = (): Promise<ExpectResult> => this.wait(list, opts);
    return opts.step ? this.recorder.step(opts.step, { console: this.name, timeoutMs: opts.timeoutMs }, run) : run();
  }

  private wait(list: Pattern[], opts: ExpectOptions): Promise<ExpectResult> {
    const deaths = [...(opts.defaultFailOn === false ? [] : defaultDeathStrings), ...this.failOn, ...(opts.failOn ?? [])];
    return this.waiters.wait({
      scanners: list.map(toScanner),
      deaths: deaths.map(toScanner),
      from: Math.max(0, opts.from ?? this.pos),
      what: opts.what ?? describePatterns(list),
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      signal: opts.signal,
      deathExempt: opts.deathExempt,
    });
  }

  private ingest(chunk: Buffer): void {
    if (this.finished) return;
    this.bytesIn += chunk.length;
    this.appendLog(chunk);
    this.store.append(this.decoder.write(chunk));
    for (const l of this.byteListeners) l(chunk);
    this.waiters.textArrived();
  }

  private appendLog(chunk: Buffer): void {
    if (this.logFd === undefined) return;
    // Synchronous, so the file holds every byte before any expect can see it.
    try {
      let off = 0;
      while (off < chunk.length) off += writeSync(this.logFd, chunk, off);
      this.stamped?.write(chunk);
    } catch (e) {
      if (!this.logError) this.recorder.log(`console ${this.name}: cannot write ${this.logPath}: ${(e as Error).message}`);
      this.logError = e as Error;
    }
  }

  private panicError(death: Found, what: string): ProductError {
    const line = this.lineAround(death.start, death.end);
    this.recorder.log(`console ${this.name}: death string: ${line}`);
    return new ProductError('panic', `"${line}" while waiting for ${what}`, this.context());
  }

  private lineAround(start: number, end: number): string {
    const before = this.store.slice(start - 300, start);
    const after = this.store.slice(end, end + 300);
    const head = before.slice(Math.max(before.lastIndexOf('\n'), before.lastIndexOf('\r')) + 1);
    const rest = after.split(/[\r\n]/, 1)[0] ?? '';
    return cleanForHumans(head + this.store.slice(start, end) + rest).trim();
  }

  private context(): { host: string; evidence: string; tail: string } {
    return { host: this.name, evidence: this.logPath, tail: this.tail() };
  }

  /** Flushes and closes the log file; pending expects fail with a LabError. */
  close(): Promise<void> {
    return this.finish('closed by the harness', true);
  }

  private finish(why: string, byUs: boolean): Promise<void> {
    if (this.finished) return this.finished;
    this.finished = (async () => {
      this.reason = why;
      // Whatever was received is still matched before pending waits are failed.
      this.store.append(this.decoder.end());
      this.waiters.scanAll();
      if (!byUs && this.transport.endReason) {
        const detail = await withDeadline(this.transport.endReason(), 500);
        if (detail) this.reason = `${why}: ${detail}`;
      }
      this.waiters.failAll();
      this.recorder.log(`console ${this.name}: ${this.reason}; ${this.store.length} chars in ${this.logPath}`);
      await withDeadline(
        this.transport.close().catch(() => {}),
        5000,
      );
      if (this.logFd !== undefined) closeSync(this.logFd);
      this.logFd = undefined;
      this.stamped?.close();
      this.stamped = undefined;
    })();
    return this.finished;
  }
}
