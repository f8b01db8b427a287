/**
 * What changed between two runs, as pure data: findings matched on suite+host+key, the
 * versions each host ran (kernel, qemu, libvirt, xen, edk2), and the test outcomes. The I/O
 * (finding the run, reading its files) is in run-dir.ts; the command in compare-cli.ts.
 *
 * Regression rules — the exit code of `labrig compare` is non-zero when any of these holds:
 *  - a test that passed in A failed (or broke) in B for a product reason. A failure whose
 *    message carries a `[lab:…]` kind says nothing about the product: it is "inconclusive".
 *  - a finding whose key has a declared better direction (`directionRules`) got worse:
 *      ceiling, ceiling_*  higher is better, exactly; `none-below-N` means every count up to N
 *                          booted (ceiling > N), `none-boots-at-N` means ceiling < N; two values
 *                          whose ranges overlap cannot be ordered and are only "changed".
 *      *_ms, *_s (or unit ms/s)  lower is better; a difference counts only beyond 25 % of A's
 *                          value and at least 1 s (timings under TCG on a shared runner jitter).
 *  - nothing else: unknown keys, versions, findings or tests that appeared or disappeared are
 *    reported as changes, never as regressions.
 */
import type { RecordedFinding } from './evidence.js';

export type FindingValue = string | number | boolean;
export type Verdict = 'regressed' | 'improved' | 'within-tolerance' | 'inconclusive' | 'changed';
export type Change = 'changed' | 'appeared' | 'disappeared';

export interface TestOutcome {
  /** Host (Playwright project) the test ran for, when the run had projects. */
  project?: string;
  name: string;
  status: string;
  /** The failure carried a [lab:…] kind: the lab, not the product, stopped it. */
  labFailure: boolean;
  /** First line of the failure or skip message. */
  message?: string;
}

/** What compare needs of one run; run-dir.ts reads it from reports/runs/<runId>/. */
export interface RunSnapshot {
  label: string;
  runId: string | null;
  gitRevision: string | null;
  findings: RecordedFinding[];
  /** Host → facts as the manifest recorded them. */
  hosts: Record<string, Record<string, string | number | boolean | null>>;
  tests: TestOutcome[];
}

export interface FindingDiff {
  suite: string;
  host: string;
  key: string;
  unit?: string;
  /** Absent when the finding appeared. Several differing values in one run are joined with " | ". */
  before?: FindingValue;
  after?: FindingValue;
  change: Change;
  verdict: Verdict;
  why: string;
}

export interface VersionDiff {
  host: string;
  component: string;
  before: string | null;
  after: string | null;
  change: Change;
}

export interface TestDiff {
  project?: string;
  name: string;
  /** B's QEMU no longer has the machine type the test asked for (QEMU retires old versioned types). */
  machineTypeGone?: string;
  before: string | null;
  after: string | null;
  change: Change;
  verdict: Verdict;
  why: string;
}

export interface Comparison {
  a: { label: string; runId: string | null; gitRevision: string | null };
  b: { label: string; runId: string | null; gitRevision: string | null };
  versions: VersionDiff[];
  findings: FindingDiff[];
  tests: TestDiff[];
  summary: { regressed: number; improved: number; changed: number; unchangedFindings: number; unchangedTests: number };
  regressed: boolean;
}

export const versionComponents = ['kernel', 'qemu', 'libvirt', 'xen', 'edk2'] as const;

/** A value as a range of integers it stands for; open ends are ±Infinity. */
interface Range {
  lo: number;
  hi: number;
}

export interface DirectionRule {
  /** As shown in the help and the reasons: `ceiling_*`. */
  pattern: string;
  matches(key: string, unit: string | undefined): boolean;
  better: 'higher' | 'lower';
  /** A change counts only beyond max(relative × |A|, absolute). */
  relative: number;
  absolute: number;
  /** Unit of `absolute`, for the reasons shown. */
  unit?: string;
  /** The value as a range, or null when it cannot be ordered (words, booleans). */
  range(value: FindingValue): Range | null;
}

const plainNumber = (v: FindingValue): Range | null => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+(?:\.\d+)?$/.test(v.trim()) ? Number(v) : NaN;
  return Number.isFinite(n) ? { lo: n, hi: n } : null;
};

/** suites/pcie-root-ports/bisect.ts ceilingFinding: a count, or words for "above the range" / "below it". */
export function ceilingRange(v: FindingValue): Range | null {
  if (typeof v === 'string') {
    const above = /^none-below-(\d+)$/.exec(v);
    if (above) return { lo: Number(above[1]) + 1, hi: Infinity };
    const below = /^none-boots-at-(\d+)$/.exec(v);
    if (below) return { lo: -Infinity, hi: Number(below[1]) - 1 };
  }
  return plainNumber(v);
}

const durationSegment = (key: string, seg: 'ms' | 's') => new RegExp(`(?:^|_)${seg}(?:_|$)`).test(key);

export const directionRules: DirectionRule[] = [
  {
    pattern: 'ceiling, ceiling_*',
    matches: (key) => /^ceiling(?:_|$)/.test(key),
    better: 'higher',
    relative: 0,
    absolute: 0,
    range: ceilingRange,
  },
  {
    pattern: '*_ms (unit ms)',
    matches: (key, unit) => unit === 'ms' || (unit === undefined && durationSegment(key, 'ms')),
    better: 'lower',
    relative: 0.25,
    absolute: 1000,
    unit: 'ms',
    range: plainNumber,
  },
  {
    pattern: '*_s (unit s)',
    matches: (key, unit) => unit === 's' || (unit === undefined && durationSegment(key, 's')),
    better: 'lower',
    relative: 0.25,
    absolute: 1,
    unit: 's',
    range: plainNumber,
  },
];

export function ruleFor(key: string, unit: string | undefined, rules = directionRules): DirectionRule | undefined {
  return rules.find((r) => r.matches(key, unit));
}

/** The verdict on one finding that has a value in both runs and changed. */
export function judgeFinding(
  key: string,
  unit: string | undefined,
  before: FindingValue,
  after: FindingValue,
  rules = directionRules,
): { verdict: Verdict; why: string } {
  const rule = ruleFor(key, unit, rules);
  if (!rule) return { verdict: 'changed', why: 'no declared direction for this key' };
  const a = rule.range(before);
  const b = rule.range(after);
  const dir = `${rule.better} is better (${rule.pattern})`;
  if (!a || !b) return { verdict: 'changed', why: `${dir}, but a value is not a number` };
  const finiteEnds = [a.lo, a.hi].filter(Number.isFinite).map(Math.abs);
  const margin = Math.max(rule.relative * (finiteEnds.length ? Math.max(...finiteEnds) : 0), rule.absolute);
  // "Worse" only when every value B may stand for is beyond every value A may stand for, plus the margin.
  const lower = b.hi < a.lo - margin;
  const higher = b.lo > a.hi + margin;
  if (lower || higher) {
    const better = rule.better === 'higher' ? higher : lower;
    return { verdict: better ? 'improved' : 'regressed', why: dir };
  }
  const overlap = b.lo <= a.hi && a.lo <= b.hi;
  if (!overlap && margin > 0) {
    return {
      verdict: 'within-tolerance',
      why: `${dir}; |B − A| ≤ max(${Math.round(rule.relative * 100)} % of A, ${rule.absolute}${rule.unit ? ` ${rule.unit}` : ''})`,
    };
  }
  return { verdict: 'changed', why: `${dir}; the ranges overlap, cannot be ordered` };
}

function findingId(f: { suite: string; host: string; key: string }): string {
  return JSON.stringify([f.suite, f.host, f.key]);
}

/** One value per finding; a key recorded several times with different values shows them all. */
function collapse(findings: RecordedFinding[]): Map<string, { f: RecordedFinding; value: FindingValue }> {
  const groups = new Map<string, RecordedFinding[]>();
  for (const f of findings) groups.set(findingId(f), [...(groups.get(findingId(f)) ?? []), f]);
  const out = new Map<string, { f: RecordedFinding; value: FindingValue }>();
  for (const [id, fs] of groups) {
    const distinct = [...new Set(fs.map((f) => JSON.stringify(f.value)))];
    const value =
      distinct.length === 1
        ? fs[0]!.value
        : fs
            .map((f) => String(f.value))
            .filter((v, i, all) => all.indexOf(v) === i)
            .join(' | ');
    out.set(id, { f: fs[0]!, value });
  }
  return out;
}

export function compareFindings(
  a: RecordedFinding[],
  b: RecordedFinding[],
  rules = directionRules,
): { diffs: FindingDiff[]; unchanged: number } {
  const before = collapse(a);
  const after = collapse(b);
  const diffs: FindingDiff[] = [];
  let unchanged = 0;
  for (const id of new Set([...before.keys(), ...after.keys()])) {
    const x = before.get(id);
    const y = after.get(id);
    const f = (y ?? x)!.f;
    const base = { suite: f.suite, host: f.host, key: f.key, ...(f.unit !== undefined ? { unit: f.unit } : {}) };
    if (x && y) {
      if (JSON.stringify(x.value) === JSON.stringify(y.value)) {
        unchanged++;
        continue;
      }
      diffs.push({ ...base, before: x.value, after: y.value, change: 'changed', ...judgeFinding(f.key, f.unit, x.value, y.value, rules) });
    } else if (y) {
      diffs.push({ ...base, after: y.value, change: 'appeared', verdict: 'changed', why: 'not recorded in A' });
    } else {
      diffs.push({ ...base, before: x!.value, change: 'disappeared', verdict: 'changed', why: 'not recorded in B' });
    }
  }
  return {
    diffs: diffs.sort((p, q) => verdictRank[p.verdict] - verdictRank[q.verdict] || findingId(p).localeCompare(findingId(q))),
    unchanged,
  };
}

export function compareVersions(a: RunSnapshot['hosts'], b: RunSnapshot['hosts']): VersionDiff[] {
  const diffs: VersionDiff[] = [];
  const shown = (v: unknown): string | null => (v === undefined || v === null || v === '' ? null : String(v));
  for (const host of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    for (const component of versionComponents) {
      const before = shown(a[host]?.[component]);
      const after = shown(b[host]?.[component]);
      if (before === after) continue;
      const change: Change = before === null ? 'appeared' : after === null ? 'disappeared' : 'changed';
      diffs.push({ host, component, before, after, change });
    }
  }
  return diffs;
}

const failedStatuses = new Set(['failed', 'broken']);

export function compareTests(a: TestOutcome[], b: TestOutcome[]): { diffs: TestDiff[]; unchanged: number } {
  const id = (t: TestOutcome) => JSON.stringify([t.project ?? '', t.name]);
  const before = new Map(a.map((t) => [id(t), t]));
  const after = new Map(b.map((t) => [id(t), t]));
  const diffs: TestDiff[] = [];
  let unchanged = 0;
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    const x = before.get(key);
    const y = after.get(key);
    const t = (y ?? x)!;
    const base = {
      ...(t.project !== undefined ? { project: t.project } : {}),
      name: t.name,
      before: x?.status ?? null,
      after: y?.status ?? null,
    };
    if (x && y && x.status === y.status) {
      unchanged++;
      continue;
    }
    if (!x || !y) {
      diffs.push({ ...base, change: x ? 'disappeared' : 'appeared', verdict: 'changed', why: x ? 'not run in B' : 'not run in A' });
    } else if (machineTypeGone(y) && !machineTypeGone(x)) {
      const machine = machineTypeGone(y)!;
      diffs.push({
        ...base,
        change: 'changed',
        verdict: 'changed',
        machineTypeGone: machine,
        why: `machine type ${machine} no longer exists in B (${y.message})`,
      });
    } else if (x.status === 'passed' && failedStatuses.has(y.status)) {
      diffs.push(
        y.labFailure
          ? {
              ...base,
              change: 'changed',
              verdict: 'inconclusive',
              why: 'failed for a lab reason ([lab:…]): says nothing about the product',
            }
          : { ...base, change: 'changed', verdict: 'regressed', why: `passed in A, failed in B${y.message ? `: ${y.message}` : ''}` },
      );
    } else if (failedStatuses.has(x.status) && y.status === 'passed') {
      diffs.push({ ...base, change: 'changed', verdict: 'improved', why: 'failed in A, passed in B' });
    } else {
      diffs.push({ ...base, change: 'changed', verdict: 'changed', why: 'status changed' });
    }
  }
  return {
    diffs: diffs.sort(
      (p, q) =>
        verdictRank[p.verdict] - verdictRank[q.verdict] || `${p.project ?? ''} ${p.name}`.localeCompare(`${q.project ?? ''} ${q.name}`),
    ),
    unchanged,
  };
}

/** Regressions first, then what is unsure, then improvements, then plain changes. */
export const verdictRank: Record<Verdict, number> = { regressed: 0, inconclusive: 1, improved: 2, 'within-tolerance': 3, changed: 4 };

/**
 * The machine type a failed or skipped test could not get: libvirt's "Emulator … does not
 * support machine type 'virt-2.6'", QEMU's "unsupported machine type" — never a crash.
 */
export function machineTypeGone(t: Pick<TestOutcome, 'status' | 'message'>): string | undefined {
  if (t.status === 'passed' || !t.message) return undefined;
  const m =
    /does not support machine type '([^']+)'|unsupported machine type:? ["']?([\w.-]+)?|machine type ["']?([\w.-]+)["']? (?:is not supported|no longer exists|not found)/i.exec(
      t.message,
    );
  return m ? (m[1] ?? m[2] ?? m[3] ?? 'unknown') : undefined;
}

export function compareRuns(a: RunSnapshot, b: RunSnapshot, rules = directionRules): Comparison {
  const findings = compareFindings(a.findings, b.findings, rules);
  const tests = compareTests(a.tests, b.tests);
  const verdicts = [...findings.diffs, ...tests.diffs].map((d) => d.verdict);
  const count = (v: Verdict) => verdicts.filter((x) => x === v).length;
  const regressed = count('regressed');
  return {
    a: { label: a.label, runId: a.runId, gitRevision: a.gitRevision },
    b: { label: b.label, runId: b.runId, gitRevision: b.gitRevision },
    versions: compareVersions(a.hosts, b.hosts),
    findings: findings.diffs,
    tests: tests.diffs,
    summary: {
      regressed,
      improved: count('improved'),
      changed: verdicts.length - regressed - count('improved'),
      unchangedFindings: findings.unchanged,
      unchangedTests: tests.unchanged,
    },
    regressed: regressed > 0,
  };
}
