/**
 * A nightly pair whose findings differ (another ceiling, QEMU version and wall time): each test
 * keeps its historyId, so Allure's history holds one test with two runs, not two tests. Findings
 * are shown on the test as excluded parameters (targets/recorders.ts showFinding).
 */

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { readResults } from '../reports/results.js';
import { makeRun } from './fixtures/runs/make-run.js';

let work: string;
test.afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

test('two runs with different findings: same historyId per test, one history entry per test', async () => {
  test.setTimeout(5 * 60_000);
  work = await mkdtemp(join(tmpdir(), 'labrig-history-'));
  const base = { qemu: '7.2.19', kernel: '6.1.0-56-arm64', ceiling: 15, wallS: 120, boot: 'ok', ssh: 'ok' } as const;
  const a = await makeRun(work, 'night-1', base);
  const b = await makeRun(work, 'night-2', { ...base, qemu: '10.0.2', ceiling: 12, wallS: 131 });

  const ids = async (dir: string) => new Map((await readResults(join(dir, 'allure-results'))).map((r) => [r.fullName ?? r.name, r]));
  const [first, second] = [await ids(a), await ids(b)];
  const pcie = [...first.keys()].find((n) => /root port ceiling/.test(n ?? ''))!;
  // The findings differ and are on the test…
  const params = (r: unknown) => (r as { parameters?: { name: string; value: string; excluded?: boolean }[] }).parameters ?? [];
  expect(params(first.get(pcie)).find((p) => p.name === 'ceiling_newest')).toMatchObject({ value: '15', excluded: true });
  expect(params(second.get(pcie)).find((p) => p.name === 'ceiling_newest')).toMatchObject({ value: '12', excluded: true });
  // …but every test keeps its identity.
  expect(first.size).toBeGreaterThanOrEqual(3);
  for (const [name, r] of first) expect(second.get(name)?.historyId, name).toBe(r.historyId);

  // Allure's history (one JSON line per report) keys the second night by the same tests.
  const lines = (await readFile(join(work, 'history.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { testResults: Record<string, unknown> });
  expect(lines).toHaveLength(2);
  expect(Object.keys(lines[1]!.testResults).sort()).toEqual(Object.keys(lines[0]!.testResults).sort());
});
