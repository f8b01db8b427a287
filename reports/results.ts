/**
 * Allure results directories as files: merging shards into one directory, and reading the
 * test results and the attachments they reference. Shards are merged by copying files,
 * because replaying Playwright blob reports into allure-playwright fails (FIELD-NOTES).
 */

import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { RUNNER_TIMEOUT } from '../targets/retry-policy.js';

export interface AllureAttachment {
  name: string;
  source: string;
  type?: string;
}

interface AllureStepLike {
  attachments?: AllureAttachment[];
  steps?: AllureStepLike[];
}

/** The part of an Allure `*-result.json` the pipeline reads. */
export interface AllureResult extends AllureStepLike {
  uuid: string;
  name: string;
  fullName?: string;
  historyId?: string;
  status?: string;
  statusDetails?: { message?: string; trace?: string };
  start?: number;
  stop?: number;
}

export interface MergeOutcome {
  /** Files copied into the merged directory. */
  copied: number;
  /** Files found in more than one input with identical content, copied once. */
  duplicates: number;
  /** Shared files (not per-test) that differed between inputs; the first one was kept. */
  warnings: string[];
}

// Per-test files carry a UUID in their name: two different contents under one name means the
// inputs are not shards of distinct runs, and picking one silently would lose evidence.
const PER_TEST_FILE = /-(?:result|container)\.json$|-attachment(?:\.|$)/;

export async function sha256File(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

async function sameContent(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([stat(a), stat(b)]);
  if (sa.size !== sb.size) return false;
  return (await sha256File(a)) === (await sha256File(b));
}

/** Copies every file of `inputs` (flat Allure results directories) into a fresh `target`. */
export async function mergeResultsDirs(inputs: string[], target: string): Promise<MergeOutcome> {
  const absTarget = resolve(target);
  const absInputs = [...new Set(inputs.map((d) => resolve(d)))];
  if (absInputs.length === 0) throw new Error('no Allure results directory given');
  if (absInputs.includes(absTarget)) {
    throw new Error(`the merged results directory ${absTarget} is also an input; choose another outDir`);
  }
  // Read every input before touching the target, so a mistyped directory leaves the last merge intact.
  const listings = await Promise.all(
    absInputs.map(async (dir) => {
      try {
        return { dir, entries: await readdir(dir, { withFileTypes: true }) };
      } catch (e) {
        throw new Error(`cannot read Allure results directory ${dir}: ${(e as Error).message}`, { cause: e });
      }
    }),
  );
  const outcome: MergeOutcome = { copied: 0, duplicates: 0, warnings: [] };
  const origin = new Map<string, string>();
  await rm(absTarget, { recursive: true, force: true });
  await mkdir(absTarget, { recursive: true });
  for (const { dir, entries } of listings) {
    for (const entry of entries) {
      if (!entry.isFile()) continue;
      const from = join(dir, entry.name);
      const to = join(absTarget, entry.name);
      const first = origin.get(entry.name);
      if (first === undefined) {
        await copyFile(from, to);
        origin.set(entry.name, from);
        outcome.copied++;
      } else if (await sameContent(first, from)) {
        outcome.duplicates++;
      } else if (PER_TEST_FILE.test(entry.name)) {
        throw new Error(`${entry.name} differs between ${first} and ${from}; refusing to merge conflicting results`);
      } else {
        outcome.warnings.push(`${entry.name}: kept ${first}, ignored differing ${from}`);
      }
    }
  }
  if (outcome.copied === 0) throw new Error(`no files in the Allure results directories ${absInputs.join(', ')}`);
  return outcome;
}

export async function readResults(dir: string): Promise<AllureResult[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('-result.json')).sort();
  const results: AllureResult[] = [];
  for (const name of names) {
    const path = join(dir, name);
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(path, 'utf8'));
    } catch (e) {
      throw new Error(`unreadable Allure result ${path}: ${(e as Error).message}`, { cause: e });
    }
    if (typeof parsed !== 'object' || parsed === null || typeof (parsed as AllureResult).uuid !== 'string') {
      throw new Error(`${path} is not an Allure test result (no uuid)`);
    }
    results.push(parsed as AllureResult);
  }
  return results;
}

/** Every attachment of a result, wherever it hangs: allure-playwright nests them in steps. */
export function attachmentsOf(node: AllureStepLike): AllureAttachment[] {
  const own = node.attachments ?? [];
  return [...own, ...(node.steps ?? []).flatMap((s) => attachmentsOf(s))];
}

// Same prefix as the lab categories in reports/allurerc.mjs: Playwright puts the class name first.
const LAB_FAILURE = /^(?:[A-Za-z_$][\w$]*: )?\[lab:[a-z-]+\]/;

/** A failure message of the lab (the product was not tested, or the runner's own deadline passed), not of the product. */
export const isLabFailure = (message: string | undefined) => LAB_FAILURE.test(message ?? '') || RUNNER_TIMEOUT.test(message ?? '');

/**
 * One result per test: a retried test leaves one result per attempt with the same historyId,
 * and the last attempt is the test's outcome.
 */
export function finalAttempts(results: AllureResult[]): AllureResult[] {
  const byTest = new Map<string, AllureResult>();
  for (const r of results) {
    const key = r.historyId ?? r.uuid;
    const seen = byTest.get(key);
    if (!seen || (r.stop ?? r.start ?? 0) >= (seen.stop ?? seen.start ?? 0)) byTest.set(key, r);
  }
  return [...byTest.values()];
}

/** Attachment files in a results directory: referenced by a result, or named as Allure names them. */
export async function attachmentFiles(dir: string, results: AllureResult[]): Promise<string[]> {
  const referenced = new Set(results.flatMap((r) => attachmentsOf(r).map((a) => a.source)));
  const names = await readdir(dir);
  return names.filter((n) => referenced.has(n) || /-attachment(?:\.|$)/.test(n)).sort();
}
