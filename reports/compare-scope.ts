/**
 * What `labrig validate` compares: the baseline and the candidate narrowed to the same scope
 * (the hosts the candidate ran, the tests its --grep chose), and every finding in that scope
 * side by side — unchanged ones too, since a lab engineer reads the ceiling on both sides.
 */

import { type FindingValue, judgeFinding, type RunSnapshot, type Verdict, verdictRank } from './compare.js';
import type { RecordedFinding } from './evidence.js';

export interface Scope {
  hosts: string[];
  /** Playwright's --grep, matched as Playwright does against "file describe title". */
  grep?: string;
}

const titleOf = (fullName: string) => fullName.split(/\s+›\s+|:\d+:\d+\s+/).join(' ');

export function scopeSnapshot(s: RunSnapshot, scope: Scope): RunSnapshot {
  const grep = scope.grep ? new RegExp(scope.grep) : undefined;
  const inHost = (h: string | undefined) => !scope.hosts.length || (h !== undefined && scope.hosts.includes(h));
  const inGrep = (name: string) => !grep || grep.test(titleOf(name));
  return {
    ...s,
    findings: s.findings.filter((f) => inHost(f.host) && inGrep(f.test)),
    tests: s.tests.filter((t) => inHost(t.project) && inGrep(t.name)),
    hosts: Object.fromEntries(Object.entries(s.hosts).filter(([h]) => inHost(h))),
  };
}

export interface FindingRow {
  suite: string;
  host: string;
  key: string;
  unit?: string;
  baseline?: FindingValue;
  candidate?: FindingValue;
  verdict: Verdict | 'same' | 'only baseline' | 'only candidate';
}

function byId(findings: RecordedFinding[]): Map<string, { f: RecordedFinding; value: FindingValue }> {
  const out = new Map<string, { f: RecordedFinding; values: string[]; value: FindingValue }>();
  for (const f of findings) {
    const id = JSON.stringify([f.suite, f.host, f.key]);
    const seen = out.get(id);
    if (!seen) out.set(id, { f, values: [String(f.value)], value: f.value });
    else if (!seen.values.includes(String(f.value))) {
      seen.values.push(String(f.value));
      seen.value = seen.values.join(' | ');
    }
  }
  return out;
}

/** Every finding either side has, regressions first, then by suite, host, key. */
export function findingRows(a: RecordedFinding[], b: RecordedFinding[]): FindingRow[] {
  const x = byId(a);
  const y = byId(b);
  const rows: FindingRow[] = [];
  for (const id of new Set([...x.keys(), ...y.keys()])) {
    const p = x.get(id);
    const q = y.get(id);
    const f = (q ?? p)!.f;
    const base = { suite: f.suite, host: f.host, key: f.key, ...(f.unit !== undefined ? { unit: f.unit } : {}) };
    if (p && q) {
      const same = JSON.stringify(p.value) === JSON.stringify(q.value);
      rows.push({
        ...base,
        baseline: p.value,
        candidate: q.value,
        verdict: same ? 'same' : judgeFinding(f.key, f.unit, p.value, q.value).verdict,
      });
    } else if (p) rows.push({ ...base, baseline: p.value, verdict: 'only baseline' });
    else rows.push({ ...base, candidate: q!.value, verdict: 'only candidate' });
  }
  const rank = (r: FindingRow) => (r.verdict in verdictRank ? verdictRank[r.verdict as Verdict] : r.verdict === 'same' ? 6 : 5);
  return rows.sort((p, q) => rank(p) - rank(q) || `${p.suite} ${p.host} ${p.key}`.localeCompare(`${q.suite} ${q.host} ${q.key}`));
}

export function formatFindingRows(rows: FindingRow[]): string {
  const shown = (v: FindingValue | undefined, unit?: string) =>
    v === undefined ? '(absent)' : unit && typeof v === 'number' ? `${v} ${unit}` : String(v);
  const cells = rows.map((r) => [
    r.suite,
    r.host,
    r.key,
    shown(r.baseline, r.unit),
    shown(r.candidate, r.unit),
    r.verdict === 'regressed' ? 'REGRESSED' : r.verdict,
  ]);
  const head = ['suite', 'host', 'finding', 'baseline', 'candidate', 'verdict'];
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `  ${c.map((x, i) => x.padEnd(w[i]!)).join('  ')}`.trimEnd();
  return `${[line(head), ...cells.map(line)].join('\n')}\n`;
}
