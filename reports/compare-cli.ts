/** `labrig compare <runA> <runB> [--json]`: the diff of two archived runs, as text or JSON. */
import { type Comparison, compareRuns, directionRules, type FindingValue, type Verdict } from './compare.js';
import { loadRunSnapshot } from './run-dir.js';

/** Exit codes, diff(1)-style: 0 nothing regressed, 1 something regressed, 2 could not compare. */
export const COMPARE_REGRESSED = 1;
export const COMPARE_TROUBLE = 2;

const ABSENT = '(absent)';

function shownValue(v: FindingValue | undefined, unit?: string): string {
  if (v === undefined) return ABSENT;
  return unit && typeof v === 'number' ? `${v} ${unit}` : String(v);
}

const verdictLabel: Record<Verdict, string> = {
  regressed: 'REGRESSED',
  improved: 'improved',
  'within-tolerance': 'within tolerance',
  inconclusive: 'inconclusive',
  changed: 'changed',
};

function runLine(side: 'A' | 'B', r: Comparison['a']): string {
  return `${side}: ${r.label}  (run ${r.runId ?? '?'}, revision ${r.gitRevision?.slice(0, 12) ?? '?'})`;
}

export function formatComparison(c: Comparison): string {
  const lines = [runLine('A', c.a), runLine('B', c.b), ''];
  const width = (xs: string[]) => Math.max(0, ...xs.map((x) => x.length));

  lines.push(`versions${c.versions.length ? '' : ': no change'}`);
  const hostW = width(c.versions.map((v) => v.host));
  const compW = width(c.versions.map((v) => v.component));
  for (const v of c.versions) {
    lines.push(
      `  ${v.change.padEnd(11)} ${v.host.padEnd(hostW)}  ${v.component.padEnd(compW)}  ${v.before ?? ABSENT} → ${v.after ?? ABSENT}`,
    );
  }

  lines.push('', `findings${c.findings.length ? '' : ': no change'}`);
  const labelW = width([...c.findings, ...c.tests].map((d) => verdictLabel[d.verdict]));
  for (const f of c.findings) {
    const what = f.change === 'changed' ? verdictLabel[f.verdict] : f.change;
    lines.push(
      `  ${what.padEnd(Math.max(labelW, 11))} ${f.suite} / ${f.host} / ${f.key}: ${shownValue(f.before, f.unit)} → ${shownValue(f.after, f.unit)}` +
        (f.verdict === 'changed' && f.change === 'changed' ? '' : `  (${f.why})`),
    );
  }

  lines.push('', `tests${c.tests.length ? '' : ': no change'}`);
  for (const t of c.tests) {
    const what = t.machineTypeGone ? 'machine type gone' : t.change === 'changed' ? verdictLabel[t.verdict] : t.change;
    const name = t.project ? `[${t.project}] ${t.name}` : t.name;
    lines.push(`  ${what.padEnd(Math.max(labelW, 11))} ${name}: ${t.before ?? ABSENT} → ${t.after ?? ABSENT}  (${t.why})`);
  }

  const s = c.summary;
  lines.push(
    '',
    `${c.regressed ? 'REGRESSED' : 'no regression'}: ${s.regressed} regressed, ${s.improved} improved, ${s.changed} other changes; ` +
      `${s.unchangedFindings} findings and ${s.unchangedTests} tests unchanged; ${c.versions.length} version changes`,
  );
  return `${lines.join('\n')}\n`;
}

/** The rules of reports/compare.ts as `labrig compare --help` shows them. */
export function regressionRulesHelp(): string {
  const rules = directionRules.map((r) => {
    const tolerance =
      r.relative || r.absolute ? `, beyond max(${Math.round(r.relative * 100)} % of A, ${r.absolute}${r.unit ? ` ${r.unit}` : ''})` : '';
    return `  ${r.pattern.padEnd(20)} ${r.better} is better${tolerance}`;
  });
  return [
    '',
    'A regression (exit 1) is:',
    '  a test that passed in A and failed in B for a product reason ([lab:…] failures are "inconclusive");',
    '  a finding with a declared direction that got worse:',
    ...rules,
    '  (a ceiling of none-below-N counts as more than N; none-boots-at-N as less than N)',
    'Anything else — unknown keys, versions, what appeared or disappeared — is reported as a change.',
  ].join('\n');
}

export async function compareCommand(runA: string, runB: string, opts: { json?: boolean; runsDir?: string } = {}): Promise<number> {
  let comparison: Comparison;
  try {
    const [a, b] = await Promise.all([loadRunSnapshot(runA, opts.runsDir), loadRunSnapshot(runB, opts.runsDir)]);
    comparison = compareRuns(a, b);
  } catch (e) {
    process.stderr.write(`labrig compare: ${(e as Error).message}\n`);
    return COMPARE_TROUBLE;
  }
  process.stdout.write(opts.json ? `${JSON.stringify(comparison, null, 2)}\n` : formatComparison(comparison));
  return comparison.regressed ? COMPARE_REGRESSED : 0;
}
