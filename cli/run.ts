/**
 * The main job: the default (emulated) lab is brought up and down around the run; a real lab
 * (LABRIG_CONFIG) is used as it is. Every suite runs, then the report is written.
 */
import { execa } from 'execa';
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { reportCommand, defaultOutDir } from '../reports/cli.js';
import { labCommand } from '../targets/emulated/cli.js';

export async function runCommand(playwrightArgs: string[]): Promise<number> {
  const emulated = !process.env.LABRIG_CONFIG;
  const runId = process.env.LABRIG_RUN_ID ?? `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`;
  const resultsDir = join(defaultOutDir, 'allure-results');
  await rm(resultsDir, { recursive: true, force: true });
  if (emulated) {
    process.stderr.write('labrig: bringing the emulated lab up\n');
    const up = await labCommand('up');
    if (up !== 0) {
      await labCommand('down');
      return up;
    }
  }
  let testCode = 1;
  try {
    process.stderr.write(`labrig: run ${runId}\n`);
    const r = await execa('npx', ['playwright', 'test', ...playwrightArgs], { stdio: 'inherit', reject: false, env: { LABRIG_RUN_ID: runId } });
    testCode = r.exitCode ?? 1;
  } finally {
    if (emulated) {
      process.stderr.write('labrig: bringing the emulated lab down\n');
      await labCommand('down');
    }
  }
  const reportCode = await reportCommand([resultsDir]);
  return testCode || reportCode;
}
