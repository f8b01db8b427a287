/**
 * `labrig components fetch qemu=<v> [libvirt=<v>]`: the candidate's .debs from a Debian suite,
 * plus the shared libraries they need at versions the runner lacks, unpacked into a build
 * directory under the components cache. The runner's installed packages are never changed.
 * A build already there for the same request is returned at once.
 */
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../drivers/errors.js';
import { runLocal } from '../drivers/local.js';
import { cacheRoot } from '../images/cache.js';
import {
  type AptRepo,
  aptDownload,
  aptRepo,
  aptUpdate,
  installedVersion,
  isLibraryPackage,
  type MadisonRow,
  madison,
  parseDepends,
  upstreamVersion,
  versionMatches,
  versionSatisfies,
} from './components-apt.js';
import { type BuildRecord, buildFile, type ComponentName, readBuild, sha256File, verifyBuild } from './components-build.js';

export interface FetchRequest {
  versions: Partial<Record<ComponentName, string>>;
  /** The Debian suite the candidate comes from (default bookworm-backports). */
  from?: string;
  /** Where builds live (default `${LABRIG_CACHE:-~/.cache/labrig}/components`). */
  into?: string;
  say?: (line: string) => void;
}

/** The packages each component is made of; the first one names its version. */
export const componentPackages: Record<ComponentName, string[]> = {
  // every module package: a module the build lacks is looked up in the system's dir, and one from
  // another QEMU build ends the process ("Only modules from the same build can be loaded")
  qemu: [
    'qemu-system-arm',
    'qemu-system-x86',
    'qemu-system-common',
    'qemu-system-data',
    'qemu-utils',
    'qemu-system-modules-opengl',
    'qemu-system-modules-spice',
  ],
  libvirt: [
    'libvirt-daemon',
    'libvirt0',
    'libvirt-common',
    'libvirt-daemon-common',
    'libvirt-daemon-driver-qemu',
    'libvirt-daemon-log',
    'libvirt-clients',
  ],
};

export const componentsCacheDir = () => join(cacheRoot(), 'components');

/** Bumped when what a build holds changes: a build made by an older recipe is made again. */
export const BUILD_RECIPE = 2;

/** "qemu=10.0.2,libvirt=11.3" or separate words → {qemu, libvirt}; a bad word is one line naming it. */
export function parseComponentVersions(words: string[]): Partial<Record<ComponentName, string>> {
  const out: Partial<Record<ComponentName, string>> = {};
  for (const word of words.flatMap((w) => w.split(',')).filter(Boolean)) {
    const m = /^(qemu|libvirt)=(\S+)$/.exec(word);
    if (!m) throw new LabError('config', `components: "${word}" is not component=version (components: qemu, libvirt)`);
    out[m[1] as ComponentName] = m[2]!;
  }
  if (!out.qemu && !out.libvirt) throw new LabError('config', 'components: name at least one of qemu=<version>, libvirt=<version>');
  return out;
}

const safe = (v: string) => v.replace(/[^A-Za-z0-9.+_-]/g, '_');

function matchesRequest(b: BuildRecord, req: FetchRequest, from: string): boolean {
  const wanted = Object.entries(req.versions) as [ComponentName, string][];
  return (
    b.recipe === BUILD_RECIPE &&
    b.suite === from &&
    wanted.length === Object.keys(b.components).length &&
    wanted.every(([c, v]) => b.components[c] && versionMatches(v, b.components[c]!.version))
  );
}

/** The version in `from` a request names; else one line naming the component and what exists. */
function resolveVersion(component: ComponentName, request: string, rows: MadisonRow[], from: string): string {
  const main = componentPackages[component][0]!;
  const hit = rows.find((r) => r.name === main && r.suite === from && versionMatches(request, r.version));
  if (hit) return hit.version;
  const there = rows.filter((r) => r.name === main).map((r) => `${r.version} (${r.suite})`);
  throw new LabError(
    'config',
    `components: ${component} ${request} is not in ${from}; ${main} has ${there.length ? there.join(', ') : 'no version there'}`,
  );
}

/** Library packages the downloaded .debs need that the runner does not have at the needed version. */
async function missingLibraries(
  repo: AptRepo,
  debsDir: string,
  have: Set<string>,
  from: string,
): Promise<{ name: string; version: string }[]> {
  const wanted = new Map<string, { name: string; version: string }>();
  for (const deb of (await readdir(debsDir)).filter((n) => n.endsWith('.deb'))) {
    const r = await runLocal(['dpkg-deb', '-f', join(debsDir, deb), 'Depends', 'Pre-Depends'], { timeoutMs: 60_000 });
    const field = r.stdout
      .replace(/^(Pre-)?Depends:\s*/gm, '')
      .split('\n')
      .join(', ');
    for (const group of parseDepends(field)) {
      if (group.some((a) => have.has(a.name) || wanted.has(a.name))) continue;
      const libs = group.filter((a) => isLibraryPackage(a.name));
      if (!libs.length) continue;
      let satisfied = false;
      for (const a of libs) {
        const v = await installedVersion(a.name);
        if (v && (!a.op || (await versionSatisfies(v, a.op, a.version!)))) satisfied = true;
      }
      if (satisfied) continue;
      const dep = libs[0]!;
      const rows = (await madison(repo, [dep.name])).filter((x) => x.name === dep.name);
      const ordered = [...rows.filter((x) => x.suite === from), ...rows.filter((x) => x.suite !== from)];
      let pick: string | undefined;
      for (const row of ordered) if (!dep.op || (await versionSatisfies(row.version, dep.op, dep.version!))) pick ??= row.version;
      if (!pick)
        throw new LabError(
          'config',
          `components: ${deb} needs ${dep.name}${dep.op ? ` (${dep.op} ${dep.version})` : ''}, which neither the runner nor ${from} has`,
        );
      wanted.set(dep.name, { name: dep.name, version: pick });
    }
  }
  return [...wanted.values()];
}

export async function fetchComponents(req: FetchRequest): Promise<{ build: BuildRecord; cached: boolean }> {
  const from = req.from ?? 'bookworm-backports';
  const into = req.into ?? componentsCacheDir();
  const say = req.say ?? (() => undefined);
  await mkdir(into, { recursive: true });
  for (const name of await readdir(into)) {
    const b = await readBuild(join(into, name));
    if (b && matchesRequest(b, req, from)) return { build: b, cached: true };
  }
  const t0 = performance.now();
  const repo = await aptRepo(into, from);
  say(`components: reading the package lists of bookworm and ${from}`);
  await aptUpdate(repo);
  const wanted = Object.entries(req.versions) as [ComponentName, string][];
  const rows = await madison(
    repo,
    wanted.flatMap(([c]) => componentPackages[c]),
  );
  const resolved = wanted.map(([c, v]) => ({ component: c, version: resolveVersion(c, v, rows, from) }));
  const dir = join(into, resolved.map((r) => `${r.component}-${safe(r.version)}`).join('+'));
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  const debs = join(tmp, 'debs');
  await mkdir(debs, { recursive: true });
  try {
    const pkgs = resolved.flatMap((r) =>
      componentPackages[r.component]
        .filter((name) => rows.some((x) => x.name === name && x.version === r.version))
        .map((name) => ({ name, version: r.version })),
    );
    say(`components: downloading ${pkgs.map((p) => p.name).join(' ')}`);
    await aptDownload(repo, debs, pkgs);
    const have = new Set(pkgs.map((p) => p.name));
    for (let round = 0; round < 5; round++) {
      const libs = await missingLibraries(repo, debs, have, from);
      if (!libs.length) break;
      say(`components: the runner lacks ${libs.map((l) => `${l.name} ${l.version}`).join(', ')}: fetching`);
      await aptDownload(repo, debs, libs);
      for (const l of libs) have.add(l.name);
    }
    const packages: BuildRecord['packages'] = [];
    for (const deb of (await readdir(debs)).filter((n) => n.endsWith('.deb')).sort()) {
      const path = join(debs, deb);
      await runLocal(['dpkg-deb', '-x', path, join(tmp, 'root')], { timeoutMs: 5 * 60_000 });
      const [name, version] = (await runLocal(['dpkg-deb', '-f', path, 'Package', 'Version'], { timeoutMs: 60_000 })).stdout
        .split('\n')
        .map((l) => l.replace(/^\S+:\s*/, ''));
      packages.push({ name: name!, version: version!, sha256: await sha256File(path) });
    }
    await rm(debs, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
    // wrappers name absolute paths: they are written where the build lives
    await rename(tmp, dir);
    say(`components: unpacked ${packages.length} packages; checking the binaries run on this host`);
    const binaries = await verifyBuild(dir).catch(async (e: unknown) => {
      await rm(dir, { recursive: true, force: true });
      throw e;
    });
    const build: BuildRecord = {
      dir,
      suite: from,
      recipe: BUILD_RECIPE,
      components: Object.fromEntries(resolved.map((r) => [r.component, { version: r.version, upstream: upstreamVersion(r.version) }])),
      packages,
      binaries,
      fetchedAt: new Date().toISOString(),
      fetchSeconds: Math.round(performance.now() - t0) / 1000,
    };
    await writeFile(buildFile(dir), `${JSON.stringify(build, null, 2)}\n`);
    return { build, cached: false };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
