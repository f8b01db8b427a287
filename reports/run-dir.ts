/**
 * An archived run, `reports/runs/<runId>/` (cli/archive.ts), named by its id or by a path, and
 * read into what compare needs: findings, per-host facts from the manifest, test outcomes.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { runsDirOf } from '../targets/run-context.js';
import type { RunSnapshot, TestOutcome } from './compare.js';
import type { RecordedFinding } from './evidence.js';
import { type AllureResult, finalAttempts, isLabFailure, readResults } from './results.js';

/** Where `labrig run` archives runs (cli/archive.ts). */
export const defaultRunsDir = runsDirOf();

const recordedFindingSchema = z.object({
  suite: z.string(),
  host: z.string(),
  key: z.string(),
  value: z.union([z.string(), z.number(), z.boolean()]),
  unit: z.string().optional(),
  test: z.string(),
  status: z.string(),
});

const runManifestSchema = z.looseObject({
  runId: z.string().nullish(),
  gitRevision: z.string().nullish(),
  hosts: z
    .record(z.string(), z.looseObject({ facts: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])) }))
    .default({}),
});
export type RunManifest = z.infer<typeof runManifestSchema>;

async function isDir(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** A path to a run directory, or a run id (or an unambiguous prefix of one) under `runsDir`. */
export async function resolveRunDir(nameOrPath: string, runsDir = defaultRunsDir): Promise<string> {
  if (await isDir(nameOrPath)) return resolve(nameOrPath);
  const known = (await isDir(runsDir)) ? (await readdir(runsDir)).sort() : [];
  if (!nameOrPath.includes('/')) {
    if (known.includes(nameOrPath)) return join(runsDir, nameOrPath);
    const prefixed = known.filter((id) => id.startsWith(nameOrPath));
    if (prefixed.length === 1) return join(runsDir, prefixed[0]!);
    if (prefixed.length > 1) throw new Error(`run "${nameOrPath}" is ambiguous under ${runsDir}: ${prefixed.join(', ')}`);
  }
  const latest = known.slice(-5).join(', ') || 'none';
  throw new Error(`no run "${nameOrPath}": not a directory, and not a run id under ${runsDir} (latest: ${latest})`);
}

async function readJson(path: string, what: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read the ${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
}

export async function readRunFindings(runDir: string): Promise<RecordedFinding[]> {
  const path = join(runDir, 'findings.json');
  const parsed = z.array(recordedFindingSchema).safeParse(await readJson(path, 'findings'));
  if (!parsed.success) throw new Error(`${path} is not a findings list: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

export async function readRunManifest(runDir: string): Promise<RunManifest> {
  const path = join(runDir, 'manifest.json');
  const parsed = runManifestSchema.safeParse(await readJson(path, 'manifest'));
  if (!parsed.success) throw new Error(`${path} is not a run manifest: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** The Allure results a run was reported from: the merged shards when the archive kept them. */
export function runResultsDir(runDir: string): string | null {
  for (const name of ['allure-results-merged', 'allure-results']) if (existsSync(join(runDir, name))) return join(runDir, name);
  return null;
}

/** The lines that say why: the error kinds and tool errors, not the retry preface. */
export function failureGist(message: string): string {
  const lines = message
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const telling = lines.filter((l) => !/\[product:not-retried\]/.test(l) && /\[(product|lab):|error:|Error:/.test(l));
  return (telling.length ? telling.slice(0, 3) : lines.slice(0, 1)).join(' | ').slice(0, 500);
}

function outcomeOf(r: AllureResult & { parameters?: { name: string; value: string }[] }): TestOutcome {
  const project = r.parameters?.find((p) => p.name === 'Project')?.value;
  return {
    ...(project ? { project } : {}),
    name: r.fullName ?? r.name,
    status: r.status ?? 'unknown',
    labFailure: isLabFailure(r.statusDetails?.message),
    ...(r.statusDetails?.message ? { message: failureGist(r.statusDetails.message) } : {}),
  };
}

export async function loadRunSnapshot(nameOrPath: string, runsDir = defaultRunsDir): Promise<RunSnapshot> {
  const dir = await resolveRunDir(nameOrPath, runsDir);
  const [findings, manifest] = await Promise.all([readRunFindings(dir), readRunManifest(dir)]);
  const resultsDir = runResultsDir(dir);
  // Without results, the tests that recorded findings still say how they ended.
  const tests = resultsDir
    ? finalAttempts(await readResults(resultsDir)).map(outcomeOf)
    : [...new Map(findings.map((f) => [f.test, { name: f.test, status: f.status, labFailure: false }])).values()];
  return {
    label: nameOrPath,
    runId: manifest.runId ?? null,
    gitRevision: manifest.gitRevision ?? null,
    findings,
    hosts: Object.fromEntries(Object.entries(manifest.hosts).map(([h, v]) => [h, v.facts])),
    tests,
  };
}
