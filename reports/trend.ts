/**
 * Findings across the kept runs, as pure data: one series per suite/host/key, one point per run
 * that recorded it, each point labelled with the versions its host ran in that run (from the
 * run's manifest). The I/O is in trend-runs.ts; the drawing in trend-svg.ts; the command in
 * trend-cli.ts.
 */
import { ceilingRange, type FindingValue, versionComponents } from './compare.js';

export type VersionName = (typeof versionComponents)[number];
export type HostVersions = Partial<Record<VersionName, string>>;

/** What a trend needs of one run: reports/runs/<runId>/findings.json + manifest.json. */
export interface TrendRun {
  runId: string;
  /** ISO time the run's report was made, when the manifest says; orders the runs. */
  createdAt: string | null;
  findings: { suite: string; host: string; key: string; value: FindingValue; unit?: string }[];
  /** Host → facts as the manifest recorded them. */
  hosts: Record<string, Record<string, string | number | boolean | null>>;
}

export interface TrendPoint {
  /** Position of the run among all runs of the trend (0 = oldest): gaps are runs without the finding. */
  runIndex: number;
  runId: string;
  createdAt: string | null;
  /** As recorded; several different values in one run are joined with " | ". */
  recorded: FindingValue;
  /** The number drawn, or null when the value is not a number (a word, a boolean). */
  value: number | null;
  /** `none-below-N` only bounds a ceiling from below (drawn at N+1), `none-boots-at-N` from above. */
  bound?: 'at-least' | 'at-most';
  versions: HostVersions;
}

export interface TrendSeries {
  suite: string;
  host: string;
  key: string;
  unit?: string;
  points: TrendPoint[];
}

export interface Trends {
  runs: { runId: string; createdAt: string | null }[];
  series: TrendSeries[];
}

/** A number as drawn, from a number, a numeric string or a ceiling's words. */
export function plottable(v: FindingValue): { value: number; bound?: 'at-least' | 'at-most' } | null {
  if (typeof v === 'number') return Number.isFinite(v) ? { value: v } : null;
  if (typeof v !== 'string') return null;
  const range = ceilingRange(v);
  if (!range) return null;
  if (range.lo === range.hi) return { value: range.lo };
  return Number.isFinite(range.lo) ? { value: range.lo, bound: 'at-least' } : { value: range.hi, bound: 'at-most' };
}

function versionsOf(facts: Record<string, unknown> | undefined): HostVersions {
  const out: HostVersions = {};
  for (const c of versionComponents) {
    const v = facts?.[c];
    if (v !== undefined && v !== null && v !== '') out[c] = String(v);
  }
  return out;
}

export function seriesId(s: { suite: string; host: string; key: string }): string {
  return JSON.stringify([s.suite, s.host, s.key]);
}

/** Oldest first: by creation time, then run id (ids are ISO timestamps in `labrig run`). */
export function orderRuns<R extends { runId: string; createdAt: string | null }>(runs: R[]): R[] {
  return [...runs].sort((a, b) => (a.createdAt ?? a.runId).localeCompare(b.createdAt ?? b.runId) || a.runId.localeCompare(b.runId));
}

export function buildTrends(runs: TrendRun[]): Trends {
  const ordered = orderRuns(runs);
  const series = new Map<string, TrendSeries>();
  ordered.forEach((run, runIndex) => {
    const perRun = new Map<string, { f: TrendRun['findings'][number]; values: FindingValue[] }>();
    for (const f of run.findings) {
      const id = seriesId(f);
      const seen = perRun.get(id);
      if (seen) seen.values.push(f.value);
      else perRun.set(id, { f, values: [f.value] });
    }
    for (const [id, { f, values }] of perRun) {
      const distinct = values.filter((v, i) => values.indexOf(v) === i);
      const last = values[values.length - 1]!;
      const drawn = plottable(last);
      const s = series.get(id) ?? {
        suite: f.suite,
        host: f.host,
        key: f.key,
        ...(f.unit !== undefined ? { unit: f.unit } : {}),
        points: [],
      };
      if (s.unit === undefined && f.unit !== undefined) s.unit = f.unit;
      s.points.push({
        runIndex,
        runId: run.runId,
        createdAt: run.createdAt,
        recorded: distinct.length === 1 ? last : distinct.map(String).join(' | '),
        value: drawn?.value ?? null,
        ...(drawn?.bound ? { bound: drawn.bound } : {}),
        versions: versionsOf(run.hosts[f.host]),
      });
      series.set(id, s);
    }
  });
  return {
    runs: ordered.map((r) => ({ runId: r.runId, createdAt: r.createdAt })),
    series: [...series.values()].sort((a, b) => seriesId(a).localeCompare(seriesId(b))),
  };
}

/** A series worth a chart: at least one of its values is a number. */
export function isNumeric(s: TrendSeries): boolean {
  return s.points.some((p) => p.value !== null);
}

/** Where a version of the host changed from the previous point: "qemu 7.2.0 → 8.2.1". */
export function versionChanges(
  s: TrendSeries,
  components: readonly VersionName[] = ['qemu', 'kernel', 'xen', 'libvirt', 'edk2'],
): { at: number; what: string[] }[] {
  const out: { at: number; what: string[] }[] = [];
  for (let i = 1; i < s.points.length; i++) {
    const before = s.points[i - 1]!.versions;
    const after = s.points[i]!.versions;
    const what = components.filter((c) => before[c] !== after[c]).map((c) => `${c} ${before[c] ?? '?'} → ${after[c] ?? '?'}`);
    if (what.length) out.push({ at: i, what });
  }
  return out;
}

export function shownValue(v: FindingValue, unit?: string): string {
  return unit && typeof v === 'number' ? `${v} ${unit}` : String(v);
}
