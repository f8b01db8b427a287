/** `npx labrig report [dirs…]`: regenerate the report, findings and manifest from Allure results. */
import { join, relative, resolve } from 'node:path';
import { type RunContext, runContext } from '../targets/run-context.js';
import { finalizeReport } from './finalize.js';

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel;
}

/** Returns the process exit code: 0 when the report was written, 1 with the reason on stderr otherwise. */
export async function reportCommand(resultsDirs: string[], ctx: RunContext = runContext()): Promise<number> {
  const dirs = resultsDirs.length ? resultsDirs.map((d) => resolve(d)) : [join(ctx.outDir, 'allure-results')];
  try {
    const { reportDir, findingsPath, manifestPath } = await finalizeReport({
      resultsDirs: dirs,
      outDir: ctx.outDir,
      runId: ctx.runId,
      historyPath: ctx.historyPath,
      runsDir: ctx.runsDir,
    });
    process.stdout.write(
      `report:   ${shown(join(reportDir, 'index.html'))}  (serve it: npx allure open ${shown(reportDir)})\n` +
        `findings: ${shown(findingsPath)}\n` +
        `manifest: ${shown(manifestPath)}\n`,
    );
    return 0;
  } catch (e) {
    process.stderr.write(`labrig report: ${(e as Error).message}\n`);
    return 1;
  }
}
