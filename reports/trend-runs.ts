/**
 * The kept runs a trend is drawn from: every `<runsDir>/<runId>/` with a findings.json and a
 * manifest.json (cli/archive.ts). A run that cannot be read is left out with a warning, never
 * the whole trend.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { RecordedFinding } from './evidence.js';
import { readRunFindings, readRunManifest } from './run-dir.js';
import type { TrendRun } from './trend.js';

export interface KeptRuns {
  runs: TrendRun[];
  warnings: string[];
}

export async function readTrendRun(runDir: string): Promise<TrendRun> {
  const [findings, manifest] = await Promise.all([readRunFindings(runDir), readRunManifest(runDir)]);
  const createdAt = (manifest as Record<string, unknown>).createdAt;
  return {
    runId: manifest.runId ?? basename(runDir),
    createdAt: typeof createdAt === 'string' ? createdAt : null,
    findings,
    hosts: Object.fromEntries(Object.entries(manifest.hosts).map(([h, v]) => [h, v.facts])),
  };
}

/** Every run under `runsDir`; a missing directory is no runs, not an error. */
export async function readKeptRuns(runsDir: string): Promise<KeptRuns> {
  const entries = await readdir(runsDir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw new Error(`cannot read the runs directory ${runsDir}: ${e.message}`, { cause: e });
  });
  const runs: TrendRun[] = [];
  const warnings: string[] = [];
  for (const e of entries.filter((d) => d.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const dir = join(runsDir, e.name);
    if (!existsSync(join(dir, 'findings.json'))) continue;
    try {
      runs.push(await readTrendRun(dir));
    } catch (err) {
      warnings.push(`run ${e.name} left out: ${(err as Error).message}`);
    }
  }
  return { runs, warnings };
}

/** The run being reported, before it is archived: what finalize has just collected. */
export function currentRun(
  runId: string,
  createdAt: string,
  findings: RecordedFinding[],
  hosts: Record<string, { facts: TrendRun['hosts'][string] }>,
): TrendRun {
  return { runId, createdAt, findings, hosts: Object.fromEntries(Object.entries(hosts).map(([h, v]) => [h, v.facts])) };
}

/** Kept runs plus the current one; a kept run of the same id (a report made again) is replaced. */
export function withCurrent(kept: TrendRun[], current: TrendRun): TrendRun[] {
  return [...kept.filter((r) => r.runId !== current.runId), current];
}
