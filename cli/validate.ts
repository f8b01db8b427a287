/**
 * `labrig validate --baseline <run> --candidate qemu=…[,libvirt=…]`: the candidate build fetched
 * (or taken from the cache), the suites run with it on the hosts that run QEMU on the runner
 * (components.qemuDir and components.libvirtDir for this run only), then `labrig compare` of baseline vs candidate in
 * the same scope. The candidate run keeps `validation/`: the build record, the baseline's
 * findings and manifest, and the comparison — what its dossier carries.
 */
import { randomUUID } from 'node:crypto';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { LabError } from '../drivers/errors.js';
import { compareRuns } from '../reports/compare.js';
import { formatComparison } from '../reports/compare-cli.js';
import { findingRows, formatFindingRows, type Scope, scopeSnapshot } from '../reports/compare-scope.js';
import { loadRunSnapshot, resolveRunDir } from '../reports/run-dir.js';
import { type BuildRecord, buildBinDir, buildFile, reachableByOthers } from '../targets/components-build.js';
import { fetchComponents, parseComponentVersions } from '../targets/components-fetch.js';
import { runsDirOf } from '../targets/run-context.js';
import type { Lab, Role } from '../targets/schema.js';
import { commandAction, UsageError } from './host-args.js';
import { projectsOf, runCommand } from './run.js';

/** Roles whose suites run QEMU (through libvirt) on the host itself: they take the candidate. */
export const qemuRoles: readonly Role[] = ['arm64-kunpeng', 'arm64-armhf'];

/** What a build gives a host: its QEMU (components.qemuDir), its libvirt (components.libvirtDir), or both. */
export function candidateComponents(build: BuildRecord): { qemuDir?: string; libvirtDir?: string } {
  const bin = buildBinDir(build.dir);
  return { ...(build.components.qemu ? { qemuDir: bin } : {}), ...(build.components.libvirt ? { libvirtDir: bin } : {}) };
}

/** The lab with the candidate on the chosen hosts (the config on disk is not changed). */
export function withCandidate(lab: Lab, build: BuildRecord, hosts: readonly string[]): Lab {
  const given = candidateComponents(build);
  return {
    ...lab,
    hosts: lab.hosts.map((h) => (hosts.includes(h.name) ? { ...h, components: { ...h.components, ...given } } : h)),
  };
}

export interface ValidateOptions {
  baseline: string;
  candidate: string;
  from: string;
  into?: string;
  project?: string[];
  grep?: string;
}

const say = (line: string) => process.stderr.write(`labrig: ${line}\n`);

export async function validate(opts: ValidateOptions, extraArgs: string[] = []): Promise<number> {
  const runsDir = runsDirOf();
  const baselineDir = await resolveRunDir(opts.baseline, runsDir).catch((e: Error) => {
    throw new UsageError(`--baseline: ${e.message}`);
  });
  const versions = parseComponentVersions([opts.candidate]);
  const { build, cached } = await fetchComponents({ versions, from: opts.from, ...(opts.into ? { into: opts.into } : {}), say });
  say(
    `candidate ${Object.entries(build.components)
      .map(([c, v]) => `${c} ${v.version}`)
      .join(', ')} (${cached ? 'cached' : `fetched in ${build.fetchSeconds} s`}): ${build.dir}`,
  );
  const closed = await reachableByOthers(build.dir);
  if (closed)
    throw new LabError(
      'config',
      `components: build ${build.dir} cannot be reached by libvirt's QEMU user (${closed} is not o+x): fetch it --into a prefix such as /var/tmp/labrig-components`,
    );

  const args = [...(opts.project ?? []).map((p) => `--project=${p}`), ...(opts.grep ? ['--grep', opts.grep] : []), ...extraArgs];
  let hosts: string[] = [];
  const runId = `validate-${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`;
  process.env.LABRIG_RUN_ID = runId;
  const runExit = await runCommand(args, {
    labOverride: (lab) => {
      const scope = projectsOf(args);
      hosts = lab.hosts
        .filter((h) => (!scope.length || scope.includes(h.name)) && h.role.some((r) => qemuRoles.includes(r)))
        .map((h) => h.name);
      if (!hosts.length)
        throw new UsageError(`no host in scope runs QEMU on itself (roles ${qemuRoles.join(', ')}): nothing would use the candidate`);
      const given = Object.entries(candidateComponents(build)).map(([k, v]) => `components.${k} = ${v}`);
      say(`candidate for this run on ${hosts.join(', ')}: ${given.join(', ')}`);
      return withCandidate(lab, build, hosts);
    },
  });
  const candidateDir = join(runsDir, runId);
  const scope: Scope = { hosts, ...(opts.grep ? { grep: opts.grep } : {}) };
  const [a, b] = await Promise.all([loadRunSnapshot(baselineDir, runsDir), loadRunSnapshot(candidateDir, runsDir)]);
  const sa = scopeSnapshot({ ...a, label: `baseline ${opts.baseline}` }, scope);
  const sb = scopeSnapshot({ ...b, label: `candidate ${runId}` }, scope);
  const comparison = compareRuns(sa, sb);
  const rows = findingRows(sa.findings, sb.findings);
  const text = `findings in scope (${scope.hosts.join(', ')}${scope.grep ? `, --grep ${scope.grep}` : ''}), baseline → candidate:\n${formatFindingRows(rows)}\n${formatComparison(comparison)}`;
  const out = join(candidateDir, 'validation');
  await mkdir(join(out, 'baseline'), { recursive: true });
  await cp(buildFile(build.dir), join(out, 'candidate-build.json'));
  for (const name of ['findings.json', 'manifest.json', 'junit.xml', 'lab.json'])
    await cp(join(baselineDir, name), join(out, 'baseline', name)).catch(() => undefined);
  await writeFile(
    join(out, 'comparison.json'),
    `${JSON.stringify({ baseline: baselineDir, candidate: candidateDir, scope, build: build.components, comparison, findings: rows }, null, 2)}\n`,
  );
  await writeFile(join(out, 'comparison.txt'), text);
  process.stdout.write(`\n${text}`);
  process.stdout.write(`validation: ${out}\n`);
  if (comparison.regressed) return 1;
  // a candidate run stopped by the lab says nothing about the candidate: not a pass
  return runExit === 3 ? 3 : 0;
}

export function registerValidateCommand(program: Command, setCode: (code: number) => void): void {
  program
    .command('validate')
    .description(
      'run the suites with a candidate QEMU and/or libvirt on the hosts that use them, then compare against a baseline run; exit 1 when something regressed',
    )
    .requiredOption('--baseline <run>', 'the reference run: a run id under the runs dir or a run directory')
    .requiredOption('--candidate <versions>', 'qemu=<version>,libvirt=<version> (a Debian version, or its upstream part: 10.0.2)')
    .option('--from <suite>', 'the Debian suite the candidate comes from', 'bookworm-backports')
    .option('--into <dir>', "where candidate builds live (must be reachable by libvirt's QEMU user)")
    .option('--project <hosts...>', 'only these hosts')
    .option('--grep <regex>', 'only the tests whose title matches (as playwright test --grep)')
    .argument('[playwrightArgs...]', 'passed to playwright test')
    .allowUnknownOption()
    .action(async (extra: string[], opts: ValidateOptions) => {
      setCode(await commandAction('validate', () => validate(opts, extra)));
    });
}
