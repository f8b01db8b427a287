/**
 * A candidate QEMU/libvirt from Debian packages, without touching the runner's apt or dpkg:
 * apt reads a private sources.list (bookworm + the named suite) and keeps its lists and
 * downloads in a private state directory under the components cache. Only .debs come out.
 * The dependency closure: a shared-library package the candidate needs at a version the
 * system does not have installed is fetched too; anything else is the system's.
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../drivers/errors.js';
import { runLocal } from '../drivers/local.js';

export interface AptRepo {
  dir: string;
  options: string[];
}

export interface MadisonRow {
  name: string;
  version: string;
  suite: string;
}

/** `apt-cache madison` lines: "qemu-system-arm | 1:10.0.2+ds-2 | http://… bookworm-backports/main amd64 Packages". */
export function parseMadison(text: string): MadisonRow[] {
  return text
    .split('\n')
    .map((l) => l.split('|').map((s) => s.trim()))
    .filter((p) => p.length >= 3 && p[0] && p[1])
    .map(([name, version, source]) => ({
      name: name!,
      version: version!,
      suite: /\s([a-z0-9.-]+)\/[a-z-]+\s+\S+\s+Packages/.exec(` ${source}`)?.[1] ?? '',
    }));
}

/** The upstream part of a Debian version: "1:10.0.2+ds-2+deb13u1~bpo12+1" → "10.0.2". */
export const upstreamVersion = (v: string) => v.replace(/^\d+:/, '').replace(/[-+~].*$/, '');

/** A request matches the exact Debian version, or the upstream version or a dotted prefix of it ("10.0"). */
export function versionMatches(request: string, version: string): boolean {
  if (request === version) return true;
  const up = upstreamVersion(version);
  return up === request || up.startsWith(`${request}.`);
}

export interface DependencyAlternative {
  name: string;
  op?: '<<' | '<=' | '=' | '>=' | '>>';
  version?: string;
}

/** A Depends field: groups of alternatives ("a (>= 1) | b, c"); architecture qualifiers dropped. */
export function parseDepends(field: string): DependencyAlternative[][] {
  return field
    .split(',')
    .map((g) => g.trim())
    .filter(Boolean)
    .map((g) =>
      g.split('|').map((alt) => {
        const m = /^([a-z0-9][a-z0-9+.-]*)(?::\S+)?\s*(?:\((<<|<=|=|>=|>>)\s*([^)]+)\))?/.exec(alt.trim());
        if (!m) return { name: alt.trim() };
        return { name: m[1]!, ...(m[2] ? { op: m[2] as DependencyAlternative['op'], version: m[3]!.trim() } : {}) };
      }),
    );
}

/** Shared-library packages are what a build directory must bring; daemons and tools stay the system's. */
export const isLibraryPackage = (name: string) => /^lib/.test(name) && !/-(dev|utils|bin|tools)$/.test(name);

export async function aptRepo(baseDir: string, suite: string): Promise<AptRepo> {
  const dir = join(baseDir, `apt-${suite}`);
  for (const d of ['etc/sources.list.d', 'etc/preferences.d', 'state/lists/partial', 'cache/archives/partial'])
    await mkdir(join(dir, d), { recursive: true });
  const keyring = '/usr/share/keyrings/debian-archive-keyring.gpg';
  const suites = [...new Set(['bookworm', suite])];
  await writeFile(
    join(dir, 'etc/sources.list'),
    suites.map((s) => `deb [signed-by=${keyring}] http://deb.debian.org/debian ${s} main\n`).join(''),
  );
  const options = [
    ['Dir::Etc::sourcelist', join(dir, 'etc/sources.list')],
    ['Dir::Etc::sourceparts', join(dir, 'etc/sources.list.d')],
    ['Dir::Etc::preferencesparts', join(dir, 'etc/preferences.d')],
    ['Dir::State', join(dir, 'state')],
    ['Dir::Cache', join(dir, 'cache')],
    // the runner's dpkg status is read, never written: apt-get download and madison change nothing there
    ['Dir::State::status', '/var/lib/dpkg/status'],
    ['APT::Sandbox::User', 'root'],
  ].flatMap(([k, v]) => ['-o', `${k}=${v}`]);
  return { dir, options };
}

/** `apt-get update` into the private lists, unless this repo was updated less than maxAgeMs ago. */
export async function aptUpdate(repo: AptRepo, maxAgeMs = 12 * 3600_000): Promise<void> {
  // apt keeps the archive's Last-Modified as the lists' mtime: our own stamp says when we updated
  const stamp = join(repo.dir, 'state/labrig-updated');
  const age = await stat(stamp).then(
    (s) => Date.now() - s.mtimeMs,
    () => Infinity,
  );
  if (age < maxAgeMs) return;
  const r = await runLocal(['apt-get', ...repo.options, '-q', 'update'], { timeoutMs: 10 * 60_000, check: false });
  if (r.code !== 0)
    throw new LabError(
      'runner-tool',
      `components: apt-get update of the private package lists failed (exit ${r.code}): ${lastLine(r.stderr || r.stdout)}`,
    );
  await writeFile(stamp, `${new Date().toISOString()}\n`);
}

const lastLine = (text: string) =>
  text
    .trim()
    .split('\n')
    .filter((l) => !/^W: /.test(l))
    .pop() ?? '';

export async function madison(repo: AptRepo, names: string[]): Promise<MadisonRow[]> {
  const r = await runLocal(['apt-cache', ...repo.options, 'madison', ...names], { timeoutMs: 120_000, check: false });
  return parseMadison(r.stdout);
}

/** Installed version of a package on the runner, or undefined. */
export async function installedVersion(name: string): Promise<string | undefined> {
  const r = await runLocal(['dpkg-query', '-W', '-f', '${Status}\t${Version}', name], { timeoutMs: 30_000, check: false });
  const [status, version] = r.stdout.split('\t');
  return r.code === 0 && status?.endsWith(' installed') && version ? version : undefined;
}

export async function versionSatisfies(version: string, op: NonNullable<DependencyAlternative['op']>, wanted: string): Promise<boolean> {
  const dpkgOp = { '<<': 'lt', '<=': 'le', '=': 'eq', '>=': 'ge', '>>': 'gt' }[op];
  return (await runLocal(['dpkg', '--compare-versions', version, dpkgOp, wanted], { timeoutMs: 30_000, check: false })).code === 0;
}

/** Downloads name=version into dir (apt checks the archive's signatures and hashes); returns the .deb paths. */
export async function aptDownload(repo: AptRepo, dir: string, pkgs: { name: string; version: string }[]): Promise<void> {
  if (!pkgs.length) return;
  const r = await runLocal(['apt-get', ...repo.options, '-q', 'download', ...pkgs.map((p) => `${p.name}=${p.version}`)], {
    cwd: dir,
    timeoutMs: 20 * 60_000,
    check: false,
  });
  if (r.code !== 0)
    throw new LabError(
      'runner-tool',
      `components: apt-get download ${pkgs.map((p) => p.name).join(' ')} failed (exit ${r.code}): ${lastLine(r.stderr || r.stdout)}`,
    );
}
