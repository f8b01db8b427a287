/**
 * Debian packages as build material: the candidate versions from the configured apt
 * sources (they key the image cache), `apt-get download` into a shared .deb cache, and
 * `dpkg -x` — nothing is installed on the runner. Other architectures pass apt options
 * (APT::Architecture, a private Dir::State::Lists) through `AptContext`.
 */
import { access, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../../drivers/errors.js';
import { runLocal } from '../../drivers/local.js';

export interface AptContext {
  arch: string;
  /** Extra `-o` options for apt-get/apt-cache (foreign architectures). */
  options: readonly string[];
}

export const hostApt: AptContext = { arch: 'amd64', options: [] };

/**
 * Another architecture's packages, without adding it to the runner's dpkg: apt reads and keeps
 * its own lists in the cache (FIELD-NOTES: -oAPT::Architecture=…, a private Dir::State::Lists).
 */
export function foreignApt(arch: string, listsDir: string): AptContext {
  return {
    arch,
    options: ['-o', `APT::Architecture=${arch}`, '-o', `APT::Architectures=${arch}`, '-o', `Dir::State::Lists=${listsDir}`, '-o', `Dir::Cache=${listsDir}/cache`],
  };
}

export interface DebPackage {
  name: string;
  version: string;
  sizeBytes: number;
}

export type Progress = (line: string) => void;

export const stderrProgress: Progress = (line) => process.stderr.write(`labrig: ${line}\n`);

/** `apt-cache show` records of the candidate version, one per package, in input order. */
export function parseAptShow(text: string, names: readonly string[]): Map<string, DebPackage> {
  const found = new Map<string, DebPackage>();
  for (const record of text.split(/\n\n+/)) {
    const field = (k: string) => record.match(new RegExp(`^${k}: (.*)$`, 'm'))?.[1]?.trim();
    const name = field('Package');
    const version = field('Version');
    if (!name || !version || !names.includes(name) || found.has(name)) continue;
    found.set(name, { name, version, sizeBytes: Number(field('Size') ?? 0) });
  }
  return found;
}

const updated = new Set<string>();

/** Candidate versions; runs `apt-get update` once if the lists do not know a package yet. */
export async function resolvePackages(names: readonly string[], apt: AptContext = hostApt, progress: Progress = stderrProgress): Promise<DebPackage[]> {
  for (;;) {
    const r = await runLocal(['apt-cache', ...apt.options, 'show', '--no-all-versions', ...names], { check: false, timeoutMs: 60_000 });
    const found = parseAptShow(r.stdout, names);
    const missing = names.filter((n) => !found.has(n));
    if (missing.length === 0) return names.map((n) => found.get(n)!);
    const key = apt.options.join(' ');
    if (updated.has(key))
      throw new LabError('lab-setup', `apt knows no candidate for ${missing.join(', ')} (${apt.arch}); check the apt sources`, {
        tail: r.stderr.trim().split('\n').slice(-5).join('\n'),
      });
    progress(`apt lists do not know ${missing.join(', ')}: running apt-get update`);
    for (const opt of apt.options) if (opt.startsWith('Dir::State::Lists=')) await mkdir(join(opt.slice(18), 'partial'), { recursive: true });
    await runLocal(['apt-get', ...apt.options, 'update', '-q'], { timeoutMs: 600_000 });
    updated.add(key);
  }
}

/** The file name apt-get download writes (the epoch's colon is URL-escaped). */
export function debFileName(p: DebPackage, arch: string): string {
  return `${p.name}_${p.version.replace(/:/g, '%3a')}_${arch}.deb`;
}

const mb = (n: number) => (n / 1e6).toFixed(1);

/** Downloads what is not in `debDir` yet; returns the .deb paths in input order. */
export async function fetchDebs(pkgs: readonly DebPackage[], debDir: string, apt: AptContext = hostApt, progress: Progress = stderrProgress): Promise<string[]> {
  await mkdir(debDir, { recursive: true });
  const total = pkgs.reduce((s, p) => s + p.sizeBytes, 0);
  let done = 0;
  const paths: string[] = [];
  for (const [i, p] of pkgs.entries()) {
    const file = join(debDir, debFileName(p, apt.arch));
    const cached = await access(file).then(() => true, () => false);
    if (!cached) {
      progress(`[${i + 1}/${pkgs.length}] fetching ${p.name} ${p.version} (${mb(p.sizeBytes)} MB; ${mb(done)}/${mb(total)} MB done)`);
      // Downloading as root: apt's _apt sandbox user could not write into the cache.
      await runLocal(['apt-get', ...apt.options, '-q', '-o', 'APT::Sandbox::User=root', 'download', `${p.name}=${p.version}`], {
        cwd: debDir,
        timeoutMs: 600_000,
      });
      const present = await readdir(debDir);
      if (!present.includes(debFileName(p, apt.arch)))
        throw new LabError('lab-setup', `apt-get download ${p.name}=${p.version} wrote no ${debFileName(p, apt.arch)} in ${debDir}`);
    }
    done += p.sizeBytes;
    paths.push(file);
  }
  progress(`packages ready: ${pkgs.length} (${mb(total)} MB) in ${debDir}`);
  return paths;
}

export async function unpackDeb(deb: string, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  await runLocal(['dpkg', '-x', deb, dest], { timeoutMs: 300_000 });
}
