/** `labrig trend <key> [--host H] [--suite S] [--runs DIR]`: a finding across the kept runs, as a table and a sparkline. */
import { defaultRunsDir } from './run-dir.js';
import { buildTrends, shownValue, type TrendSeries, type Trends, type VersionName } from './trend.js';
import { readKeptRuns } from './trend-runs.js';
import { runLabel } from './trend-svg.js';

/** Exit codes: 0 shown; 2 nothing to show (unknown key, host or suite; no runs; unreadable runs dir). */
export const TREND_UNKNOWN = 2;

const BLOCKS = '▁▂▃▄▅▆▇█';

/** One character per run: the value's height, `·` for a value that is not a number, a space where the run did not record it. */
export function sparkline(s: TrendSeries, runCount: number): string {
  const values = s.points.flatMap((p) => (p.value === null ? [] : [p.value]));
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const chars = Array.from({ length: runCount }, () => ' ');
  for (const p of s.points) {
    chars[p.runIndex] = p.value === null ? '·' : BLOCKS[hi > lo ? Math.round(((p.value - lo) / (hi - lo)) * (BLOCKS.length - 1)) : 3]!;
  }
  return chars.join('');
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd());
}

export function formatSeries(s: TrendSeries, trends: Trends): string {
  const components = (['qemu', 'kernel', 'xen'] as VersionName[]).filter((c) => s.points.some((p) => p.versions[c] !== undefined));
  const rows = [
    ['run', 'date', 'value', ...components],
    ...s.points.map((p) => [
      p.runId,
      p.createdAt ? runLabel(p) : '',
      `${shownValue(p.recorded, s.unit)}${p.bound ? ` (${p.bound === 'at-least' ? '≥' : '≤'} ${p.value})` : ''}`,
      ...components.map((c) => p.versions[c] ?? ''),
    ]),
  ];
  const lines = [`${s.suite} / ${s.host} / ${s.key}${s.unit ? ` (${s.unit})` : ''}`, ...table(rows)];
  const numeric = s.points.flatMap((p) => (p.value === null ? [] : [p.value]));
  const recorded = `${s.points.length} of ${trends.runs.length} runs`;
  lines.push(
    numeric.length
      ? `  ${sparkline(s, trends.runs.length)}  min ${Math.min(...numeric)}, max ${Math.max(...numeric)}, last ${shownValue(s.points[s.points.length - 1]!.recorded, s.unit)} (${recorded})`
      : `  (not a number: no sparkline; ${recorded})`,
  );
  return `${lines.join('\n')}\n`;
}

function wrapped(words: string[], width = 100): string {
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + w.length + 2 > width) lines.push(line), (line = '');
    line += line ? `, ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.map((l) => `  ${l}`).join('\n');
}

/** What the filters leave, or the one line (plus the known names) that says why nothing is left. */
export function selectSeries(
  trends: Trends,
  key: string,
  opts: { host?: string; suite?: string },
): { series: TrendSeries[] } | { error: string } {
  const where = (s: TrendSeries) =>
    (opts.host === undefined || s.host === opts.host) && (opts.suite === undefined || s.suite === opts.suite);
  for (const [flag, name, pick] of [
    ['--host', opts.host, (s: TrendSeries) => s.host],
    ['--suite', opts.suite, (s: TrendSeries) => s.suite],
  ] as const) {
    const known = [...new Set(trends.series.map(pick))].sort();
    if (name !== undefined && !known.includes(name))
      return { error: `no ${flag.slice(2)} "${name}" in these runs (${flag}); known: ${known.join(', ') || 'none'}` };
  }
  const series = trends.series.filter((s) => s.key === key && where(s));
  if (series.length) return { series };
  const scope = [opts.host && `host ${opts.host}`, opts.suite && `suite ${opts.suite}`].filter(Boolean).join(', ');
  const keys = [...new Set(trends.series.filter(where).map((s) => s.key))].sort();
  const elsewhere = trends.series.filter((s) => s.key === key).map((s) => `${s.suite}/${s.host}`);
  return {
    error:
      `no finding "${key}" in ${trends.runs.length} runs${scope ? ` for ${scope}` : ''}` +
      (elsewhere.length ? ` (recorded by ${[...new Set(elsewhere)].join(', ')})` : '') +
      `; known keys${scope ? ` for ${scope}` : ''}:\n${wrapped(keys)}`,
  };
}

export async function trendCommand(key: string, opts: { host?: string; suite?: string; runs?: string } = {}): Promise<number> {
  const runsDir = opts.runs ?? defaultRunsDir;
  const fail = (why: string) => (process.stderr.write(`labrig trend: ${why}\n`), TREND_UNKNOWN);
  let kept: Awaited<ReturnType<typeof readKeptRuns>>;
  try {
    kept = await readKeptRuns(runsDir);
  } catch (e) {
    return fail((e as Error).message);
  }
  for (const w of kept.warnings) process.stderr.write(`labrig trend: warning: ${w}\n`);
  if (!kept.runs.length) return fail(`no kept runs under ${runsDir} (each \`labrig run\` keeps one there; --runs names another directory)`);
  const trends = buildTrends(kept.runs);
  const picked = selectSeries(trends, key, opts);
  if ('error' in picked) return fail(picked.error);
  process.stdout.write(picked.series.map((s) => formatSeries(s, trends)).join('\n'));
  return 0;
}
