/**
 * The decoded text of a console, and how patterns are found in it. Pure: no I/O.
 *
 * The text is kept as a list of flat parts rather than one growing string: V8 flattens a
 * concatenated string before any slice or regex, so one big string would copy the whole
 * run (megabytes) for every chunk scanned. Parts stay small, so a scan of the recent
 * window copies only that window.
 */

/** Parts grow by appending until this size; older parts are never touched again. */
const PART_CHARS = 8192;

export class ConsoleText {
  private readonly parts: string[] = [];
  /** Absolute offset of the first char of each part. */
  private readonly starts: number[] = [];
  private total = 0;

  get length(): number {
    return this.total;
  }

  append(s: string): void {
    if (!s) return;
    const last = this.parts.length - 1;
    if (last >= 0 && this.parts[last]!.length < PART_CHARS) this.parts[last] += s;
    else {
      this.parts.push(s);
      this.starts.push(this.total);
    }
    this.total += s.length;
  }

  /** Chars [from, to) of everything received; offsets are clamped to what exists. */
  slice(from: number, to: number = this.total): string {
    const a = Math.max(0, Math.min(from, this.total));
    const b = Math.max(a, Math.min(to, this.total));
    if (a === b) return '';
    let i = this.partAt(a);
    const out: string[] = [];
    while (i < this.parts.length && this.starts[i]! < b) {
      const s = this.starts[i]!;
      out.push(this.parts[i]!.slice(Math.max(0, a - s), b - s));
      i++;
    }
    return out.join('');
  }

  private partAt(offset: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The last `lines` lines, cleaned for a human (see cleanForHumans). */
  tail(lines: number): string {
    const window = this.slice(this.total - 64 * 1024);
    const all = cleanForHumans(window).replace(/\n+$/, '').split('\n');
    return all.slice(-lines).join('\n');
  }
}

// CSI (ESC [ … final), OSC (ESC ] … BEL/ST), and two-char escapes (ESC =, ESC (B, …).
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()#][0-9A-Za-z]|\x1b[@-Z\\-_]/g;

/** Remove terminal escape sequences (colours, cursor moves, titles). */
export function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}

/** For error messages and tails: no escapes, CRLF as LF, a lone CR (line redraw) as LF. */
export function cleanForHumans(s: string): string {
  return stripAnsi(s)
    .replace(/\r+\n/g, '\n')
    .replace(/\r/g, '\n')
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A string is a literal; a RegExp is recompiled with `g` so lastIndex can start a scan. */
export function toScanner(p: RegExp | string): RegExp {
  if (typeof p === 'string') return new RegExp(escapeRegExp(p), 'g');
  return new RegExp(p.source, `${p.flags.replace(/[gy]/g, '')}g`);
}

export function describePatterns(patterns: readonly (RegExp | string)[]): string {
  return patterns.map((p) => (typeof p === 'string' ? JSON.stringify(p) : String(p))).join(' or ');
}

export interface Found {
  /** Which pattern matched (index into the list scanned). */
  patternIndex: number;
  match: RegExpExecArray;
  /** Absolute offsets in the console text. */
  start: number;
  end: number;
}

/**
 * The earliest match of any pattern at or after `scanStart`, where the search region
 * begins at `from` (so `^` without the m flag means "at `from`"). Up to `context` chars
 * before `scanStart` are given to the engine so lookbehinds and \b see real text.
 * Returned `match.index` is absolute, consistent with ConsoleText offsets.
 */
export function findEarliest(
  text: ConsoleText,
  scanners: readonly RegExp[],
  from: number,
  scanStart: number,
  context = 256,
): Found | undefined {
  const sliceStart = Math.max(from, scanStart - context);
  const region = text.slice(sliceStart);
  const offset = scanStart - sliceStart;
  let best: Found | undefined;
  scanners.forEach((re, patternIndex) => {
    re.lastIndex = offset;
    const m = re.exec(region);
    if (!m) return;
    const start = sliceStart + m.index;
    if (best && best.start <= start) return;
    m.index = start;
    best = { patternIndex, match: m, start, end: start + m[0].length };
  });
  return best;
}

/**
 * Death strings: output that means the host is gone, whatever the caller waits for.
 * Kept narrow (anchored where the kernel's own wording allows) so an innocent line such
 * as `grep BUG: x.c` is less likely to trip them; an expect can opt out of the defaults.
 */
export const defaultDeathStrings: readonly RegExp[] = [
  /Kernel panic - not syncing/,
  /Panic on CPU \d+/,
  /\bBUG: /,
  /Internal error: Oops|\bOops\b/,
  /\(XEN\).*FATAL/,
  // FreeBSD: trap_fatal()'s first line, then vpanic()'s "panic: <msg>" followed by "cpuid = N"
  // or the backtrace; the panic line may follow other output on the same line.
  /\bFatal trap \d+: [^\r\n]* while in (?:kernel|user) mode/,
  /\bpanic: [^\r\n]*\r?\n(?:cpuid = \d+|KDB: stack backtrace:)/,
];
