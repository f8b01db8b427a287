/**
 * The exit code of a run from its results (reports/verdict.ts), and junit.xml as CI servers read
 * it (reports/junit.ts) — on a junit.xml Playwright 1.65 wrote for lab, product, passing and
 * skipped tests on two projects (test/recorded/playwright-junit-1.65.xml).
 */

import { readFile } from 'node:fs/promises';
import { expect, test } from '@playwright/test';
import { XMLParser } from 'fast-xml-parser';
import { junitWithLabErrors } from '../reports/junit.js';
import type { AllureResult } from '../reports/results.js';
import { runVerdict } from '../reports/verdict.js';

const result = (name: string, status: string, message?: string, stop = 1): AllureResult =>
  ({
    uuid: `${name}-${stop}`,
    historyId: name,
    name,
    fullName: name,
    status,
    stop,
    ...(message ? { statusDetails: { message } } : {}),
  }) as AllureResult;

test('exit codes: 0 passed, 1 product failure, 3 lab failure / quarantine / nothing tested / runner error / interrupted', () => {
  const ok = result('a', 'passed');
  expect(runVerdict({ results: [ok], quarantined: [], runnerExit: 0 }).code).toBe(0);
  expect(
    runVerdict({ results: [ok, result('b', 'failed', 'Error: [product:panic] host x: Kernel panic')], quarantined: [], runnerExit: 1 })
      .code,
  ).toBe(1);
  // A plain expect failure is a product failure too.
  expect(runVerdict({ results: [result('b', 'failed', 'expect(received).toBe(expected)')], quarantined: [], runnerExit: 1 }).code).toBe(1);
  expect(
    runVerdict({ results: [ok, result('b', 'broken', 'LabError: [lab:unreachable] host x')], quarantined: [], runnerExit: 1 }).code,
  ).toBe(3);
  expect(runVerdict({ results: [result('a', 'skipped', '[lab:quarantined] x')], quarantined: ['x'], runnerExit: 0 })).toEqual({
    code: 3,
    why: 'quarantined: x',
  });
  expect(runVerdict({ results: [], quarantined: [], runnerExit: 0 })).toEqual({ code: 3, why: 'nothing was tested' });
  expect(runVerdict({ results: [ok], quarantined: [], runnerExit: 1 }).code).toBe(3);
  // Playwright's own deadline is the lab's: the harness's own waits have tighter ones.
  expect(runVerdict({ results: [result('b', 'failed', 'Test timeout of 900000ms exceeded.')], quarantined: [], runnerExit: 1 }).code).toBe(
    3,
  );
  expect(
    runVerdict({
      results: [result('b', 'failed', 'Error: Fixture "leasedHost" timeout of 60000ms exceeded during setup.')],
      quarantined: [],
      runnerExit: 1,
    }).code,
  ).toBe(3);
  expect(runVerdict({ results: [ok], quarantined: [], runnerExit: 0, interrupted: true }).code).toBe(3);
  // A product failure outranks a quarantined host; a lab failure retried into a pass counts as passed.
  expect(runVerdict({ results: [result('b', 'failed', '[product:mismatch] y')], quarantined: ['x'], runnerExit: 1 }).code).toBe(1);
  expect(
    runVerdict({
      results: [result('a', 'broken', '[lab:unreachable] x', 1), result('a', 'passed', undefined, 2)],
      quarantined: [],
      runnerExit: 0,
    }).code,
  ).toBe(0);
});

test('junit: lab failures are <error>, product failures <failure>, each test named with its host, counts follow', async () => {
  const xml = junitWithLabErrors(await readFile('test/recorded/playwright-junit-1.65.xml', 'utf8'));
  type Case = { name: string; error?: { message: string }; failure?: { message: string } };
  const doc = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '',
    isArray: (n) => n === 'testsuite' || n === 'testcase',
  }).parse(xml) as {
    testsuites: { errors: string; failures: string; testsuite: { hostname: string; errors: string; failures: string; testcase: Case[] }[] };
  };
  const cases = doc.testsuites.testsuite.flatMap((s) => s.testcase);
  const byName = new Map(cases.map((c) => [c.name, c]));
  expect(byName.get('[emu-mini] lab fails')?.error?.message).toMatch(/^\[lab:unreachable\]/);
  expect(byName.get('[emu-mini] lab fails')?.failure).toBeUndefined();
  expect(byName.get('[emu-xen] product fails')?.failure?.message).toMatch(/^\[product:panic\]/);
  expect(byName.get('[emu-xen] product fails')?.error).toBeUndefined();
  expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  expect(doc.testsuites).toMatchObject({ errors: '2', failures: '2' });
  for (const s of doc.testsuites.testsuite) expect(s).toMatchObject({ errors: '1', failures: '1' });
});
