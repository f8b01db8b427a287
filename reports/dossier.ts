/**
 * `labrig dossier <run> [--out file]`: one .tar.gz for a hardware vendor, made from an archived
 * run (reports/runs/<runId>/, cli/archive.ts). At the root of the archive:
 *   manifest.json      dossier manifest: run id, revision, versions per host, SHA-256 + size of every other file
 *   report.html        the Allure report as one self-contained file (dossier-html.ts)
 *   trends.html        every numeric finding across the kept runs up to this one, as charts
 *                      (trend-page.ts); also embedded in report.html as a global attachment
 *   findings.json      the run's findings
 *   lab.json           the lab config the run used (secrets only as env-var names)
 *   run-manifest.json  the run's own manifest (facts, counts, SHA-256 of every Allure attachment)
 *   junit.xml          when the run has one
 *   logs/…             console and shell logs of the run (secrets masked)
 * tar.gz rather than zip: GNU tar and gzip are on every Linux runner (and tar.exe on Windows 10+),
 * so a vendor unpacks it with nothing to install, and node's zlib lets the verifier read it in
 * memory without unpacking; a zip would need a new dependency or the zip tool in the setup.
 */
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { versionComponents } from './compare.js';
import { singleFileReport } from './dossier-html.js';
import { findSecrets, type SecretHit, secretsOf } from './dossier-secrets.js';
import { DOSSIER_MANIFEST, type DossierManifest, type DossierVerification, sha256, verifyDossier } from './dossier-verify.js';
import { redactRunOutput } from './redact.js';
import { defaultRunsDir, readRunManifest, resolveRunDir, runResultsDir } from './run-dir.js';
import { TRENDS_PAGE, writeTrendsPage } from './trend-page.js';
import { readTrendRun } from './trend-runs.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
export const defaultDossierDir = join(repoRoot, 'reports', 'out', 'dossiers');
const TAR_DEADLINE_MS = 120_000;

export interface DossierOptions {
  /** Run id (under runsDir) or path of a run directory. */
  run: string;
  out?: string;
  runsDir?: string;
  /** Where the values of the config's `*Env` secrets are looked up; default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface BuiltDossier {
  archive: string;
  manifestSha256: string;
  files: string[];
  /** Secrets named by the config that were too short to scan for. */
  unscanned: string[];
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

async function required(path: string, what: string): Promise<string> {
  const s = await stat(path).catch(() => null);
  if (!s) throw new Error(`the run has no ${what} (${path})`);
  return path;
}

/** Stages the dossier's files (archive path → content source) into `stage`. */
async function stage(runDir: string, stageDir: string): Promise<string[]> {
  const resultsDir = runResultsDir(runDir);
  if (!resultsDir) throw new Error(`the run ${runDir} has no allure-results: no report can be made`);
  const names: string[] = [];
  const put = async (name: string, from: string) => {
    await mkdir(dirname(join(stageDir, name)), { recursive: true });
    await copyFile(from, join(stageDir, name));
    names.push(name);
  };
  // The runs kept beside this one, up to it: the trend as it stood when the run was made.
  const run = await readTrendRun(runDir);
  await writeTrendsPage(join(stageDir, TRENDS_PAGE), {
    runsDir: dirname(runDir),
    current: run,
    upTo: run.runId,
    title: `Findings up to run ${run.runId}`,
  });
  await writeFile(join(stageDir, 'report.html'), await singleFileReport(resultsDir, join(stageDir, TRENDS_PAGE)));
  names.push('report.html', TRENDS_PAGE);
  await put('findings.json', await required(join(runDir, 'findings.json'), 'findings.json'));
  await put('lab.json', await required(join(runDir, 'lab.json'), 'lab.json (the lab config it used)'));
  await put('run-manifest.json', await required(join(runDir, 'manifest.json'), 'manifest.json'));
  if (await stat(join(runDir, 'junit.xml')).catch(() => null)) await put('junit.xml', join(runDir, 'junit.xml'));
  for (const log of await filesUnder(join(runDir, 'logs')))
    await put(`logs/${relative(join(runDir, 'logs'), log).split('\\').join('/')}`, log);
  // `labrig validate`: the candidate build, the baseline run's record and the comparison
  for (const f of await filesUnder(join(runDir, 'validation')))
    await put(`validation/${relative(join(runDir, 'validation'), f).split('\\').join('/')}`, f);
  return names.sort();
}

/** Everything that leaves with the dossier, and the results the report embeds, against the lab's secrets. */
async function scanForSecrets(
  stageDir: string,
  names: string[],
  resultsDir: string,
  env: NodeJS.ProcessEnv,
): Promise<{ hits: SecretHit[]; unscanned: string[] }> {
  const lab = JSON.parse(await readFile(join(stageDir, 'lab.json'), 'utf8')) as unknown;
  const { secrets, unscanned } = secretsOf(lab, env);
  const hits: SecretHit[] = [];
  for (const name of names) hits.push(...findSecrets(await readFile(join(stageDir, name), 'latin1'), name, secrets));
  // The report carries attachments base64-encoded, where a scan of the page cannot see them.
  for (const path of await filesUnder(resultsDir)) {
    hits.push(...findSecrets(await readFile(path, 'latin1'), `report.html (from ${basename(path)})`, secrets));
  }
  return { hits, unscanned };
}

export async function buildDossier(opts: DossierOptions): Promise<BuiltDossier> {
  const runDir = await resolveRunDir(opts.run, opts.runsDir ?? defaultRunsDir);
  const runManifest = await readRunManifest(runDir);
  const runId = runManifest.runId ?? basename(runDir);
  const archive = resolve(opts.out ?? join(defaultDossierDir, `dossier-${runId}.tar.gz`));
  const stageDir = await mkdtemp(join(tmpdir(), 'labrig-dossier-'));
  try {
    const names = await stage(runDir, stageDir);
    const lab = JSON.parse(await readFile(join(stageDir, 'lab.json'), 'utf8')) as unknown;
    // Raw logs were written as the console spoke: what leaves the lab is masked; the scan below is the last gate.
    await redactRunOutput({ dirs: [join(stageDir, 'logs'), join(stageDir, 'junit.xml')], config: lab, env: opts.env ?? process.env });
    const { hits, unscanned } = await scanForSecrets(stageDir, names, runResultsDir(runDir)!, opts.env ?? process.env);
    if (hits.length) {
      const list = [...new Set(hits.map((h) => `  ${h.file}: ${h.what}`))].join('\n');
      throw new Error(`refusing to package run ${runId}: secrets found\n${list}`);
    }
    const files: DossierManifest['files'] = {};
    for (const name of names) {
      const data = await readFile(join(stageDir, name));
      files[name] = { sha256: sha256(data), bytes: data.length };
    }
    const createdAt = new Date();
    const manifest: DossierManifest = {
      dossier: 1,
      runId,
      gitRevision: runManifest.gitRevision ?? null,
      createdAt: createdAt.toISOString(),
      versions: Object.fromEntries(
        Object.entries(runManifest.hosts).map(([host, { facts }]) => [
          host,
          Object.fromEntries(versionComponents.map((c) => [c, facts[c] === undefined || facts[c] === null ? null : String(facts[c])])),
        ]),
      ),
      files,
    };
    const manifestText = `${JSON.stringify(manifest, null, 2)}\n`;
    await writeFile(join(stageDir, DOSSIER_MANIFEST), manifestText);

    await mkdir(dirname(archive), { recursive: true });
    const partial = `${archive}.partial`;
    // Explicit member list, sorted, owner-free and one mtime: the archive depends on the contents only.
    const args = [
      '-czf',
      partial,
      '-C',
      stageDir,
      '--format=gnu',
      '--sort=name',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      `--mtime=@${Math.floor(createdAt.getTime() / 1000)}`,
      '--',
      DOSSIER_MANIFEST,
      ...names,
    ];
    const r = await execa('tar', args, { reject: false, all: true, timeout: TAR_DEADLINE_MS });
    if (r.exitCode !== 0) {
      await rm(partial, { force: true });
      throw new Error(`tar ${args.join(' ')} failed (${r.timedOut ? 'timed out' : `exit ${r.exitCode}`}):\n${r.all ?? ''}`);
    }
    await rename(partial, archive);
    const check = await verifyDossier(archive);
    if (!check.ok)
      throw new Error(`the dossier just written does not verify: ${check.problems.map((p) => `${p.file} ${p.problem}`).join(', ')}`);
    return { archive, manifestSha256: sha256(Buffer.from(manifestText)), files: [DOSSIER_MANIFEST, ...names], unscanned };
  } finally {
    await rm(stageDir, { recursive: true, force: true });
  }
}

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel;
}

export function formatVerification(archive: string, v: DossierVerification): string {
  const lines = v.problems.map((p) => `${p.problem.padEnd(18)} ${p.file}${p.detail ? `  (${p.detail})` : ''}`);
  lines.push(
    v.ok
      ? `ok: ${archive}: all ${v.checked} files match manifest.json (run ${v.runId ?? '?'}; manifest sha256 ${v.manifestSha256})`
      : `FAILED: ${archive}: ${v.problems.length} problem(s); manifest sha256 ${v.manifestSha256}`,
  );
  return `${lines.join('\n')}\n`;
}

/** Exit code: 0 written / verified, 1 verification failed or the dossier could not be made. */
export async function dossierCommand(target: string, opts: { verify?: boolean; out?: string; runsDir?: string }): Promise<number> {
  try {
    if (opts.verify) {
      const v = await verifyDossier(resolve(target));
      process.stdout.write(formatVerification(target, v));
      return v.ok ? 0 : 1;
    }
    const d = await buildDossier({ run: target, out: opts.out, runsDir: opts.runsDir });
    for (const name of d.unscanned) process.stderr.write(`labrig dossier: warning: $${name} is too short to scan the dossier for\n`);
    process.stdout.write(
      `dossier:  ${shown(d.archive)}  (${d.files.length} files)\n` +
        `manifest sha256: ${d.manifestSha256}  (send it to the vendor apart from the archive)\n`,
    );
    return 0;
  } catch (e) {
    process.stderr.write(`labrig dossier: ${(e as Error).message}\n`);
    return 1;
  }
}
