/**
 * The image cache outside the repo: `${LABRIG_CACHE:-~/.cache/labrig}`. An image lives in
 * `images/<name>-<hash>/`, the hash taken over the package versions and the recipe
 * version, so a new kernel upload or a recipe change builds a new image and an unchanged
 * one is reused. Builds happen in a temporary directory renamed into place when complete,
 * so a half-built image is never mistaken for a cached one.
 */
import { createHash } from 'node:crypto';
import { access, chmod, lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isLabError, LabError } from '../drivers/errors.js';
import { ensurePrivateDir } from '../drivers/private-dir.js';
import { acquireLock, isOurProcess } from '../drivers/proc.js';
import { ensureKeyPair, fingerprintOf } from '../drivers/ssh-keygen.js';
import type { DebPackage, Progress } from './debs.js';

export function cacheRoot(): string {
  return process.env.LABRIG_CACHE ?? join(homedir(), '.cache', 'labrig');
}

export const debCacheDir = (arch: string) => join(cacheRoot(), 'debs', arch);

/** The lab's client key pair: generated once, its public half baked into every image. */
export async function clientKey(): Promise<{ privateKey: string; publicKey: string; publicKeyText: string }> {
  // Its public half is root's authorized_keys on every image: a key pair someone else planted would let them in.
  const dir = ensurePrivateDir(join(cacheRoot(), 'client'), "the emulated lab's client key directory");
  const privateKey = join(dir, 'id_ed25519');
  await ensureKeyPair(privateKey, 'labrig-emulated-lab');
  const publicKey = `${privateKey}.pub`;
  return { privateKey, publicKey, publicKeyText: (await readFile(publicKey, 'utf8')).trim() };
}

/** OpenSSH's fingerprint of a public key line: SHA256 over the key blob, base64 without padding. */
export function sshFingerprint(publicKeyLine: string): string {
  const blob = publicKeyLine.trim().split(/\s+/)[1];
  if (!blob) throw new Error(`not an OpenSSH public key line: ${publicKeyLine}`);
  const digest = createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

export { fingerprintOf };

/** What a built image records about itself (manifest.json in its directory). */
export interface ImageManifest {
  name: string;
  recipeVersion: number;
  packages: DebPackage[];
  kernelVersion: string;
  /** Files of the image, relative to its directory. */
  files: Record<string, string>;
  /** OpenSSH public key line of the guest's host key, and its pinned fingerprint. */
  hostKey: { publicKey: string; fingerprint: string };
  /** A second QEMU the image carries (images/qemu-candidate.ts): where, from which suite, its packages and `--version`. */
  candidateQemu?: { prefix: string; suite: string; version: string; packages: DebPackage[] };
  builtAt: string;
  buildMs: number;
}

export interface BuiltImage {
  dir: string;
  manifest: ImageManifest;
  /** Found complete in the cache (built earlier, or by another process while this one waited for the lock). */
  cached: boolean;
  /** Absolute path of a file named in manifest.files. */
  file(key: string): string;
}

export function imageKey(name: string, recipeVersion: number, packages: readonly DebPackage[], extra: readonly string[]): string {
  const h = createHash('sha256');
  h.update(`${name}\n${recipeVersion}\n`);
  for (const p of packages) h.update(`${p.name}=${p.version}\n`);
  for (const e of extra) h.update(`${e}\n`);
  return h.digest('hex').slice(0, 16);
}

function loaded(dir: string, manifest: ImageManifest, cached: boolean): BuiltImage {
  return {
    dir,
    manifest,
    cached,
    file(key) {
      const rel = manifest.files[key];
      if (!rel) throw new Error(`image ${manifest.name} has no file "${key}"`);
      return join(dir, rel);
    },
  };
}

/**
 * Build folders (`<image>.tmp-<pid>`, `<image>.work-<pid>`: hundreds of MB each) of a build whose
 * process is gone — killed, or the machine rebooted mid-build — are removed. A live PID keeps its
 * folders (a reused PID only delays their removal).
 */
export async function sweepStaleBuilds(images: string): Promise<string[]> {
  const swept: string[] = [];
  for (const name of await readdir(images).catch(() => [] as string[])) {
    const pid = /\.(?:tmp|work)-(\d+)$/.exec(name)?.[1];
    if (!pid || Number(pid) === process.pid || isOurProcess(Number(pid))) continue;
    await rm(join(images, name), { recursive: true, force: true });
    swept.push(name);
  }
  return swept;
}

/**
 * Returns the cached image `<name>-<key>`, or builds it with `build(tmpDir, workDir)` (which
 * writes its files to tmpDir, scratch to workDir, and returns the manifest) and moves it
 * into place. The scratch (unpacked packages: hundreds of MB for a kernel) is removed.
 */
export async function cachedImage(
  name: string,
  key: string,
  progress: Progress,
  build: (tmpDir: string, workDir: string) => Promise<Omit<ImageManifest, 'builtAt' | 'buildMs'>>,
): Promise<BuiltImage> {
  const images = join(cacheRoot(), 'images');
  const dir = join(images, `${name}-${key}`);
  // Images hold guest host private keys (in their initrds and disks): readable by us only.
  await mkdir(images, { recursive: true, mode: 0o700 });
  await chmod(images, 0o700);
  const manifestPath = join(dir, 'manifest.json');
  const read = async (cached: boolean) => {
    let manifest: ImageManifest;
    try {
      manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as ImageManifest;
    } catch (e) {
      throw new LabError(
        'lab-setup',
        `cached image manifest ${manifestPath} is unreadable (${(e as Error).message}): remove ${dir} to rebuild it`,
        {},
        { cause: e },
      );
    }
    return loaded(dir, manifest, cached);
  };
  if (
    await access(manifestPath).then(
      () => true,
      () => false,
    )
  ) {
    progress(`using cached image ${dir}`);
    return read(true);
  }
  // Two runs building the same image at once would each do the whole job; let one wait.
  const release = await acquireLock(`${dir}.lock`, { timeoutMs: 30 * 60_000, what: `building image ${name}` });
  try {
    if (
      await access(manifestPath).then(
        () => true,
        () => false,
      )
    ) {
      progress(`using cached image ${dir} (built meanwhile by another process)`);
      return read(true);
    }
    await sweepStaleBuilds(images);
    const tmp = `${dir}.tmp-${process.pid}`;
    const work = `${dir}.work-${process.pid}`;
    for (const d of [tmp, work]) {
      await rm(d, { recursive: true, force: true });
      await mkdir(d, { recursive: true, mode: 0o700 });
    }
    const t0 = Date.now();
    progress(`building image ${name}-${key} in ${tmp}`);
    try {
      const manifest = await build(tmp, work);
      const full: ImageManifest = { ...manifest, builtAt: new Date().toISOString(), buildMs: Date.now() - t0 };
      await writeFile(join(tmp, 'manifest.json'), JSON.stringify(full, null, 2));
      await rename(tmp, dir);
      progress(`image ${name} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${dir}`);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      // an image that cannot be built is the lab's failure, whatever broke inside the build
      throw isLabError(e) ? e : new LabError('lab-setup', `building image ${name} failed: ${(e as Error).message}`, {}, { cause: e });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    return read(false);
  } finally {
    await release();
  }
}

/** A complete image found in the cache (a build in progress has no manifest.json in place yet). */
export interface CachedImageEntry {
  name: string;
  dir: string;
  sizeBytes: number;
  builtAt: string;
}

/** Bytes on disk, as `du` counts them: a sparse disk image counts what it holds, not its length. */
async function sizeOf(path: string): Promise<number> {
  const s = await lstat(path);
  let total = s.blocks * 512;
  if (!s.isDirectory()) return total;
  for (const entry of await readdir(path)) total += await sizeOf(join(path, entry));
  return total;
}

/** Every complete image of `name` in the cache, newest first. */
export async function cachedImagesOf(name: string): Promise<CachedImageEntry[]> {
  const images = join(cacheRoot(), 'images');
  const found: CachedImageEntry[] = [];
  for (const entry of await readdir(images).catch(() => [] as string[])) {
    if (!new RegExp(`^${name.replace(/[.+-]/g, '\\$&')}-[0-9a-f]{16}$`).test(entry)) continue;
    const dir = join(images, entry);
    const manifest = await readFile(join(dir, 'manifest.json'), 'utf8').then(
      (t) => JSON.parse(t) as ImageManifest,
      () => undefined,
    );
    if (manifest) found.push({ name, dir, sizeBytes: await sizeOf(dir), builtAt: manifest.builtAt });
  }
  return found.sort((a, b) => b.builtAt.localeCompare(a.builtAt));
}
