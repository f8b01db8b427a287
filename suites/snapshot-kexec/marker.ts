/**
 * The guest's marker and the checks on it (DOMAIN.md §4: the VM resumed where it stopped).
 * The guest's workload (mem-program.ts) fills a region of its RAM with a pattern derived from
 * a seed new for every cold boot, then prints on its serial port, once a second:
 *   labrig-tick <n> <guest boot_id>
 * and, after each full pass over the region comparing every word with the pattern:
 *   labrig-verify <pass> <first tick> <last tick> ok|mismatch <bad words> <first bad offset|->
 * After a restore the counter must go on from the last value printed before `stop`, under the
 * same boot_id, and a pass that began after the restore must find every word intact.
 */
import { patternKey } from './mem-program.js';

export interface Tick {
  n: number;
  bootId: string;
  /** Byte offset in the serial log just past the line's newline. */
  end: number;
}

/** One full pass of the guest's verifier over the pattern region. */
export interface VerifyPass {
  pass: number;
  /** The tick during which the pass began and the one during which it ended. */
  fromTick: number;
  toTick: number;
  ok: boolean;
  badWords: number;
  firstBadOffset?: number;
  end: number;
}

export interface PatternInfo {
  mib: number;
  /** K, the pattern's key, in decimal: FNV-1a 64 of the seed. */
  key: string;
  end: number;
}

export interface Marker {
  pattern?: PatternInfo;
  ticks: Tick[];
  passes: VerifyPass[];
}

/** A seed safe on a kernel command line and in a shell word. */
export function newSeed(random: () => number = Math.random): string {
  return Array.from({ length: 12 }, () => 'abcdefghijklmnopqrstuvwxyz0123456789'[Math.floor(random() * 36)]).join('');
}

export function expectedKey(seed: string): string {
  return patternKey(seed).toString();
}

const LINE = /labrig-(tick|verify|pattern) ([^\r\n]*)\r?\n/g;
const TICK = /^(\d+) ([0-9a-f-]{36})$/;
const VERIFY = /^(\d+) (\d+) (\d+) (ok|mismatch) (\d+) (\d+|-)$/;
const PATTERN = /^(\d+) (\d+) (\d+)$/;

/**
 * Every complete marker line of a serial log (a line cut by `stop` counts once it is finished).
 * Read as latin1, one character per byte, so `end` is a byte offset of the file.
 */
export function parseMarker(log: Buffer, fromByte = 0): Marker {
  const out: Marker = { ticks: [], passes: [] };
  for (const m of log.toString('latin1').matchAll(LINE)) {
    const end = m.index + m[0].length;
    if (end <= fromByte) continue;
    const f = m[2]!;
    if (m[1] === 'tick') {
      const t = TICK.exec(f);
      if (t) out.ticks.push({ n: Number(t[1]), bootId: t[2]!, end });
    } else if (m[1] === 'verify') {
      const v = VERIFY.exec(f);
      if (v)
        out.passes.push({
          pass: Number(v[1]),
          fromTick: Number(v[2]),
          toTick: Number(v[3]),
          ok: v[4] === 'ok',
          badWords: Number(v[5]),
          firstBadOffset: v[6] === '-' ? undefined : Number(v[6]),
          end,
        });
    } else {
      const p = PATTERN.exec(f);
      if (p) out.pattern ??= { mib: Number(p[1]), key: p[2]!, end };
    }
  }
  return out;
}

export const parseTicks = (log: Buffer, fromByte = 0): Tick[] => parseMarker(log, fromByte).ticks;

export interface ContinuationInput {
  /** The marker as printed before the guest was stopped. */
  before: Marker;
  /** Marker lines that ended after the stop (the restored guest's). */
  after: Marker;
  /** The pattern the suite asked for: its key (from the seed) and size. */
  expected: { key: string; mib: number };
  /** How many ticks after the restore the check wants to see. */
  minAfter: number;
}

export interface ContinuationVerdict {
  ok: boolean;
  /** What was wrong, each a sentence naming the values; empty when ok. */
  problems: string[];
  lastBefore?: Tick;
  firstAfter?: Tick;
  /** The first full pass over the pattern that began after the restore. */
  passAfter?: VerifyPass;
}

/** The first full pass that began after the last tick printed before the stop. */
export function passAfterRestore(before: Marker, after: Marker): VerifyPass | undefined {
  const last = before.ticks.at(-1)?.n ?? 0;
  return after.passes.find((p) => p.fromTick > last);
}

export function describePass(p: VerifyPass, mib: number): string {
  const words = (mib * 1024 * 1024) / 8;
  const what = p.ok
    ? `all ${words} words intact`
    : `${p.badWords} of ${words} words differ from the pattern, the first at byte offset ${p.firstBadOffset}`;
  return `pass ${p.pass} (ticks ${p.fromTick}–${p.toTick}) over ${mib} MiB: ${what}`;
}

/**
 * The restored guest went on where it stopped: the first tick after the restore is the last
 * one before the stop plus one (not 1, not a jump), the counter keeps increasing by one, the
 * boot_id is the one the guest had before, the pattern is the one asked for, no pass ever
 * found a bad word, and a full pass begun after the restore found every word intact.
 */
export function verifyContinuation(i: ContinuationInput): ContinuationVerdict {
  const problems: string[] = [];
  const lastBefore = i.before.ticks.at(-1);
  const firstAfter = i.after.ticks[0];
  const pattern = i.before.pattern;
  if (!pattern) problems.push('the guest never reported its memory pattern before the stop');
  else if (pattern.key !== i.expected.key || pattern.mib !== i.expected.mib)
    problems.push(
      `the guest wrote a ${pattern.mib} MiB pattern with key ${pattern.key}, expected ${i.expected.mib} MiB with key ${i.expected.key}`,
    );
  if (!lastBefore) problems.push('no tick was printed before the stop: the guest was never seen running');
  if (i.after.ticks.length < i.minAfter)
    problems.push(`${i.after.ticks.length} tick(s) after the restore, wanted ${i.minAfter}: the guest did not run on`);
  if (lastBefore && firstAfter) {
    if (firstAfter.n !== lastBefore.n + 1)
      problems.push(
        firstAfter.n === 1
          ? `the counter started again at 1 (it was ${lastBefore.n} before the stop): the guest booted anew`
          : `the first tick after the restore is ${firstAfter.n}, expected ${lastBefore.n + 1} (last before the stop: ${lastBefore.n})`,
      );
    if (firstAfter.bootId !== lastBefore.bootId)
      problems.push(`the guest's boot_id changed from ${lastBefore.bootId} to ${firstAfter.bootId}`);
  }
  for (let k = 1; k < i.after.ticks.length; k++) {
    if (i.after.ticks[k]!.n !== i.after.ticks[k - 1]!.n + 1)
      problems.push(`the counter went from ${i.after.ticks[k - 1]!.n} to ${i.after.ticks[k]!.n} after the restore`);
  }
  if (i.after.pattern) problems.push('the guest wrote its pattern again after the restore: it started anew');
  for (const p of [...i.before.passes, ...i.after.passes].filter((x) => !x.ok)) problems.push(describePass(p, i.expected.mib));
  const passAfter = passAfterRestore(i.before, i.after);
  if (!passAfter && lastBefore)
    problems.push(
      `no full pass over the ${i.expected.mib} MiB pattern began after the restore (after tick ${lastBefore.n}): the pattern was not verified`,
    );
  return { ok: problems.length === 0, problems, lastBefore, firstAfter, passAfter };
}

/** `info snapshots`-independent: the VM state size of `tag` from `qemu-img info --output=json`. */
export function vmStateBytes(qemuImgInfoJson: string, tag: string): number | undefined {
  const info = JSON.parse(qemuImgInfoJson) as { snapshots?: { name: string; 'vm-state-size': number }[] };
  return info.snapshots?.find((s) => s.name === tag)?.['vm-state-size'];
}
