/**
 * Debian packages as build material: the candidate versions from the configured apt
 * sources (they key the image cache), `apt-get download` into a shared .deb cache, and
 * `dpkg -x` — nothing is installed on the runner. Other architectures pass apt options
 * (APT::Architecture, a private Dir::State::Lists) through `AptContext`.
 */
import { access, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pRetry from 'p-retry';
import { LabError } from '../drivers/errors.js';
import { type CommandResult, runLocal } from '../drivers/local.js';

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
    options: [
      '-o',
      `APT::Architecture=${arch}`,
      '-o',
      `APT::Architectures=${arch}`,
      '-o',
      `Dir::State::Lists=${listsDir}`,
      '-o',
      `Dir::Cache=${listsDir}/cache`,
    ],
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

/** apt against a mirror that may be mid-sync ("File has unexpected size"): a few tries, a while apart. */
const MIRROR_RETRY = { retries: 3, minTimeout: 15_000, factor: 2 };

const tailOf = (r: CommandResult) => `exit ${r.code}: ${(r.stderr || r.stdout).trim().split('\n').slice(-6).join('\n')}`;

/** Runs an apt command until it succeeds or the tries are spent; the last failure is thrown. */
function aptWithRetries(argv: string[], what: string, progress: Progress, opts: { cwd?: string } = {}): Promise<void> {
  return pRetry(
    async () => {
      const r = await runLocal(argv, { ...opts, timeoutMs: 600_000, check: false });
      if (r.code !== 0) throw new Error(tailOf(r));
    },
    {
      ...MIRROR_RETRY,
      onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
        if (retriesLeft > 0) progress(`${what} failed (try ${attemptNumber}, ${retriesLeft} more): ${error.message.split('\n')[0]}`);
      },
    },
  );
}

/** apt-get update per context, and how its last run failed ('' when it did not). */
const updated = new Map<string, string>();

/** Candidate versions; runs `apt-get update` once if the lists do not know a package yet. */
export async function resolvePackages(
  names: readonly string[],
  apt: AptContext = hostApt,
  progress: Progress = stderrProgress,
): Promise<DebPackage[]> {
  for (;;) {
    const r = await runLocal(['apt-cache', ...apt.options, 'show', '--no-all-versions', ...names], { check: false, timeoutMs: 60_000 });
    const found = parseAptShow(r.stdout, names);
    const missing = names.filter((n) => !found.has(n));
    if (missing.length === 0) return names.map((n) => found.get(n)!);
    const key = apt.options.join(' ');
    if (updated.has(key)) {
      const update = updated.get(key) ? `; apt-get update had failed: ${updated.get(key)}` : '; check the apt sources';
      throw new LabError('lab-setup', `apt knows no candidate for ${missing.join(', ')} (${apt.arch})${update}`, {
        tail: r.stderr.trim().split('\n').slice(-5).join('\n'),
      });
    }
    progress(`apt lists do not know ${missing.join(', ')}: running apt-get update`);
    for (const opt of apt.options)
      if (opt.startsWith('Dir::State::Lists=')) await mkdir(join(opt.slice(18), 'partial'), { recursive: true });
    // A failed update still keeps the indexes it could fetch: what we need may be in them.
    const failure = await aptWithRetries(['apt-get', ...apt.options, 'update', '-q'], 'apt-get update', progress).then(
      () => '',
      (e: Error) => e.message,
    );
    if (failure)
      progress(
        `apt-get update failed after ${MIRROR_RETRY.retries + 1} tries; going on with the indexes it got: ${failure.split('\n')[0]}`,
      );
    updated.set(key, failure);
  }
}

/** The file name apt-get download writes (the epoch's colon is URL-escaped). */
export function debFileName(p: DebPackage, arch: string): string {
  return `${p.name}_${p.version.replace(/:/g, '%3a')}_${arch}.deb`;
}

const mb = (n: number) => (n / 1e6).toFixed(1);

/** Downloads what is not in `debDir` yet; returns the .deb paths in input order. */
export async function fetchDebs(
  pkgs: readonly DebPackage[],
  debDir: string,
  apt: AptContext = hostApt,
  progress: Progress = stderrProgress,
): Promise<string[]> {
  await mkdir(debDir, { recursive: true });
  const total = pkgs.reduce((s, p) => s + p.sizeBytes, 0);
  let done = 0;
  const paths: string[] = [];
  for (const [i, p] of pkgs.entries()) {
    const file = join(debDir, debFileName(p, apt.arch));
    const cached = await access(file).then(
      () => true,
      () => false,
    );
    if (!cached) {
      progress(`[${i + 1}/${pkgs.length}] fetching ${p.name} ${p.version} (${mb(p.sizeBytes)} MB; ${mb(done)}/${mb(total)} MB done)`);
      // Downloading as root: apt's _apt sandbox user could not write into the cache.
      await aptWithRetries(
        ['apt-get', ...apt.options, '-q', '-o', 'APT::Sandbox::User=root', 'download', `${p.name}=${p.version}`],
        `apt-get download ${p.name}`,
        progress,
        { cwd: debDir },
      ).catch((e: Error) => {
        throw new LabError(
          'lab-setup',
          `apt-get download ${p.name}=${p.version} failed after ${MIRROR_RETRY.retries + 1} tries: ${e.message}`,
        );
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
