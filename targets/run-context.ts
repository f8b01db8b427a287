/**
 * One run's context: its id, the output folder, the runs archive, the Allure history and the
 * lab as resolved for this run. `labrig run` resolves it once and hands it to Playwright and its
 * workers through the environment (LABRIG_*), so every process writes to the same places.
 * A plain `playwright test` resolves the same defaults.
 */
import { randomUUID } from 'node:crypto';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabError } from '../drivers/errors.js';

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));

export interface RunContext {
  runId: string;
  /** Results, report, findings, manifest, logs of this run (absolute). */
  outDir: string;
  /** Where finished runs are archived, `<runsDir>/<runId>/` (absolute). */
  runsDir: string;
  /** Allure's history, JSON lines, kept across nights (absolute). */
  historyPath: string;
  /** The lab as resolved for this run (JSON written by `labrig run`), when there is one. */
  labFile?: string;
}

// A run id names folders and goes into log lines and command lines on hosts: nothing else.
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function newRunId(): string {
  return `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`;
}

export function checkRunId(id: string): string {
  if (!RUN_ID.test(id))
    throw new LabError(
      'config',
      `run id ${JSON.stringify(id.slice(0, 160))} is not a run id: letters, digits, '.', '_' and '-', at most 128, starting with a letter or digit (LABRIG_RUN_ID)`,
    );
  return id;
}

const absolute = (path: string, base: string) => (isAbsolute(path) ? path : resolve(base, path));

/** The runs archive: LABRIG_RUNS_DIR, or reports/runs of the checkout. */
export const runsDirOf = (env: NodeJS.ProcessEnv = process.env) =>
  env.LABRIG_RUNS_DIR ? absolute(env.LABRIG_RUNS_DIR, process.cwd()) : join(repoRoot, 'reports', 'runs');

/**
 * The context from the environment, falling back to the lab's `outDir` (relative to `configDir`)
 * and then to the checkout's reports/. Mints a run id when none is given.
 */
export function resolveRunContext(opts: { env?: NodeJS.ProcessEnv; labOutDir?: string; configDir?: string } = {}): RunContext {
  const env = opts.env ?? process.env;
  const cwd = process.cwd();
  const outDir = env.LABRIG_OUT_DIR
    ? absolute(env.LABRIG_OUT_DIR, cwd)
    : opts.labOutDir
      ? absolute(opts.labOutDir, opts.configDir ?? cwd)
      : join(repoRoot, 'reports', 'out');
  return {
    runId: checkRunId(env.LABRIG_RUN_ID || newRunId()),
    outDir,
    runsDir: runsDirOf(env),
    historyPath: env.LABRIG_HISTORY ? absolute(env.LABRIG_HISTORY, cwd) : join(repoRoot, 'reports', 'history', 'history.jsonl'),
    ...(env.LABRIG_LAB_FILE ? { labFile: absolute(env.LABRIG_LAB_FILE, cwd) } : {}),
  };
}

/** The environment that hands a context to child processes. */
export function runContextEnv(ctx: RunContext): Record<string, string> {
  return {
    LABRIG_RUN_ID: ctx.runId,
    LABRIG_OUT_DIR: ctx.outDir,
    LABRIG_RUNS_DIR: ctx.runsDir,
    LABRIG_HISTORY: ctx.historyPath,
    ...(ctx.labFile ? { LABRIG_LAB_FILE: ctx.labFile } : {}),
  };
}

let current: RunContext | undefined;

/** This process's context, resolved once; the run id is pinned in the environment for children. */
export function runContext(): RunContext {
  if (!current) {
    current = resolveRunContext();
    process.env.LABRIG_RUN_ID = current.runId;
  }
  return current;
}

export const logsDirOf = (ctx: RunContext) => join(ctx.outDir, 'logs', ctx.runId);
