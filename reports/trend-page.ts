/**
 * The trend page: every numeric finding across the kept runs as a chart, grouped by suite and
 * host, in one HTML file with inline SVG and CSS — no script, nothing fetched — so it opens from
 * a file, inside Allure's sandboxed attachment frame (a global attachment of the report, see
 * reports/allurerc.mjs) and inside a dossier.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { buildTrends, isNumeric, shownValue, type TrendRun, type Trends } from './trend.js';
import { readKeptRuns, withCurrent } from './trend-runs.js';
import { formatNumber, runLabel, trendSvg, xml } from './trend-svg.js';

/** The file name under which the page is attached to the report and packed into a dossier. */
export const TRENDS_PAGE = 'trends.html';

const STYLE = `body{font:14px system-ui,sans-serif;margin:16px;color:#111;background:#fff}
h1{font-size:18px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 4px;border-bottom:1px solid #ddd}
h3{font-size:13px;margin:12px 0 4px;color:#444}.charts{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;border:1px solid #eee}figcaption{font-size:12px;color:#444;padding:2px 8px 6px}
.note{color:#555;font-size:12px}`;

function caption(s: Trends['series'][number]): string {
  const numeric = s.points.flatMap((p) => (p.value === null ? [] : [p.value]));
  const last = s.points[s.points.length - 1]!;
  const range = numeric.length > 1 ? `, min ${formatNumber(Math.min(...numeric))}, max ${formatNumber(Math.max(...numeric))}` : '';
  return `last ${shownValue(last.recorded, s.unit)} (${runLabel(last)})${range}; ${s.points.length} of the runs recorded it`;
}

export function trendsPage(trends: Trends, opts: { title?: string; note?: string } = {}): string {
  const charted = trends.series.filter(isNumeric);
  const first = trends.runs[0];
  const last = trends.runs[trends.runs.length - 1];
  const span =
    first && last ? `${trends.runs.length} run${trends.runs.length === 1 ? '' : 's'}, ${runLabel(first)} … ${runLabel(last)}` : 'no runs';
  const body: string[] = [
    `<h1>${xml(opts.title ?? 'Findings across runs')}</h1>`,
    `<p class="note">${xml(span)}; ${charted.length} numeric finding${charted.length === 1 ? '' : 's'}. Hover a point for its run and the host's versions; a dashed line marks a version change.${opts.note ? ` ${xml(opts.note)}` : ''}</p>`,
  ];
  const suites = [...new Set(charted.map((s) => s.suite))];
  for (const suite of suites) {
    body.push(`<h2>${xml(suite)}</h2>`);
    const ofSuite = charted.filter((s) => s.suite === suite);
    for (const host of [...new Set(ofSuite.map((s) => s.host))]) {
      body.push(`<h3>${xml(host)}</h3>`, '<div class="charts">');
      for (const s of ofSuite.filter((t) => t.host === host)) {
        body.push(
          `<figure data-series="${xml(`${s.suite}/${s.host}/${s.key}`)}">`,
          trendSvg(s, trends.runs.length),
          `<figcaption>${xml(caption(s))}</figcaption></figure>`,
        );
      }
      body.push('</div>');
    }
  }
  if (!charted.length) body.push('<p>No numeric finding was recorded in these runs.</p>');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${xml(opts.title ?? 'labrig trends')}</title>
<style>${STYLE}</style></head>
<body>
${body.join('\n')}
</body></html>
`;
}

export interface TrendsPageOptions {
  runsDir: string;
  /** The run being reported, not yet archived: drawn as the newest point. */
  current?: TrendRun;
  /** Only runs up to this one (a dossier shows the trend as it stood at its run). */
  upTo?: string;
  title?: string;
}

/** Reads the kept runs, writes the page to `path`; returns how many charts it holds and what was left out. */
export async function writeTrendsPage(
  path: string,
  opts: TrendsPageOptions,
): Promise<{ charts: number; runs: number; warnings: string[] }> {
  // Charts are an aid: a runs directory that cannot be read leaves this run alone on them, and says so.
  const kept = await readKeptRuns(opts.runsDir).catch((e: Error) => ({
    runs: [],
    warnings: [`trend charts without the kept runs: ${e.message}`],
  }));
  let runs = opts.current ? withCurrent(kept.runs, opts.current) : kept.runs;
  let trends = buildTrends(runs);
  if (opts.upTo !== undefined) {
    const until = trends.runs.findIndex((r) => r.runId === opts.upTo);
    if (until >= 0) {
      const keep = new Set(trends.runs.slice(0, until + 1).map((r) => r.runId));
      runs = runs.filter((r) => keep.has(r.runId));
      trends = buildTrends(runs);
    }
  }
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, trendsPage(trends, { title: opts.title }));
  return { charts: trends.series.filter(isNumeric).length, runs: trends.runs.length, warnings: kept.warnings };
}
