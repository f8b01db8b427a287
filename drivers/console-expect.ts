/**
 * The pending expects of one console: each searches the received text from its start
 * offset for its patterns and for death strings, as new text arrives, until a match, a
 * death string, its deadline, an abort, or the end of the stream.
 *
 * Cost: a new piece of text is searched together with the last `maxMatchChars` before it
 * (a match may span pieces), not from the wait's start again, so a wait that sits
 * through megabytes of boot log costs per piece, not per byte received so far.
 */
import { type ConsoleText, type Found, findEarliest } from './console-text.js';

export interface ExpectResult {
  /** `match.index` is an absolute offset in the console text. */
  match: RegExpExecArray;
  patternIndex: number;
  /** Text between the search start and the match. */
  before: string;
  /** The cursor after this match (end of the match). */
  cursor: number;
}

export interface WaitSpec {
  scanners: RegExp[];
  deaths: RegExp[];
  from: number;
  what: string;
  timeoutMs: number;
  signal?: AbortSignal;
  /** A death string does not fire when the text of its line before it matches this. */
  deathExempt?: RegExp;
}

/** What the console decides: where its cursor goes, and how each failure is worded. */
export interface WaitHooks {
  advance(to: number): void;
  isEnded(): boolean;
  panic(death: Found, what: string): Error;
  timeout(what: string, timeoutMs: number): Error;
  ended(what: string): Error;
}

interface Waiter extends WaitSpec {
  scannedEnd: number;
  lastScanAt: number;
  throttle?: NodeJS.Timeout;
  timer?: NodeJS.Timeout;
  unlisten?: () => void;
  resolve(r: ExpectResult): void;
  reject(e: Error): void;
}

// A scan over more than CHEAP chars runs at most every THROTTLE_MS while text trickles
// in small pieces; otherwise a byte-at-a-time line would search the overlap per byte.
const CHEAP_SCAN_CHARS = 2048;
const THROTTLE_MS = 10;

export class Waiters {
  private readonly waiters = new Set<Waiter>();
  private scanQueued = false;

  constructor(
    private readonly text: ConsoleText,
    private readonly hooks: WaitHooks,
    private readonly maxMatchChars: number,
  ) {}

  wait(spec: WaitSpec): Promise<ExpectResult> {
    return new Promise<ExpectResult>((resolve, reject) => {
      const w: Waiter = { ...spec, scannedEnd: spec.from, lastScanAt: 0, resolve, reject };
      this.waiters.add(w);
      this.scan(w);
      if (!this.waiters.has(w)) return;
      if (this.hooks.isEnded()) return this.settle(w, this.hooks.ended(w.what));
      const signal = spec.signal;
      if (signal) {
        const onAbort = (): void => this.settle(w, signal.reason instanceof Error ? signal.reason : new Error(`expect aborted: ${w.what}`));
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        w.unlisten = () => signal.removeEventListener('abort', onAbort);
      }
      w.timer = setTimeout(() => {
        this.scan(w);
        this.settle(w, this.hooks.timeout(w.what, w.timeoutMs));
      }, spec.timeoutMs);
    });
  }

  /** New text arrived: one scan per turn of the event loop, however many chunks came in it. */
  textArrived(): void {
    if (!this.waiters.size || this.scanQueued) return;
    this.scanQueued = true;
    setImmediate(() => {
      this.scanQueued = false;
      for (const w of this.waiters) this.maybeScan(w);
    });
  }

  /** The stream ended: what was received is still matched, then the rest fail. */
  scanAll(): void {
    for (const w of this.waiters) this.scan(w);
  }

  failAll(): void {
    for (const w of this.waiters) this.settle(w, this.hooks.ended(w.what));
  }

  private maybeScan(w: Waiter): void {
    const end = this.text.length;
    if (end <= w.scannedEnd || w.throttle) return;
    const cost = end - Math.max(w.from, w.scannedEnd - this.maxMatchChars);
    const since = performance.now() - w.lastScanAt;
    if (cost > CHEAP_SCAN_CHARS && end - w.scannedEnd < CHEAP_SCAN_CHARS && since < THROTTLE_MS) {
      w.throttle = setTimeout(() => {
        w.throttle = undefined;
        this.scan(w);
      }, THROTTLE_MS - since);
      return;
    }
    this.scan(w);
  }

  private scan(w: Waiter): void {
    if (!this.waiters.has(w)) return;
    const end = this.text.length;
    const start = w.scannedEnd === w.from ? w.from : Math.max(w.from, w.scannedEnd - this.maxMatchChars);
    w.scannedEnd = Math.max(end, w.scannedEnd);
    w.lastScanAt = performance.now();
    const hit = findEarliest(this.text, w.scanners, w.from, start);
    const death = this.findDeath(w, start);
    // A tie goes to the caller: a test that provokes a panic may expect its very words.
    if (death && (!hit || death.start < hit.start)) {
      this.hooks.advance(death.end); // reported once, not again by the next wait
      this.settle(w, this.hooks.panic(death, w.what));
      return;
    }
    if (!hit) return;
    this.hooks.advance(hit.end);
    this.settle(w, { match: hit.match, patternIndex: hit.patternIndex, before: this.text.slice(w.from, hit.start), cursor: hit.end });
  }

  private findDeath(w: Waiter, start: number): Found | undefined {
    for (let from = start; ; ) {
      const death = findEarliest(this.text, w.deaths, w.from, from);
      if (!death || !w.deathExempt) return death;
      const before = this.text.slice(Math.max(w.from, death.start - 1024), death.start);
      if (!w.deathExempt.test(before.slice(before.lastIndexOf('\n') + 1))) return death;
      from = death.end;
    }
  }

  private settle(w: Waiter, outcome: ExpectResult | Error): void {
    if (!this.waiters.delete(w)) return;
    clearTimeout(w.timer);
    clearTimeout(w.throttle);
    w.unlisten?.();
    if (outcome instanceof Error) w.reject(outcome);
    else w.resolve(outcome);
  }
}
