/**
 * The main job. The emulated lab (no LABRIG_CONFIG) is brought up for the hosts the run needs and
 * down afterwards (hosts that were already up stay up); a real lab is used as it is. First a
 * health check (LAVA's idea): a host that fails `doctor` is quarantined — its tests are skipped
 * with the reason — and the others go on. Then every suite, the report, the run archived under
 * <runsDir>/<runId>/, and an exit code that says what happened (reports/verdict.ts).
 */

import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { reportCommand } from '../reports/cli.js';
import { redactRunOutput } from '../reports/redact.js';
import { readResults } from '../reports/results.js';
import { EXIT, runVerdict } from '../reports/verdict.js';
import { applyLabComponents, componentsFile, hasComponents } from '../targets/components.js';
import { configDir, loadLab, writeResolvedLab } from '../targets/config.js';
import { doctor } from '../targets/doctor.js';
import { labCommand } from '../targets/emulated/cli.js';
import { labDown, labHostNames, labStatus } from '../targets/emulated/lab.js';
import { type Quarantine, quarantineFile } from '../targets/quarantine.js';
import { type RunContext, repoRoot, resolveRunContext, runContextEnv } from '../targets/run-context.js';
import type { Lab } from '../targets/schema.js';
import { archiveRun } from './archive.js';
import { UsageError } from './host-args.js';
import { onInterrupt } from './interrupt.js';

const say = (line: string) => process.stderr.write(`labrig: ${line}\n`);
const playwrightCli = join(repoRoot, 'node_modules', '@playwright', 'test', 'cli.js');

/** The hosts named by `--project=X` / `--project X` (a project is a host). */
export function projectsOf(args: readonly string[]): string[] {
  const names: string[] = [];
  args.forEach((a, i) => {
    if (a.startsWith('--project=')) names.push(...a.slice('--project='.length).split(','));
    else if (a === '--project' && args[i + 1]) names.push(...args[i + 1]!.split(','));
  });
  return names.filter(Boolean);
}

/** Emulated lab: up only the hosts the run needs; returns the ones this run started (and will stop). */
async function bringUpEmulated(wanted: readonly string[], signal: AbortSignal): Promise<{ code: number; started: string[] }> {
  const alreadyUp = new Set((await labStatus()).filter((r) => r.state === 'up').map((r) => r.name));
  const started = wanted.filter((h) => !alreadyUp.has(h));
  if (alreadyUp.size)
    say(`already up, left up after the run: ${[...alreadyUp].filter((h) => wanted.includes(h)).join(', ') || 'none of this run'}`);
  if (started.length) say(`bringing the emulated lab up: ${started.join(', ')}`);
  return { code: started.length ? await labCommand('up', [...wanted], signal) : 0, started };
}

async function healthCheck(lab: Lab, ctx: RunContext, scope: string[]): Promise<Quarantine> {
  const quarantine: Quarantine = {};
  const inScope = lab.hosts.filter((h) => scope.includes(h.name));
  if (inScope.some(hasComponents)) {
    say('putting the configured component versions on the hosts');
    const { record, failed } = await applyLabComponents({ ...lab, hosts: inScope }, join(ctx.outDir, 'logs'), (l) => say(`  ${l}`));
    await writeFile(componentsFile(ctx.outDir), JSON.stringify(record, null, 2));
    for (const [h, why] of Object.entries(failed)) quarantine[h] = `components: ${why}`;
  }
  say('health check of every host (labrig doctor)');
  for (const c of await doctor(lab, scope, undefined, { sweep: true })) {
    process.stderr.write(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.host.padEnd(14)} ${c.check.padEnd(8)} ${c.detail}\n`);
    for (const item of c.removed ?? []) process.stdout.write(`swept:    ${c.host}: ${item}\n`);
    if (!c.ok) quarantine[c.host] = [quarantine[c.host], `${c.check}: ${c.detail}`].filter(Boolean).join('; ');
  }
  return quarantine;
}

export async function runCommand(playwrightArgs: string[], opts: { labOverride?: (lab: Lab) => Lab } = {}): Promise<number> {
  const emulated = !process.env.LABRIG_CONFIG;
  const projects = projectsOf(playwrightArgs);
  const abort = new AbortController();
  let child: ResultPromise | undefined;
  const stopInterrupts = onInterrupt(() => {
    abort.abort();
    // The runner is in its own process group: signal it (and its workers) once, as a tty would.
    if (child?.pid) process.kill(-child.pid, 'SIGINT');
  });
  let started: string[] = [];
  try {
    let scope: string[];
    if (emulated) {
      const unknown = projects.filter((p) => !labHostNames.includes(p));
      if (unknown.length) throw new UsageError(`no host ${unknown.join(', ')} in the emulated lab; its hosts: ${labHostNames.join(', ')}`);
      const up = await bringUpEmulated(projects.length ? projects : labHostNames, abort.signal);
      started = up.started;
      if (abort.signal.aborted) return EXIT.lab;
      if (up.code !== 0) return up.code;
    }
    const loaded = await loadLab();
    // `labrig validate`: the candidate's components for this run only
    const lab = opts.labOverride ? opts.labOverride(loaded) : loaded;
    if (projects.length) {
      const unknown = projects.filter((p) => !lab.hosts.some((h) => h.name === p));
      if (unknown.length)
        throw new UsageError(`no host ${unknown.join(', ')} in lab ${lab.name}; its hosts: ${lab.hosts.map((h) => h.name).join(', ')}`);
      scope = projects;
    } else scope = lab.hosts.map((h) => h.name);

    const ctx: RunContext = { ...resolveRunContext({ labOutDir: lab.outDir, configDir: configDir() }), labFile: '' };
    ctx.labFile = join(ctx.outDir, 'lab.json');
    await mkdir(ctx.outDir, { recursive: true });
    for (const stale of [
      join(ctx.outDir, 'allure-results'),
      join(ctx.outDir, 'attempts'),
      componentsFile(ctx.outDir),
      quarantineFile(ctx.outDir),
    ])
      await rm(stale, { recursive: true, force: true });
    await writeResolvedLab(lab, ctx.labFile);

    const quarantine = await healthCheck(lab, ctx, scope);
    await writeFile(quarantineFile(ctx.outDir), JSON.stringify(quarantine, null, 2));
    for (const [host, why] of Object.entries(quarantine)) say(`quarantined ${host}: its tests are skipped (${why})`);
    if (abort.signal.aborted) return EXIT.lab;

    say(`run ${ctx.runId} → ${ctx.outDir}`);
    child = execa(process.execPath, [playwrightCli, 'test', ...playwrightArgs], {
      cwd: repoRoot,
      stdio: 'inherit',
      reject: false,
      detached: true,
      env: { ...runContextEnv(ctx), LABRIG_QUARANTINE: quarantineFile(ctx.outDir) },
    });
    const runnerExit = (await child).exitCode ?? 1;
    // Raw logs and attempt records hold what the hosts printed: masked before anything is built from them.
    const redacted = await redactRunOutput({ dirs: [ctx.outDir], config: lab });
    if (redacted.skipped.length) say(`not scanned for secrets (media or over 1 GiB): ${redacted.skipped.join(', ')}`);
    const reportCode = await reportCommand([join(ctx.outDir, 'allure-results')], ctx);
    const archived = await archiveRun({ ...ctx, lab });
    const results = await readResults(join(ctx.outDir, 'allure-results')).catch(() => []);
    const verdict = runVerdict({ results, quarantined: Object.keys(quarantine), runnerExit, interrupted: abort.signal.aborted });
    process.stdout.write(`run:      ${archived}\n`);
    process.stdout.write(`verdict:  exit ${verdict.code}: ${verdict.why}${reportCode ? ' (and the report could not be written)' : ''}\n`);
    return verdict.code === EXIT.ok && reportCode ? EXIT.lab : verdict.code;
  } finally {
    if (started.length) {
      say(`bringing the emulated lab down: ${started.join(', ')}`);
      await labDown({ hosts: started }).catch((e: Error) => say(`lab down: ${e.message}`));
    }
    stopInterrupts();
  }
}
