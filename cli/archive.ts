/**
 * Each run is kept as `<runsDir>/<runId>/` (reports/runs by default): what `compare` and `dossier` read.
 *   allure-results/  findings.json  manifest.json  junit.xml  logs/ (console and shell logs)
 *   lab.json         the lab as it was used: parsed config, secrets only as env-var names
 */

import { existsSync } from 'node:fs';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunContext } from '../targets/run-context.js';
import type { Lab } from '../targets/schema.js';

export async function archiveRun(opts: RunContext & { lab: Lab }): Promise<string> {
  const dir = join(opts.runsDir, opts.runId);
  await mkdir(dir, { recursive: true });
  for (const name of ['allure-results', 'allure-results-merged', 'findings.json', 'manifest.json', 'junit.xml'])
    if (existsSync(join(opts.outDir, name))) await cp(join(opts.outDir, name), join(dir, name), { recursive: true });
  const logs = join(opts.outDir, 'logs', opts.runId);
  if (existsSync(logs)) await cp(logs, join(dir, 'logs'), { recursive: true });
  await writeFile(join(dir, 'lab.json'), `${JSON.stringify(opts.lab, null, 2)}\n`);
  return dir;
}
