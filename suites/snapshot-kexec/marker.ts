/**
 * The guest's marker (its format: images/contracts/snapshot-guest.ts) and the checks on it (DOMAIN.md §4: the VM resumed where it stopped).
 * The guest's init writes a pattern into its RAM — `yes "labrig-pattern <seed>" | head -c N`,
 * the seed new for every cold boot — and prints one line per tick on its serial port:
 *   labrig-tick <n> <guest boot_id> <sha256 of the pattern>
 * The suite knows the pattern's checksum in advance; after a restore the counter must go on
 * from the last value printed before `stop`, under the same boot_id, with the same checksum.
 */
import { createHash } from 'node:crypto';
import { patternLine, TICK_LINE } from '../../images/contracts/snapshot-guest.js';

export interface Tick {
  n: number;
  bootId: string;
  sha256: string;
  /** Byte offset in the serial log just past the line's newline. */
  end: number;
}

/** The bytes `yes "labrig-pattern <seed>" | head -c <kib*1024>` writes. */
export function patternBytes(seed: string, kib: number): Buffer {
  const line = Buffer.from(patternLine(seed));
  const size = kib * 1024;
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; at += line.length) line.copy(out, at, 0, Math.min(line.length, size - at));
  return out;
}

export function expectedPatternSha256(seed: string, kib: number): string {
  return createHash('sha256').update(patternBytes(seed, kib)).digest('hex');
}

/** A seed safe on a kernel command line and in a shell word. */
export function newSeed(random: () => number = Math.random): string {
  return Array.from({ length: 12 }, () => 'abcdefghijklmnopqrstuvwxyz0123456789'[Math.floor(random() * 36)]).join('');
}

/**
 * Every complete tick line of a serial log (a line cut by `stop` counts once it is finished).
 * Read as latin1, one character per byte, so `end` is a byte offset of the file.
 */
export function parseTicks(log: Buffer): Tick[] {
  const text = log.toString('latin1');
  return [...text.matchAll(TICK_LINE)].map((m) => ({ n: Number(m[1]), bootId: m[2]!, sha256: m[3]!, end: m.index + m[0].length }));
}

export interface ContinuationInput {
  /** Ticks whose line ended before the guest was stopped. */
  before: readonly Tick[];
  /** Ticks whose line ended after the restore. */
  after: readonly Tick[];
  expectedSha256: string;
  /** How many ticks after the restore the check wants to see. */
  minAfter: number;
}

export interface ContinuationVerdict {
  ok: boolean;
  /** What was wrong, each a sentence naming the values; empty when ok. */
  problems: string[];
  lastBefore?: Tick;
  firstAfter?: Tick;
}

/**
 * The restored guest went on where it stopped: the first tick after the restore is the last
 * one before the stop plus one (not 1, not a jump), the counter keeps increasing by one, the
 * boot_id is the one the guest had before, and the pattern checksum is the known one.
 */
export function verifyContinuation(i: ContinuationInput): ContinuationVerdict {
  const problems: string[] = [];
  const lastBefore = i.before.at(-1);
  const firstAfter = i.after[0];
  if (!lastBefore) problems.push('no tick was printed before the stop: the guest was never seen running');
  if (i.after.length < i.minAfter) problems.push(`${i.after.length} tick(s) after the restore, wanted ${i.minAfter}: the guest did not run on`);
  if (lastBefore && firstAfter) {
    if (firstAfter.n !== lastBefore.n + 1)
      problems.push(
        firstAfter.n === 1
          ? `the counter started again at 1 (it was ${lastBefore.n} before the stop): the guest booted anew`
          : `the first tick after the restore is ${firstAfter.n}, expected ${lastBefore.n + 1} (last before the stop: ${lastBefore.n})`,
      );
    if (firstAfter.bootId !== lastBefore.bootId) problems.push(`the guest's boot_id changed from ${lastBefore.bootId} to ${firstAfter.bootId}`);
  }
  for (let k = 1; k < i.after.length; k++) {
    if (i.after[k]!.n !== i.after[k - 1]!.n + 1) problems.push(`the counter went from ${i.after[k - 1]!.n} to ${i.after[k]!.n} after the restore`);
  }
  const bad = [...i.before.slice(-1), ...i.after].filter((t) => t.sha256 !== i.expectedSha256);
  for (const t of bad) problems.push(`tick ${t.n}: pattern checksum ${t.sha256}, expected ${i.expectedSha256}`);
  return { ok: problems.length === 0, problems, lastBefore, firstAfter };
}

/** `info snapshots`-independent: the VM state size of `tag` from `qemu-img info --output=json`. */
export function vmStateBytes(qemuImgInfoJson: string, tag: string): number | undefined {
  const info = JSON.parse(qemuImgInfoJson) as { snapshots?: { name: string; 'vm-state-size': number }[] };
  return info.snapshots?.find((s) => s.name === tag)?.['vm-state-size'];
}
