/**
 * Only lab failures are retried. Playwright retries every failure, so each failed attempt
 * leaves its kind behind, and a retry of a product failure ends at once, saying why — it is
 * never run again. A test that passes on a lab-failure retry shows as flaky.
 *
 * The refused retry is the test's final attempt, the one the report and findings.json are made
 * from; so the failed attempt's evidence (its attachments: findings, facts, console) is kept
 * beside its record and attached again to the refusal, with its full error message.
 */

import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestInfo } from '@playwright/test';
import { z } from 'zod';
import { isLabError } from '../drivers/errors.js';
import { parseLabJson, unreadable } from './lab-json.js';

const MAX_MESSAGE = 64 * 1024;
/**
 * Playwright's own deadline on a test, a fixture or a hook: the harness's waits each have a
 * tighter deadline of their own, so reaching the runner's means the lab stalled, not the product.
 */
export const RUNNER_TIMEOUT = /^(?:\w*Error: )?(?:Test|Worker teardown|Fixture "[^"]+"|"\w+" hook) timeout of \d+ms exceeded/;

const ALLURE_RUNTIME_MESSAGE = 'application/vnd.allure.message+json';

const attemptSchema = z.object({
  retry: z.number().int().min(0),
  lab: z.boolean(),
  message: z.string(),
  evidence: z.array(z.object({ name: z.string(), contentType: z.string(), file: z.string() })).default([]),
});
export type AttemptRecord = z.infer<typeof attemptSchema>;

const idOf = (testInfo: TestInfo) => testInfo.testId.replace(/[^\w-]/g, '_');
export const attemptFile = (outDir: string, testInfo: TestInfo) => join(outDir, 'attempts', `${idOf(testInfo)}.json`);
const evidenceDir = (outDir: string, testInfo: TestInfo) => join(outDir, 'attempts', idOf(testInfo));

/** Called once a test's attachments are made (the end of its teardown): a failure's kind, message and evidence. */
export async function rememberFailure(testInfo: TestInfo, outDir: string): Promise<void> {
  const file = attemptFile(outDir, testInfo);
  const dir = evidenceDir(outDir, testInfo);
  await rm(dir, { recursive: true, force: true });
  if (testInfo.status === testInfo.expectedStatus) return void (await rm(file, { force: true }));
  const message = testInfo.error?.message ?? '';
  await mkdir(dir, { recursive: true });
  const evidence: AttemptRecord['evidence'] = [];
  for (const [i, a] of testInfo.attachments.entries()) {
    // allure-js runtime messages (steps, parameters) belong to the attempt that made them
    if (a.contentType === ALLURE_RUNTIME_MESSAGE) continue;
    const kept = join(dir, `${i}-${a.name.replace(/[^\w.-]/g, '_')}`);
    if (a.body) await writeFile(kept, a.body);
    else if (a.path) await copyFile(a.path, kept).catch(() => undefined);
    else continue;
    evidence.push({ name: a.name, contentType: a.contentType, file: kept });
  }
  const record: AttemptRecord = {
    retry: testInfo.retry,
    lab: isLabError(new Error(message.replace(/^\w*Error: /, ''))) || RUNNER_TIMEOUT.test(message),
    message: message.slice(0, MAX_MESSAGE),
    evidence,
  };
  await writeFile(file, JSON.stringify(record));
}

/** The record of the attempt before this one; a record that cannot be read is the lab's failure, named. */
export async function readAttempt(file: string): Promise<AttemptRecord | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw unreadable('attempt record', file, e);
  }
  return parseLabJson(text, { what: 'attempt record', file, schema: attemptSchema, shape: 'an attempt record' });
}

export async function refuseProductRetry(testInfo: TestInfo, outDir: string): Promise<void> {
  if (testInfo.retry === 0) return;
  const previous = await readAttempt(attemptFile(outDir, testInfo));
  if (!previous || previous.lab) return;
  const kept: string[] = [];
  for (const e of previous.evidence) {
    const ok = await testInfo.attach(e.name, { path: e.file, contentType: e.contentType }).then(
      () => true,
      () => false,
    );
    if (ok) kept.push(e.name);
  }
  const evidence = kept.length ? `its evidence is attached here: ${kept.join(', ')}` : 'it left no evidence';
  throw new Error(
    `[product:not-retried] product failures are never retried; attempt ${testInfo.retry + 1} refused. ` +
      `Attempt ${previous.retry + 1} failed (${evidence}):\n${previous.message}`,
  );
}
