/**
 * One series as a small self-contained SVG line chart: a point per run that recorded a number
 * (its value, run and host versions in a <title> tooltip and data-* attributes), a dashed line
 * where the host's QEMU, kernel, Xen, libvirt or firmware changed. Hand-written on purpose: the
 * d3-scale/d3-shape that Allure pulls in are undeclared transitive dependencies without types,
 * and a polyline needs neither. Everything drawn from a host's data is XML-escaped.
 */
import { shownValue, type TrendPoint, type TrendSeries, versionChanges } from './trend.js';

const WIDTH = 520;
const HEIGHT = 170;
const MARGIN = { left: 64, right: 18, top: 30, bottom: 30 };

export function xml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Short enough for an axis, precise enough to tell two runs apart. */
export function formatNumber(v: number): string {
  return Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : String(Number(v.toPrecision(5)));
}

/** "2026-07-20 02:00" from a run's creation time, or its id. */
export function runLabel(p: { runId: string; createdAt: string | null }): string {
  return p.createdAt ? p.createdAt.slice(0, 16).replace('T', ' ') : p.runId.slice(0, 24);
}

function tooltip(s: TrendSeries, p: TrendPoint): string {
  const bound = p.bound === 'at-least' ? ' (at least)' : p.bound === 'at-most' ? ' (at most)' : '';
  const versions = Object.entries(p.versions)
    .map(([c, v]) => `${c} ${v}`)
    .join(', ');
  return `run ${p.runId} (${runLabel(p)}): ${shownValue(p.recorded, s.unit)}${bound}${versions ? `\n${versions}` : ''}`;
}

/** `runCount` places the points: a run without the finding leaves its place empty. */
export function trendSvg(s: TrendSeries, runCount: number): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (runIndex: number) => MARGIN.left + (runCount <= 1 ? plotW / 2 : (runIndex * plotW) / (runCount - 1));
  const numeric = s.points.filter((p): p is TrendPoint & { value: number } => p.value !== null);
  const values = numeric.map((p) => p.value);
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const pad = hi > lo ? (hi - lo) * 0.12 : Math.abs(lo) * 0.1 || 1;
  const [yLo, yHi] = [lo - pad, hi + pad];
  const y = (v: number) => MARGIN.top + plotH * (1 - (v - yLo) / (yHi - yLo));
  const f = (n: number) => n.toFixed(1);
  const title = `${s.suite} / ${s.host} / ${s.key}${s.unit ? ` (${s.unit})` : ''}`;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="trend" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" font-family="system-ui, sans-serif" font-size="11">`,
    `<title>${xml(title)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    `<text x="${MARGIN.left}" y="16" font-weight="600">${xml(title)}</text>`,
    `<line x1="${MARGIN.left}" y1="${MARGIN.top + plotH}" x2="${MARGIN.left + plotW}" y2="${MARGIN.top + plotH}" stroke="#999"/>`,
  ];
  if (numeric.length) {
    for (const v of hi > lo ? [lo, hi] : [lo]) {
      parts.push(
        `<line x1="${MARGIN.left}" y1="${f(y(v))}" x2="${MARGIN.left + plotW}" y2="${f(y(v))}" stroke="#ddd" stroke-dasharray="2 3"/>`,
        `<text x="${MARGIN.left - 6}" y="${f(y(v) + 4)}" text-anchor="end" fill="#555">${xml(formatNumber(v))}</text>`,
      );
    }
  }
  const first = s.points[0];
  const last = s.points[s.points.length - 1];
  if (first) parts.push(`<text x="${MARGIN.left}" y="${HEIGHT - 10}" fill="#555">${xml(runLabel(first))}</text>`);
  if (last && last !== first)
    parts.push(`<text x="${MARGIN.left + plotW}" y="${HEIGHT - 10}" text-anchor="end" fill="#555">${xml(runLabel(last))}</text>`);

  for (const change of versionChanges(s)) {
    const before = s.points[change.at - 1]!;
    const at = s.points[change.at]!;
    const cx = (x(before.runIndex) + x(at.runIndex)) / 2;
    parts.push(
      `<g class="version-change"><title>${xml(change.what.join('\n'))}</title>`,
      `<line x1="${f(cx)}" y1="${MARGIN.top - 4}" x2="${f(cx)}" y2="${MARGIN.top + plotH}" stroke="#d97706" stroke-dasharray="4 3"/>`,
      `<text x="${f(cx + 3)}" y="${MARGIN.top + 6}" fill="#b45309" font-size="9">${xml(change.what.map((w) => w.replace(/^(\S+) .* → /, '$1 ')).join(', '))}</text></g>`,
    );
  }
  if (numeric.length > 1) {
    const points = numeric.map((p) => `${f(x(p.runIndex))},${f(y(p.value))}`).join(' ');
    parts.push(`<polyline points="${points}" fill="none" stroke="#2563eb" stroke-width="1.6"/>`);
  }
  for (const p of s.points) {
    const tip = `<title>${xml(tooltip(s, p))}</title>`;
    if (p.value === null) {
      // Recorded, but not a number (e.g. "unavailable: …"): marked on the axis, not drawn as a value.
      const cx = x(p.runIndex);
      const cy = MARGIN.top + plotH;
      parts.push(
        `<path class="no-value" d="M${f(cx - 4)},${f(cy - 4)}l8,8m0,-8l-8,8" stroke="#b91c1c" data-run="${xml(p.runId)}">${tip}</path>`,
      );
      continue;
    }
    const hollow = p.bound !== undefined;
    if (p.bound)
      parts.push(
        `<text x="${f(x(p.runIndex) + 6)}" y="${f(y(p.value) - 5)}" fill="#2563eb" font-size="10">${p.bound === 'at-least' ? '≥' : '≤'}${xml(formatNumber(p.value))}</text>`,
      );
    parts.push(
      `<circle class="point" cx="${f(x(p.runIndex))}" cy="${f(y(p.value))}" r="3.5" fill="${hollow ? '#fff' : '#2563eb'}" stroke="#2563eb" stroke-width="1.5"` +
        ` data-run="${xml(p.runId)}" data-value="${p.value}"${p.bound ? ` data-bound="${p.bound}"` : ''}>${tip}</circle>`,
    );
  }
  parts.push('</svg>');
  return parts.join('\n');
}
