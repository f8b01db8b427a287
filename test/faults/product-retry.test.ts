/**
 * Fault: a product failure on the first attempt, on a lab with lab-failure retries. Through the
 * real lab fixtures on a real sshd: the retry is refused without running the test again, and the
 * refused attempt — the one the report and findings.json are made from — carries the failed
 * attempt's findings, console and facts, and its error. A lab failure is still run again.
 */

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { finalizeReport } from '../../reports/finalize.js';
import { type AllureResult, attachmentsOf, readResults } from '../../reports/results.js';
import { FAULT_HOST, type FaultRun, runFaultProject } from '../fixtures/faults/run.js';
import { testSshd } from '../helpers/sshd.js';

let work = '';
let cleanup: (() => Promise<void>) | undefined;
let run: FaultRun;
let results: AllureResult[] = [];

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  test.setTimeout(360_000);
  work = await mkdtemp(join(tmpdir(), 'labrig-fault-retry-'));
  const sshd = await testSshd();
  cleanup = sshd.cleanup;
  run = await runFaultProject(work, sshd.config, { grep: '@retry', runId: 'fault-retry', env: {} });
  expect(run.exitCode, run.output).toBe(1);
  await finalizeReport({
    resultsDirs: [join(run.outDir, 'allure-results')],
    outDir: run.outDir,
    runId: run.runId,
    gitRevision: 'test',
    historyPath: join(work, 'history.jsonl'),
  });
  results = await readResults(join(run.outDir, 'allure-results-merged'));
});

test.afterAll(async () => {
  await cleanup?.();
  if (work) await rm(work, { recursive: true, force: true });
});

const attemptsOf = (name: string) => results.filter((r) => r.name === name).sort((a, b) => (a.start ?? 0) - (b.start ?? 0));

test('the product failure ran once; its retry was refused and says what attempt 1 found', async () => {
  const attempts = attemptsOf('a product failure keeps its findings @retry');
  expect(attempts.map((a) => a.status)).toEqual(['failed', 'failed']);
  const [first, refused] = attempts as [AllureResult, AllureResult];
  expect(first.statusDetails?.message).toContain('[product:mismatch]');
  expect(refused.statusDetails?.message).toContain('[product:not-retried]');
  expect(refused.statusDetails?.message).toContain('attempt 2 refused');
  expect(refused.statusDetails?.message).toContain('ceiling 15, the host config expects 28');
  // The test body never ran again: no command of it on the host.
  const stepNames = (n: { name?: string; steps?: unknown[] }): string[] => [
    n.name ?? '',
    ...((n.steps ?? []) as { name?: string }[]).flatMap(stepNames),
  ];
  expect(stepNames(first).some((t) => t.includes('echo ceiling probe'))).toBe(true);
  expect(stepNames(refused).some((t) => t.includes('echo ceiling probe'))).toBe(false);
  // The evidence of attempt 1 is on the final attempt, under the names the report and findings.json read.
  const names = attachmentsOf(refused).map((a) => a.name);
  expect(names).toEqual(expect.arrayContaining(['labrig-findings.json', `console-${FAULT_HOST}.log`, 'labrig-facts.json']));
  const findingsAttachment = attachmentsOf(refused).find((a) => a.name === 'labrig-findings.json')!;
  const carried = JSON.parse(await readFile(join(run.outDir, 'allure-results-merged', findingsAttachment.source), 'utf8')) as {
    key: string;
    value: unknown;
  }[];
  expect(carried).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ key: 'ceiling', value: 15 }),
      expect.objectContaining({ key: 'probe_output', value: 'ceiling probe' }),
    ]),
  );
});

test("findings.json holds the failed attempt's findings, marked failed", async () => {
  const findings = JSON.parse(await readFile(join(run.outDir, 'findings.json'), 'utf8')) as {
    key: string;
    value: unknown;
    status: string;
    test: string;
  }[];
  const product = findings.filter((f) => f.test.includes('a product failure keeps its findings')).map((f) => [f.key, f.value, f.status]);
  expect(product).toEqual(
    expect.arrayContaining([
      ['ceiling', 15, 'failed'],
      ['probe_output', 'ceiling probe', 'failed'],
    ]),
  );
});

test('a lab failure is still run again, and its second attempt is what counts', async () => {
  const attempts = attemptsOf('a lab failure is run again @retry');
  expect(attempts.map((a) => a.status)).toEqual(['failed', 'passed']);
  expect(attempts[0]!.statusDetails?.message).toContain('[lab:unreachable]');
  const findings = JSON.parse(await readFile(join(run.outDir, 'findings.json'), 'utf8')) as {
    key: string;
    value: unknown;
    status: string;
    test: string;
  }[];
  expect(findings.filter((f) => f.test.includes('a lab failure is run again')).map((f) => [f.key, f.value, f.status])).toContainEqual([
    'attempt',
    2,
    'passed',
  ]);
});
