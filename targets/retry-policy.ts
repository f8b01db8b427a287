/**
 * Only lab failures are retried. Playwright retries every failure, so each failed attempt
 * leaves its kind behind, and a retry of a product failure ends at once, saying why — it is
 * never run again. A test that passes on a lab-failure retry shows as flaky.
 */
import type { TestInfo } from '@playwright/test';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isLabError } from '../drivers/errors.js';

const attemptFile = (outDir: string, testInfo: TestInfo) => join(outDir, 'attempts', `${testInfo.testId}.json`);

export async function rememberFailure(testInfo: TestInfo, outDir: string): Promise<void> {
  const file = attemptFile(outDir, testInfo);
  if (testInfo.status === testInfo.expectedStatus) return void (await rm(file, { force: true }));
  const message = testInfo.error?.message ?? '';
  await mkdir(join(outDir, 'attempts'), { recursive: true });
  await writeFile(file, JSON.stringify({ retry: testInfo.retry, lab: isLabError(new Error(message.replace(/^\w*Error: /, ''))), message: message.slice(0, 500) }));
}

export async function refuseProductRetry(testInfo: TestInfo, outDir: string): Promise<void> {
  if (testInfo.retry === 0) return;
  const previous = await readFile(attemptFile(outDir, testInfo), 'utf8').then((t) => JSON.parse(t) as { lab: boolean; message: string }, () => undefined);
  if (previous && !previous.lab)
    throw new Error(`[product:not-retried] product failures are never retried; attempt ${testInfo.retry} refused. The first failure was:\n${previous.message}`);
}
