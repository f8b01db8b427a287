/**
 * The main job. The default (emulated) lab is brought up and down around the run; a real lab
 * (LABRIG_CONFIG) is used as it is. First a health check (LAVA's idea): a host that fails
 * `doctor` is quarantined — its tests are skipped with the reason — and the others go on.
 * Then every suite, the report, and the run archived under reports/runs/<runId>/.
 */
import { execa } from 'execa';
import { randomUUID } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { defaultOutDir, reportCommand } from '../reports/cli.js';
import { loadLab } from '../targets/config.js';
import { applyLabComponents, componentsFile, hasComponents } from '../targets/components.js';
import { doctor } from '../targets/doctor.js';
import { labCommand } from '../targets/emulated/cli.js';
import { quarantineFile, type Quarantine } from '../targets/quarantine.js';
import { archiveRun } from './archive.js';

const say = (line: string) => process.stderr.write(`labrig: ${line}\n`);

export async function runCommand(playwrightArgs: string[]): Promise<number> {
  const emulated = !process.env.LABRIG_CONFIG;
  const runId = process.env.LABRIG_RUN_ID ?? `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`;
  await rm(join(defaultOutDir, 'allure-results'), { recursive: true, force: true });
  await rm(componentsFile(defaultOutDir), { force: true });
  if (emulated) {
    say('bringing the emulated lab up');
    const up = await labCommand('up');
    if (up !== 0) {
      await labCommand('down');
      return up;
    }
  }
  let testCode = 1;
  let archived: string | undefined;
  const quarantine: Quarantine = {};
  try {
    const lab = await loadLab();
    if (lab.hosts.some(hasComponents)) {
      say('putting the configured component versions on the hosts');
      const { record, failed } = await applyLabComponents(lab, join(defaultOutDir, 'logs'), (l) => say(`  ${l}`));
      await writeFile(componentsFile(defaultOutDir), JSON.stringify(record, null, 2));
      Object.assign(quarantine, Object.fromEntries(Object.entries(failed).map(([h, why]) => [h, `components: ${why}`])));
    }
    say('health check of every host (labrig doctor)');
    for (const c of await doctor(lab)) {
      process.stderr.write(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.host.padEnd(14)} ${c.check.padEnd(8)} ${c.detail}\n`);
      if (!c.ok) quarantine[c.host] = [quarantine[c.host], `${c.check}: ${c.detail}`].filter(Boolean).join('; ');
    }
    await writeFile(quarantineFile(defaultOutDir), JSON.stringify(quarantine, null, 2));
    for (const [host, why] of Object.entries(quarantine)) say(`quarantined ${host}: its tests are skipped (${why})`);
    say(`run ${runId}`);
    const r = await execa('npx', ['playwright', 'test', ...playwrightArgs], { stdio: 'inherit', reject: false, env: { LABRIG_RUN_ID: runId, LABRIG_QUARANTINE: quarantineFile(defaultOutDir) } });
    testCode = r.exitCode ?? 1;
    const reportCode = await reportCommand([join(defaultOutDir, 'allure-results')], { runId });
    archived = await archiveRun({ outDir: defaultOutDir, runId, lab });
    testCode ||= reportCode;
  } finally {
    if (emulated) {
      say('bringing the emulated lab down');
      await labCommand('down');
    }
  }
  process.stdout.write(`run:      ${relative(process.cwd(), archived ?? '')}\n`);
  const q = Object.keys(quarantine);
  if (q.length) process.stdout.write(`quarantined: ${q.join(', ')} (see the health check above; their tests are skipped)\n`);
  return testCode;
}
