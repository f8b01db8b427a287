/**
 * QMP client: greeting, qmp_capabilities, commands matched by id, events kept and awaitable,
 * HMP through human-monitor-command. It runs over any connected byte stream, so the same
 * client drives a local unix socket and a socket forwarded over SSH from a remote host.
 */
import { createConnection } from 'node:net';
import type { Duplex } from 'node:stream';
import { LabError } from './errors.js';
import { type Recorder, silentRecorder } from './recorder.js';

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

/** A command QEMU refused: `class` and `desc` are QMP's own. */
export class QmpError extends Error {
  override readonly name = 'QmpError';
  constructor(
    readonly command: string,
    readonly qmpClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command} failed: ${qmpClass}: ${desc}`);
  }
}

/** HMP answers errors as plain text inside a QMP success; these lines mark one. */
export const hmpErrorPatterns: readonly RegExp[] = [
  /^Error: /m,
  /^unknown command: /m,
  /^Migration is disabled/m,
  /^Parameter '[^']*' (is missing|expects)/m,
  /^Device '[^']*' not found/m,
];

export interface QmpOptions {
  /** How long to wait for the greeting and capabilities negotiation. */
  timeoutMs?: number;
  recorder?: Recorder;
  /** Names the connection in messages, e.g. the host. */
  name?: string;
}

export interface ExecuteOptions {
  timeoutMs?: number;
}

type QmpMessage = Record<string, unknown>;

/** Splits the stream into QMP messages (one JSON object per CRLF-terminated line). */
export class QmpFramer {
  private buffer = '';
  push(chunk: Buffer | string): QmpMessage[] {
    this.buffer += chunk.toString();
    const out: QmpMessage[] = [];
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (!line) continue;
      const parsed: unknown = JSON.parse(line);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) out.push(parsed as QmpMessage);
    }
    return out;
  }
}

interface Pending {
  command: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

interface EventWaiter {
  name: string;
  match?: (e: QmpEvent) => boolean;
  resolve(e: QmpEvent): void;
}

export class Qmp {
  /** Every asynchronous event received, in order. */
  readonly events: QmpEvent[] = [];
  greeting!: QmpGreeting;
  private readonly consumed = new Set<QmpEvent>();
  private readonly pending = new Map<string, Pending>();
  private readonly waiters = new Set<EventWaiter>();
  private readonly framer = new QmpFramer();
  private nextId = 1;
  private closedError: Error | undefined;
  private greetingWaiter: ((g: QmpGreeting) => void) | undefined;
  private readonly closedPromise: Promise<void>;

  private constructor(
    private readonly stream: Duplex,
    private readonly label: string,
    private readonly recorder: Recorder,
  ) {
    this.closedPromise = new Promise((resolve) => stream.once('close', () => resolve()));
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (e) => this.fail(new LabError('unreachable', `QMP ${label}: ${e.message}`, {}, { cause: e })));
    stream.on('close', () => this.fail(new LabError('unreachable', `QMP ${label}: connection closed`)));
  }

  /** Connects to a unix socket path, or takes over an already connected stream. */
  static async connect(target: string | Duplex, opts: QmpOptions = {}): Promise<Qmp> {
    const label = opts.name ?? (typeof target === 'string' ? target : 'stream');
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const stream = typeof target === 'string' ? await openUnix(target, timeoutMs) : target;
    const qmp = new Qmp(stream, label, opts.recorder ?? silentRecorder);
    try {
      qmp.greeting = await withDeadline(
        new Promise<QmpGreeting>((resolve, reject) => {
          qmp.greetingWaiter = resolve;
          qmp.closedPromise.then(() => reject(qmp.closedError));
        }),
        timeoutMs,
        `QMP ${label}: no greeting`,
      );
      await qmp.execute('qmp_capabilities', undefined, { timeoutMs });
    } catch (e) {
      stream.destroy();
      throw e;
    }
    return qmp;
  }

  get isClosed(): boolean {
    return this.closedError !== undefined;
  }

  /** Runs one command; resolves with its `return`, rejects with QmpError on `error`. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: ExecuteOptions = {}): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = `labrig-${this.nextId++}`;
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const result = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new LabError('lab-timeout', `QMP ${this.label}: no answer to ${command} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve, reject, timer });
    });
    const message = JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id });
    this.stream.write(`${message}\r\n`);
    return result as Promise<T>;
  }

  /** An HMP command line; throws when the text answer is an error. */
  async hmp(commandLine: string, opts: ExecuteOptions & { errorPatterns?: readonly RegExp[] } = {}): Promise<string> {
    return this.recorder.step(`qmp hmp: ${commandLine}`, { target: this.label }, async () => {
      const out = await this.execute<string>('human-monitor-command', { 'command-line': commandLine }, opts);
      const text = typeof out === 'string' ? out : '';
      for (const pattern of opts.errorPatterns ?? hmpErrorPatterns) {
        if (pattern.test(text)) throw new QmpError('human-monitor-command', 'HmpError', `${commandLine}: ${text.trim()}`);
      }
      return text;
    });
  }

  /**
   * The first event named `name` not yet returned by an earlier wait, whether it arrived
   * before this call or after — so an event that races the command causing it is not lost.
   */
  waitEvent(name: string, opts: { timeoutMs: number; match?: (e: QmpEvent) => boolean }): Promise<QmpEvent> {
    const hit = this.events.find((e) => e.event === name && !this.consumed.has(e) && (!opts.match || opts.match(e)));
    if (hit) {
      this.consumed.add(hit);
      return Promise.resolve(hit);
    }
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const waiter: EventWaiter = {
        name,
        match: opts.match,
        resolve: (e) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        const seen = this.events.map((e) => e.event).join(', ') || 'none';
        reject(new LabError('lab-timeout', `QMP ${this.label}: no ${name} event within ${opts.timeoutMs} ms (events seen: ${seen})`));
      }, opts.timeoutMs);
      this.waiters.add(waiter);
      this.closedPromise.then(() => {
        if (!this.waiters.has(waiter)) return;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        reject(this.closedError);
      });
    });
  }

  /** Resolves when the connection is gone (after close() or when QEMU exits). */
  closed(): Promise<void> {
    return this.closedPromise;
  }

  async close(): Promise<void> {
    if (this.stream.destroyed) return this.closedPromise;
    this.stream.end();
    const timer = setTimeout(() => this.stream.destroy(), 2000);
    await this.closedPromise;
    clearTimeout(timer);
  }

  private onData(chunk: Buffer): void {
    let messages: QmpMessage[];
    try {
      messages = this.framer.push(chunk);
    } catch (e) {
      this.fail(new LabError('unreachable', `QMP ${this.label}: malformed message: ${(e as Error).message}`));
      this.stream.destroy();
      return;
    }
    for (const m of messages) this.dispatch(m);
  }

  private dispatch(m: QmpMessage): void {
    if ('QMP' in m) {
      this.greetingWaiter?.(m.QMP as QmpGreeting);
      this.greetingWaiter = undefined;
      return;
    }
    if (typeof m.event === 'string') {
      const e: QmpEvent = {
        event: m.event,
        data: (m.data as Record<string, unknown> | undefined) ?? {},
        timestamp: (m.timestamp as QmpEvent['timestamp'] | undefined) ?? { seconds: 0, microseconds: 0 },
      };
      this.events.push(e);
      this.recorder.log(`qmp ${this.label}: event ${e.event} ${JSON.stringify(e.data)}`);
      for (const w of this.waiters) {
        if (w.name === e.event && (!w.match || w.match(e))) {
          this.consumed.add(e);
          w.resolve(e);
          break;
        }
      }
      return;
    }
    const id = typeof m.id === 'string' ? m.id : undefined;
    const p = id ? this.pending.get(id) : undefined;
    if (!p || !id) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ('error' in m) {
      const err = (m.error ?? {}) as { class?: string; desc?: string };
      p.reject(new QmpError(p.command, err.class ?? 'GenericError', err.desc ?? 'no description'));
    } else {
      p.resolve(m.return);
    }
  }

  private fail(error: Error): void {
    if (this.closedError) return;
    this.closedError = error;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new LabError('unreachable', `QMP ${this.label}: connection lost before ${p.command} answered`, {}, { cause: error }));
      this.pending.delete(id);
    }
  }
}

function openUnix(path: string, timeoutMs: number): Promise<Duplex> {
  return withDeadline(
    new Promise<Duplex>((resolve, reject) => {
      const s = createConnection({ path }, () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', (e) => reject(new LabError('unreachable', `QMP socket ${path}: ${e.message}`, {}, { cause: e })));
    }),
    timeoutMs,
    `QMP socket ${path}: connect`,
  );
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LabError('lab-timeout', `${what} within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
