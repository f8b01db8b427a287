/**
 * `labrig validate --baseline <run> --candidate qemu=…[,libvirt=…]`: the candidate build fetched
 * (or taken from the cache), the suites run with it on the hosts that run QEMU on the runner
 * (components.qemuDir and components.libvirtDir for this run only), then `labrig compare` of baseline vs candidate in
 * the same scope. A host that runs QEMU itself (the snapshot suite's pmem host) takes the
 * candidate from a prefix on that host, as real labs install builds (`--on-host
 * x86-pmem=/opt/qemu-10.0/bin`); the run's facts must then show the candidate's version there.
 * The candidate run keeps `validation/`: the build record, the baseline's findings and
 * manifest, and the comparison — what its dossier carries.
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
import { upstreamVersion, versionMatches } from '../targets/components-apt.js';
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

/**
 * The lab with the candidate on the chosen hosts (the config on disk is not changed): the
 * runner's build on `hosts`, the host's own prefix (its components.qemuDir) on `onHost`.
 */
export function withCandidate(lab: Lab, build: BuildRecord, hosts: readonly string[], onHost: Readonly<Record<string, string>> = {}): Lab {
  const given = candidateComponents(build);
  return {
    ...lab,
    hosts: lab.hosts.map((h) => {
      if (onHost[h.name]) return { ...h, components: { ...h.components, qemuDir: onHost[h.name] } };
      return hosts.includes(h.name) ? { ...h, components: { ...h.components, ...given } } : h;
    }),
  };
}

/** `--on-host host=/dir` words → { host: dir }: a named host and an absolute directory each. */
export function parseOnHost(words: readonly string[], lab: Lab): Record<string, string> {
  const out: Record<string, string> = {};
  for (const word of words) {
    const m = /^([^=]+)=(\/.*)$/.exec(word);
    if (!m) throw new UsageError(`--on-host ${word}: expected <host>=<absolute directory on that host> (x86-pmem=/opt/qemu-10.0/bin)`);
    if (!lab.hosts.some((h) => h.name === m[1]))
      throw new UsageError(`--on-host ${word}: no host named ${m[1]} in the lab (${lab.hosts.map((h) => h.name).join(', ')})`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

/**
 * The on-host prefixes whose QEMU, as the run's facts read it, is not the candidate's version:
 * those hosts ran something else, and their comparison validates nothing.
 */
export function onHostMismatches(
  onHost: Readonly<Record<string, string>>,
  build: BuildRecord,
  hostFacts: Readonly<Record<string, Readonly<Record<string, unknown>>>>,
): string[] {
  const wanted = build.components.qemu?.version;
  if (!wanted) return Object.keys(onHost).map((h) => `${h}: --on-host gives a QEMU, but the candidate has none`);
  return Object.entries(onHost).flatMap(([h, dir]) => {
    const ran = hostFacts[h]?.qemu;
    if (typeof ran === 'string' && versionMatches(ran, wanted)) return [];
    return [
      `${h}: the QEMU in ${dir} is ${typeof ran === 'string' ? ran : 'not found (no facts)'}, not the candidate ${upstreamVersion(wanted)}`,
    ];
  });
}

export interface ValidateOptions {
  baseline: string;
  candidate: string;
  from: string;
  into?: string;
  project?: string[];
  grep?: string;
  onHost?: string[];
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
  let onHost: Record<string, string> = {};
  const runId = `validate-${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`;
  process.env.LABRIG_RUN_ID = runId;
  const runExit = await runCommand(args, {
    labOverride: (lab) => {
      const scope = projectsOf(args);
      const inScope = (name: string) => !scope.length || scope.includes(name);
      onHost = parseOnHost(opts.onHost ?? [], lab);
      const runner = lab.hosts
        .filter((h) => inScope(h.name) && !onHost[h.name] && h.role.some((r) => qemuRoles.includes(r)))
        .map((h) => h.name);
      hosts = [...runner, ...Object.keys(onHost).filter(inScope)];
      if (!hosts.length)
        throw new UsageError(
          `no host in scope runs QEMU on itself (roles ${qemuRoles.join(', ')}) or is named by --on-host: nothing would use the candidate`,
        );
      const given = Object.entries(candidateComponents(build)).map(([k, v]) => `components.${k} = ${v}`);
      if (runner.length) say(`candidate for this run on ${runner.join(', ')}: ${given.join(', ')}`);
      for (const [h, dir] of Object.entries(onHost)) say(`candidate for this run on ${h}: components.qemuDir = ${dir} (on the host)`);
      return withCandidate(lab, build, runner, onHost);
    },
  });
  const candidateDir = join(runsDir, runId);
  const scope: Scope = { hosts, ...(opts.grep ? { grep: opts.grep } : {}) };
  const [a, b] = await Promise.all([loadRunSnapshot(baselineDir, runsDir), loadRunSnapshot(candidateDir, runsDir)]);
  const sa = scopeSnapshot({ ...a, label: `baseline ${opts.baseline}` }, scope);
  const sb = scopeSnapshot({ ...b, label: `candidate ${runId}` }, scope);
  const comparison = compareRuns(sa, sb);
  const mismatches = onHostMismatches(onHost, build, b.hosts);
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
  for (const line of mismatches) say(line);
  if (comparison.regressed) return 1;
  // a host that did not run the candidate validated nothing: the lab's failure, not a pass
  if (mismatches.length) return 3;
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
    .option(
      '--on-host <host=dir...>',
      'a host that runs QEMU itself takes the candidate from this prefix on the host (its components.qemuDir)',
    )
    .argument('[playwrightArgs...]', 'passed to playwright test')
    .allowUnknownOption()
    .action(async (extra: string[], opts: ValidateOptions) => {
      setCode(await commandAction('validate', () => validate(opts, extra)));
    });
}
