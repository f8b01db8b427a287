/**
 * A candidate QEMU carried inside an emulated host's image, beside the host's own: Debian's
 * QEMU from another suite (bookworm-backports), resolved and downloaded through the private
 * apt of the components layer (targets/components-apt.ts: the runner's apt is not touched),
 * unpacked under a prefix in the layout `labrig components fetch` gives a build — `root/` the
 * unpacked packages, `bin/qemu-system-x86_64` a wrapper that points it at its own firmware
 * (-L) and modules (QEMU_MODULE_DIR) — so `components.qemuDir` or
 * `suites.snapshotKexec.restoreQemu` can name `<prefix>/bin` on the host.
 * Its libraries are the image's own packages (RootfsBuilder.binaryWithLibs): a library only the
 * candidate needs is an error naming it.
 */
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../drivers/errors.js';
import { runLocal } from '../drivers/local.js';
import { aptRepo, aptUpdate, madison, versionMatches } from '../targets/components-apt.js';
import { wrapperScript } from '../targets/components-build.js';
import { componentsCacheDir } from '../targets/components-fetch.js';
import { debCacheDir } from './cache.js';
import { type AptContext, type DebPackage, fetchDebs, type Progress, parseAptShow, unpackDeb } from './debs.js';
import type { RootfsBuilder } from './rootfs.js';

export interface CandidateQemuRequest {
  /** The Debian suite it comes from (bookworm-backports). */
  suite: string;
  /** Upstream version or a dotted prefix of it ("10.0"), as `components fetch` takes it. */
  version: string;
  /** Where it lives on the host (/opt/qemu-10.0); `<prefix>/bin` is what a lab config names. */
  prefix: string;
}

export interface CandidateQemu extends CandidateQemuRequest {
  /** The QEMU packages at the resolved version, and the firmware it requires from the same suite. */
  packages: DebPackage[];
}

/** The x86 emulator, its common part and data, and the SeaBIOS it requires (qemu-system-x86 10.0: seabios >> 1.16.3-1~). */
const QEMU_PACKAGES = ['qemu-system-x86', 'qemu-system-common', 'qemu-system-data'];
const FIRMWARE_PACKAGES = ['seabios'];
/** `Architecture: all` packages: their .deb is named _all (debs.ts debFileName). */
const ARCH_ALL = new Set(['qemu-system-data', 'seabios']);
const BINARY = 'qemu-system-x86_64';
const LIB_DIRS = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu'];

const tree = (prefix: string) => ({
  root: `${prefix}/root`,
  binary: `${prefix}/root/usr/bin/${BINARY}`,
  firmware: [`${prefix}/root/usr/share/qemu`, `${prefix}/root/usr/share/seabios`],
  modules: `${prefix}/root/usr/lib/x86_64-linux-gnu/qemu`,
  wrapper: `${prefix}/bin/${BINARY}`,
});

/** The wrapper's directory: what `components.qemuDir` or `restoreQemu` names. */
export const candidateBinDir = (prefix: string) => `${prefix}/bin`;

/**
 * The exact package versions the request means today (they key the image: a new backports
 * upload builds a new image). The private lists are updated at most every 12 h; a failed
 * update goes on with the lists it has, when they know the version.
 */
export async function resolveCandidateQemu(req: CandidateQemuRequest, progress: Progress): Promise<CandidateQemu> {
  const repo = await aptRepo(componentsCacheDir(), req.suite);
  const updateFailure = await aptUpdate(repo).then(
    () => '',
    (e: Error) => e.message,
  );
  const rows = await madison(repo, [...QEMU_PACKAGES, ...FIRMWARE_PACKAGES]);
  const inSuite = rows.filter((r) => r.suite === req.suite);
  const missing: string[] = [];
  const wanted = [
    ...QEMU_PACKAGES.map((name) => ({
      name,
      version: inSuite.find((r) => r.name === name && versionMatches(req.version, r.version))?.version,
    })),
    ...FIRMWARE_PACKAGES.map((name) => ({ name, version: inSuite.find((r) => r.name === name)?.version })),
  ];
  for (const w of wanted) if (!w.version) missing.push(w.name);
  if (missing.length)
    throw new LabError(
      'lab-setup',
      `candidate QEMU ${req.version} from ${req.suite}: no ${missing.join(', ')} there (apt has ${rows.map((r) => `${r.name} ${r.version} (${r.suite})`).join(', ') || 'nothing'})${updateFailure ? `; apt-get update had failed: ${updateFailure}` : ''}`,
    );
  if (updateFailure) progress(`candidate QEMU: apt-get update failed, going on with the lists it has: ${updateFailure.split('\n')[0]}`);
  const show = await runLocal(['apt-cache', ...repo.options, 'show', ...wanted.map((w) => `${w.name}=${w.version}`)], {
    timeoutMs: 60_000,
    check: false,
  });
  const sized = parseAptShow(
    show.stdout,
    wanted.map((w) => w.name),
  );
  const packages = wanted.map((w) => sized.get(w.name) ?? { name: w.name, version: w.version!, sizeBytes: 0 });
  return { ...req, packages };
}

/** Downloads (into the shared .deb cache) and unpacks the candidate under `<pkgRoot><prefix>/root`. */
export async function unpackCandidateQemu(c: CandidateQemu, pkgRoot: string, progress: Progress): Promise<void> {
  const repo = await aptRepo(componentsCacheDir(), c.suite);
  const ctx = (arch: string): AptContext => ({ arch, options: repo.options });
  const own = c.packages.filter((p) => !ARCH_ALL.has(p.name));
  const all = c.packages.filter((p) => ARCH_ALL.has(p.name));
  const debs = [
    ...(await fetchDebs(own, debCacheDir('amd64'), ctx('amd64'), progress)),
    ...(await fetchDebs(all, debCacheDir('all'), ctx('all'), progress)),
  ];
  const dest = join(pkgRoot, tree(c.prefix).root);
  for (const deb of debs) await unpackDeb(deb, dest);
}

/**
 * The candidate in the image: its binary (libraries from the image's packages), firmware and
 * modules, and the wrapper. Returns its `--version` line, run on the runner against the
 * image's libraries — a candidate that does not start is found here, not on the host.
 */
export async function installCandidateQemu(root: RootfsBuilder, c: CandidateQemu): Promise<string> {
  const t = tree(c.prefix);
  await root.binaryWithLibs(t.binary);
  for (const dir of [...t.firmware, t.modules])
    await cp(join(root.pkgRoot, dir), join(root.dir, dir), { recursive: true, verbatimSymlinks: true });
  await root.write(
    t.wrapper,
    wrapperScript({
      binary: t.binary,
      libDirs: [],
      // QEMU 10 loads modules from its configured dir unless told: one of the host's 7.2 modules would end it.
      env: { QEMU_MODULE_DIR: t.modules },
      // Debian's QEMU is not relocatable: -L before its built-in firmware path (the host's 7.2 data and SeaBIOS).
      leadingArgs: t.firmware.flatMap((d) => ['-L', d]),
    }),
    0o755,
  );
  const r = await runLocal([join(root.pkgRoot, t.binary), '--version'], {
    env: { LD_LIBRARY_PATH: LIB_DIRS.map((d) => join(root.pkgRoot, d)).join(':') },
    timeoutMs: 60_000,
    check: false,
  });
  const first = `${r.stdout}\n${r.stderr}`.trim().split('\n')[0] ?? '';
  if (r.code !== 0 || !/version \S+/.test(first))
    throw new LabError('lab-setup', `candidate QEMU ${t.binary} does not run with the image's libraries (exit ${r.code}): ${first}`);
  return first;
}
