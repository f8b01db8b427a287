/**
 * The end of a run: merge the Allure results of every shard, generate the HTML report with the
 * Allure 3 CLI, make it self-contained, and write findings.json and manifest.json beside it.
 */
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { componentsFile } from '../targets/components.js';
import { runContext } from '../targets/run-context.js';
import { collectEvidence } from './evidence.js';
import { makeReportSelfContained } from './external.js';
import { rewriteJunit } from './junit.js';
import { mergeResultsDirs, readResults, sha256File } from './results.js';
import { TRENDS_PAGE, writeTrendsPage } from './trend-page.js';
import { currentRun } from './trend-runs.js';

export interface FinalizeOptions {
  resultsDirs: string[];
  outDir: string;
  runId?: string;
  gitRevision?: string;
  /** Allure history (JSON lines) to read and append to; default the run context's. */
  historyPath?: string;
  /** The kept runs the trend page is drawn from; default <outDir>/../runs, where cli/archive.ts keeps them. */
  runsDir?: string;
}

export interface FinalizedReport {
  reportDir: string;
  findingsPath: string;
  manifestPath: string;
}

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
export const allureConfigPath = join(repoRoot, 'reports', 'allurerc.mjs');
const allureCli = join(repoRoot, 'node_modules', 'allure', 'cli.js');
const ALLURE_DEADLINE_MS = 300_000;

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function packageVersion(name: string): Promise<string | null> {
  try {
    const pkg = JSON.parse(await readFile(join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? null;
  } catch {
    return null;
  }
}

async function currentRevision(): Promise<string | null> {
  const r = await execa('git', ['rev-parse', 'HEAD'], { cwd: repoRoot, reject: false, timeout: 10_000 });
  return r.exitCode === 0 ? r.stdout.trim() : null;
}

/** `allure generate --config reports/allurerc.mjs --output <reportDir> <resultsDir>`; its output is shown only on failure. */
export async function generateAllureReport(resultsDir: string, reportDir: string, historyPath: string, trendsPage?: string): Promise<void> {
  if (!(await exists(allureCli))) throw new Error(`Allure 3 CLI not found at ${allureCli}; run npm ci`);
  await rm(reportDir, { recursive: true, force: true });
  const args = [allureCli, 'generate', '--config', allureConfigPath, '--output', reportDir, resultsDir];
  const r = await execa(process.execPath, args, {
    cwd: repoRoot,
    env: { LABRIG_HISTORY: historyPath, LABRIG_TRENDS_PAGE: trendsPage ?? '', NO_COLOR: '1', FORCE_COLOR: '0' },
    all: true,
    reject: false,
    timeout: ALLURE_DEADLINE_MS,
  });
  if (r.exitCode !== 0 || r.timedOut) {
    const why = r.timedOut ? `did not finish within ${ALLURE_DEADLINE_MS / 1000} s` : `exited with ${r.exitCode ?? r.signal}`;
    throw new Error(`allure generate ${why}: node ${args.join(' ')}\n${r.all ?? ''}`);
  }
  if (!(await exists(join(reportDir, 'index.html')))) {
    throw new Error(`allure generate wrote no ${join(reportDir, 'index.html')}\n${r.all ?? ''}`);
  }
}

/** The page is a single-page app: every local script and stylesheet it names must be in the report. */
async function assertPageAssetsPresent(reportDir: string): Promise<void> {
  const html = await readFile(join(reportDir, 'index.html'), 'utf8');
  const refs = [...html.matchAll(/<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*["']?([^"'\s>]+)/gi)].map((m) => m[1]!);
  const missing: string[] = [];
  for (const ref of refs) {
    if (/^(?:data|blob):/i.test(ref)) continue;
    if (!(await exists(join(reportDir, decodeURI(ref.split(/[?#]/)[0]!))))) missing.push(ref);
  }
  if (missing.length) throw new Error(`report ${reportDir}/index.html references missing files: ${missing.join(', ')}`);
}

export async function finalizeReport(opts: FinalizeOptions): Promise<FinalizedReport> {
  const outDir = resolve(opts.outDir);
  const mergedDir = join(outDir, 'allure-results-merged');
  const reportDir = join(outDir, 'allure-report');
  const findingsPath = join(outDir, 'findings.json');
  const manifestPath = join(outDir, 'manifest.json');
  const historyPath = resolve(opts.historyPath ?? runContext().historyPath);
  await mkdir(outDir, { recursive: true });

  const merge = await mergeResultsDirs(opts.resultsDirs, mergedDir);
  const results = await readResults(mergedDir);
  if (results.length === 0) throw new Error(`no Allure test results (*-result.json) in ${opts.resultsDirs.join(', ')}`);

  const runId = opts.runId ?? runContext().runId;
  const createdAt = new Date().toISOString();
  const evidence = await collectEvidence(mergedDir, results);
  // The kept runs and this one, charted; the report carries the page as a global attachment.
  const trendsPath = join(outDir, TRENDS_PAGE);
  const trends = await writeTrendsPage(trendsPath, {
    runsDir: opts.runsDir ?? runContext().runsDir,
    current: currentRun(runId, createdAt, evidence.findings, evidence.hosts),
  });

  await mkdir(resolve(historyPath, '..'), { recursive: true });
  await generateAllureReport(mergedDir, reportDir, historyPath, trendsPath);
  const { rewritten, remaining } = await makeReportSelfContained(reportDir);
  if (remaining.length) {
    const list = remaining.map((l) => `  ${l.file}:${l.line}: ${l.what}`).join('\n');
    throw new Error(`report ${reportDir} would still load from outside:\n${list}`);
  }
  await assertPageAssetsPresent(reportDir);

  const fromOut = (p: string): string => relative(outDir, p).split('\\').join('/');
  const junitPath = join(outDir, 'junit.xml');
  if (await exists(junitPath)) await rewriteJunit(junitPath);
  const junit = (await exists(junitPath)) ? { path: fromOut(junitPath), sha256: await sha256File(junitPath) } : null;

  await writeFile(findingsPath, `${JSON.stringify(evidence.findings, null, 2)}\n`);
  const manifest = {
    runId,
    gitRevision: opts.gitRevision ?? (await currentRevision()),
    createdAt,
    tools: { node: process.version, allure: await packageVersion('allure'), playwright: await packageVersion('@playwright/test') },
    resultsDirs: opts.resultsDirs.map((d) => resolve(d)),
    hosts: evidence.hosts,
    // what the main job put on the hosts before the run (version validation); facts say what ran
    components: await readFile(componentsFile(outDir), 'utf8').then(
      (t) => JSON.parse(t) as unknown,
      () => null,
    ),
    tests: evidence.tests,
    attempts: evidence.attempts,
    countsByStatus: evidence.countsByStatus,
    // Paths are relative to this manifest's directory.
    report: fromOut(join(reportDir, 'index.html')),
    findings: fromOut(findingsPath),
    trends: { page: fromOut(trendsPath), runs: trends.runs, charts: trends.charts },
    junit,
    history: historyPath,
    attachments: Object.fromEntries(Object.entries(evidence.attachments).map(([name, sha]) => [fromOut(join(mergedDir, name)), sha])),
    reportRewritten: rewritten,
    warnings: [...merge.warnings, ...evidence.warnings, ...trends.warnings],
  };
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  return { reportDir, findingsPath, manifestPath };
}
