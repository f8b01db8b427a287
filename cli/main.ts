/** `npx labrig <command>`: doctor, localize, console, power, ssh, lock/unlock/who, state, report, compare, trend, dossier, images build/list, lab up/down/status, run. */
import { Command, CommanderError } from 'commander';
import { isLabError } from '../drivers/errors.js';
import { reportCommand } from '../reports/cli.js';
import { compareCommand, regressionRulesHelp } from '../reports/compare-cli.js';
import { dossierCommand } from '../reports/dossier.js';
import { trendCommand } from '../reports/trend-cli.js';
import { loadLab, parseLab, writeResolvedLab } from '../targets/config.js';
import { doctor } from '../targets/doctor.js';
import { labCommand } from '../targets/emulated/cli.js';
import { emulatedLab, labDown, labHostNames, labStatus } from '../targets/emulated/lab.js';
import { overrideLines, seedOntoEmulated } from '../targets/emulated/seed-copy.js';
import { assertLoopbackOnly, localizeLab } from '../targets/localize.js';
import { registerComponentsCommands } from './components.js';
import { attachConsole } from './console.js';
import { commandAction, pickHosts, UsageError } from './host-args.js';
import { registerHostCommands } from './host-commands.js';
import { registerImagesCommands } from './images.js';
import { onInterrupt } from './interrupt.js';
import { runCommand } from './run.js';
import { registerValidateCommand } from './validate.js';
import { labrigVersion } from './version.js';

const EXIT_CODES = `
Exit codes (every command):
  0  all passed / done
  1  a product failure (a test of the product failed; compare: a regression)
  2  a usage or config error (unknown host, bad argument, a lab config that does not validate)
  3  a lab failure: a host unreachable or quarantined, a lease or lock held, an interrupted run,
     or a run in which nothing was tested`;

/** `lab up` under Ctrl-C: stop starting hosts, and bring down the ones this command started. */
async function labUpInterruptible(hosts: string[]): Promise<number> {
  const before = new Set((await labStatus()).filter((r) => r.state === 'up').map((r) => r.name));
  const abort = new AbortController();
  const stop = onInterrupt(() => abort.abort());
  try {
    const code = await labCommand('up', hosts.length ? hosts : undefined, abort.signal);
    if (!abort.signal.aborted) return code;
    const started = (await labStatus()).filter((r) => r.state !== 'down' && !before.has(r.name)).map((r) => r.name);
    if (started.length) await labDown({ hosts: started });
    return 3;
  } finally {
    stop();
  }
}

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = new Command('labrig')
    .description('hardware-in-the-loop harness for virtualization labs')
    .showHelpAfterError()
    .addHelpText('after', EXIT_CODES);
  // `labrig ssh host ls -la`: options after a command's arguments belong to it
  program.enablePositionalOptions();
  // a usage error (bad arguments, unknown command or option) exits 2, as config errors do
  program.exitOverride((e) => {
    if (e.exitCode !== 0) process.exit(2);
  });
  program.option('-V, --version', 'print the version (package.json and git revision)');
  program.on('option:version', () => {
    process.stdout.write(`${labrigVersion()}\n`);
    process.exit(0);
  });

  program
    .command('doctor')
    .description('check every host: SSH with the pinned key, console, power, lease, facts')
    .argument('[hosts...]', 'only these hosts')
    .option('--json', 'the checks as JSON: [{host, check, ok, detail}]')
    .action(async (hosts: string[], opts: { json?: boolean }) => {
      code = await commandAction('doctor', async () => {
        const lab = await loadLab();
        pickHosts(lab, hosts);
        const checks = await doctor(lab, hosts);
        if (opts.json) process.stdout.write(`${JSON.stringify(checks, null, 2)}\n`);
        else
          for (const c of checks) process.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'} ${c.host.padEnd(14)} ${c.check.padEnd(8)} ${c.detail}\n`);
        return checks.every((c) => c.ok) ? 0 : 3;
      });
    });

  program
    .command('localize')
    .description('a copy of a lab config with every address moved to its own 127.0.0.x, as JSON (use it with LABRIG_CONFIG)')
    .argument('<config>', 'the lab config (.ts or .json)')
    .requiredOption('--out <file>', 'where to write the copy')
    .option(
      '--onto-emulated',
      "instead: each host onto the running emulated lab's host of its role (LABRIG_RUN_DIR), every deviation listed with its reason",
    )
    .action(async (config: string, opts: { out: string; ontoEmulated?: boolean }) => {
      code = await commandAction('localize', async () => {
        if (opts.ontoEmulated) {
          const { lab, overrides } = seedOntoEmulated(await loadLab(config), parseLab(emulatedLab(), 'the emulated lab'));
          assertLoopbackOnly(lab);
          await writeResolvedLab(lab, opts.out);
          for (const line of overrideLines(overrides, { values: true })) process.stdout.write(`override: ${line}\n`);
          process.stdout.write(`written: ${opts.out}\n`);
          return 0;
        }
        const { lab, moved } = localizeLab(await loadLab(config));
        await writeResolvedLab(lab, opts.out);
        for (const [from, to] of Object.entries(moved)) process.stdout.write(`${from} -> ${to}\n`);
        process.stdout.write(`written: ${opts.out}\n`);
        return 0;
      });
    });

  program
    .command('console')
    .description('attach to a host console interactively (detach: Ctrl-])')
    .argument('<host>')
    .action(async (host: string) => {
      code = await commandAction('console', async () => attachConsole(await loadLab(), host));
    });

  registerHostCommands(program, (c) => (code = c));
  registerComponentsCommands(program, (c) => (code = c));
  registerImagesCommands(program, (c) => (code = c));
  registerValidateCommand(program, (c) => (code = c));

  program
    .command('report')
    .description('regenerate the HTML report, findings.json and manifest.json from Allure results')
    .argument('[resultsDirs...]', 'Allure results directories to merge (shards)')
    .action(async (dirs: string[]) => {
      code = await reportCommand(dirs);
    });

  program
    .command('compare')
    .description(
      'what changed between two archived runs: findings, versions, tests; exit 1 when something regressed, 2 when the runs cannot be read',
    )
    .argument('<runA>', 'the reference run: a run id under reports/runs/ or a run directory')
    .argument('<runB>', 'the run to judge against it')
    .option('--json', 'the comparison as JSON instead of text')
    .addHelpText('after', regressionRulesHelp())
    .action(async (runA: string, runB: string, opts: { json?: boolean }) => {
      code = await compareCommand(runA, runB, { json: opts.json });
    });

  program
    .command('dossier')
    .description('one .tar.gz for a vendor: self-contained report, findings, lab config, logs, manifest.json of SHA-256; or --verify one')
    .argument('<runOrArchive>', 'a run id under reports/runs/ or a run directory; with --verify, the archive')
    .option('--out <file>', 'where to write the archive (default reports/out/dossiers/dossier-<runId>.tar.gz)')
    .option('--verify', 'recompute every hash of an archive; exit 1 naming each file that differs, is missing or is extra')
    .action(async (target: string, opts: { out?: string; verify?: boolean }) => {
      code = await dossierCommand(target, opts);
    });

  program
    .command('trend')
    .description(
      "one finding across the kept runs: run → value with the host's versions, and a sparkline; exit 2 naming the known keys when it was never recorded",
    )
    .argument('<key>', 'the finding key, e.g. ceiling_newest, pmem.vm_blackout_ms, domu_create_s')
    .option('--host <host>', 'only this host')
    .option('--suite <suite>', 'only this suite')
    .option('--runs <dir>', 'the kept runs (default reports/runs)')
    .action(async (key: string, opts: { host?: string; suite?: string; runs?: string }) => {
      code = await trendCommand(key, opts);
    });

  const lab = program.command('lab').description('the emulated lab on this machine');
  for (const action of ['up', 'down', 'status'] as const) {
    const sub = lab.command(action).argument('[hosts...]');
    if (action === 'status') sub.option('--json', 'one {name, state, detail} per host, as JSON');
    sub.action(async (hosts: string[], opts: { json?: boolean }) => {
      code = await commandAction(`lab ${action}`, async () => {
        const unknown = hosts.filter((h) => !labHostNames.includes(h));
        if (unknown.length)
          throw new UsageError(`no emulated host ${unknown.map((h) => `"${h}"`).join(', ')} (hosts: ${labHostNames.join(', ')})`);
        // every way `lab up/down/status` fails (a host down, a build, a boot) is the lab's
        if (action === 'up') return labUpInterruptible(hosts);
        if (!opts.json) return (await labCommand(action, hosts.length ? hosts : undefined)) === 0 ? 0 : 3;
        const rows = (await labStatus()).filter((r) => !hosts.length || hosts.includes(r.name));
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return rows.every((r) => r.state === 'up') ? 0 : 3;
      });
    });
  }

  program
    .command('run')
    .description('the main job: bring the default lab up, run every suite, write the report, bring the lab down')
    .argument('[playwrightArgs...]', 'passed to playwright test (e.g. --project=emu-mini --grep @facts)')
    .allowUnknownOption()
    .action(async (args: string[]) => {
      code = await runCommand(args);
    });

  try {
    await program.parseAsync(argv);
  } catch (e) {
    // Commander has printed its own message (and help) already.
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    process.stderr.write(`labrig: ${(e as Error).message}\n`);
    if (e instanceof UsageError || (isLabError(e) && (e as Error).message.startsWith('[lab:config]'))) return 2;
    // Anything else stopped the command before it could test the product: a lab failure.
    return 3;
  }
  return code;
}
