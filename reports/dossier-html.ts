/**
 * The run's report as ONE self-contained HTML file, for a dossier: the same Allure 3 config as
 * reports/finalize.ts (categories and all), with the awesome plugin's `singleFile: true`, so
 * scripts, styles and data are inlined and the page opens from a file with no server. Then the
 * same stripping and scan as the lab report (reports/external.ts): nothing may load from outside.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { findExternalLoadsInHtml, stripExternalLoads } from './external.js';
import { allureConfigPath } from './finalize.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const allureCli = join(repoRoot, 'node_modules', 'allure', 'cli.js');
const ALLURE_DEADLINE_MS = 300_000;

/** A config module that takes the lab's and changes only what a dossier needs. */
function singleFileConfig(outputDir: string, historyPath: string, trendsPage: string | undefined): string {
  return `import base from ${JSON.stringify(pathToFileURL(allureConfigPath).href)};
const awesome = base.plugins?.awesome ?? {};
export default {
  ...base,
  output: ${JSON.stringify(outputDir)},
  // A dossier shows this run; the lab's history stays the lab's and is not appended to.
  historyPath: ${JSON.stringify(historyPath)},
  globalAttachments: ${JSON.stringify(trendsPage ? [trendsPage] : [])},
  plugins: { ...base.plugins, awesome: { ...awesome, options: { ...awesome.options, singleFile: true } } },
};
`;
}

/**
 * Generates, strips and checks; returns the page. Throws naming what would still load from outside.
 * `trendsPage` (reports/trend-page.ts) is embedded as a global attachment: the charts are in the page.
 */
export async function singleFileReport(resultsDir: string, trendsPage?: string): Promise<string> {
  const work = await mkdtemp(join(tmpdir(), 'labrig-dossier-report-'));
  try {
    const outputDir = join(work, 'report');
    const configPath = join(work, 'allurerc.mjs');
    await writeFile(configPath, singleFileConfig(outputDir, join(work, 'history.jsonl'), trendsPage));
    const args = [allureCli, 'generate', '--config', configPath, '--output', outputDir, resultsDir];
    const r = await execa(process.execPath, args, {
      cwd: repoRoot,
      env: { NO_COLOR: '1', FORCE_COLOR: '0' },
      all: true,
      reject: false,
      timeout: ALLURE_DEADLINE_MS,
    });
    if (r.exitCode !== 0 || r.timedOut) {
      const why = r.timedOut ? `did not finish within ${ALLURE_DEADLINE_MS / 1000} s` : `exited with ${r.exitCode ?? r.signal}`;
      throw new Error(`allure generate (single file) ${why}: node ${args.join(' ')}\n${r.all ?? ''}`);
    }
    let html: string;
    try {
      html = await readFile(join(outputDir, 'index.html'), 'utf8');
    } catch (e) {
      throw new Error(`allure generate wrote no single-file ${join(outputDir, 'index.html')}\n${r.all ?? ''}`, { cause: e });
    }
    const page = stripExternalLoads(html);
    const remaining = findExternalLoadsInHtml(page, 'report.html');
    if (remaining.length) {
      throw new Error(
        `the single-file report would still load from outside:\n${remaining.map((l) => `  report.html:${l.line}: ${l.what}`).join('\n')}`,
      );
    }
    // singleFile inlines everything; a local script or stylesheet still named would be missing from the dossier.
    const localRefs = [...page.matchAll(/<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*["']?([^"'\s>]+)/gi)]
      .map((m) => m[1]!)
      .filter((ref) => !/^(?:data|blob):/i.test(ref));
    if (localRefs.length) throw new Error(`the single-file report still references files beside it: ${localRefs.join(', ')}`);
    return page;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
