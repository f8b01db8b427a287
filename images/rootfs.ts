/**
 * Assembles an initramfs tree from unpacked Debian packages (`pkgRoot`, all packages
 * unpacked into one tree as if installed): busybox applet links, binaries with the
 * libraries they link, kernel modules with their dependencies. Every host recipe uses it.
 */
import { chmod, copyFile, cp, lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { LabError } from '../drivers/errors.js';
import { runLocal } from '../drivers/local.js';

export class RootfsBuilder {
  constructor(
    /** The tree that becomes `/` in the guest. */
    readonly dir: string,
    /** Where the packages were unpacked. */
    readonly pkgRoot: string,
  ) {}

  async mkdirs(paths: readonly string[], mode = 0o755): Promise<void> {
    for (const p of paths) {
      await mkdir(join(this.dir, p), { recursive: true });
      await chmod(join(this.dir, p), mode);
    }
  }

  async write(path: string, content: string | Buffer, mode = 0o644): Promise<void> {
    await mkdir(dirname(join(this.dir, path)), { recursive: true });
    await writeFile(join(this.dir, path), content);
    await chmod(join(this.dir, path), mode);
  }

  /** Copies a file of the packages (symlinks followed inside pkgRoot) to `dest` in the guest. */
  async copyFromPackages(path: string, dest = path): Promise<void> {
    const real = await resolveInRoot(this.pkgRoot, path);
    const target = join(this.dir, dest);
    await mkdir(dirname(target), { recursive: true });
    await copyFile(real, target);
    await chmod(target, (await lstat(real)).mode & 0o7777);
  }

  /** Copies a directory of the packages, leaving out the entries whose names are in `skip` (anywhere in the tree). */
  async treeFromPackages(path: string, skip: readonly string[] = []): Promise<void> {
    const real = await resolveInRoot(this.pkgRoot, path);
    await cp(real, join(this.dir, path), {
      recursive: true,
      verbatimSymlinks: true,
      filter: (src) => !skip.includes(posix.basename(src)),
    });
  }

  /** `busybox --list-full`: one symlink per applet, where Debian's busybox would put it. */
  async busyboxApplets(busyboxPath = '/bin/busybox', required: readonly string[] = []): Promise<string[]> {
    await this.copyFromPackages(busyboxPath, '/bin/busybox');
    const { stdout } = await runLocal([join(this.pkgRoot, busyboxPath), '--list-full']);
    const applets = stdout
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    const names = applets.map((a) => posix.basename(a));
    const missing = required.filter((r) => !names.includes(r));
    if (missing.length) throw new LabError('lab-setup', `busybox at ${busyboxPath} lacks applets: ${missing.join(', ')}`);
    for (const applet of applets) {
      const link = join(this.dir, applet);
      if (
        await lstat(link).then(
          () => true,
          () => false,
        )
      )
        continue;
      await mkdir(dirname(link), { recursive: true });
      await symlink('/bin/busybox', link);
    }
    return names;
  }

  /**
   * Copies `binary` and every library `ldd` resolves for it — from the packages, never from
   * the runner: a library missing from the packages is an error naming it.
   */
  async binaryWithLibs(binary: string, dest = binary, privateLibDirs: readonly string[] = []): Promise<void> {
    await this.copyFromPackages(binary, dest);
    // privateLibDirs: a RUNPATH outside the standard ones (Xen's /usr/lib/xen-4.17/lib/…), looked up in the packages
    const libDirs = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', ...privateLibDirs.map((d) => d.replace(/^\//, ''))].map((d) =>
      join(this.pkgRoot, d),
    );
    const r = await runLocal(['ldd', join(this.pkgRoot, binary)], { env: { LD_LIBRARY_PATH: libDirs.join(':') }, check: false });
    if (/not a dynamic executable|statically linked/.test(r.stdout + r.stderr)) return;
    if (r.code !== 0) throw new LabError('lab-setup', `ldd ${binary} failed: ${r.stderr.trim() || r.stdout.trim()}`);
    for (const line of r.stdout.split('\n')) {
      const m = line.trim().match(/^(\S+)(?: => (\S+))? \(0x[0-9a-f]+\)$/) ?? line.trim().match(/^(\S+) => (not found)$/);
      if (!m || m[1]!.startsWith('linux-vdso')) continue;
      const [, soname, resolved] = m;
      if (resolved === 'not found') throw new LabError('lab-setup', `${binary} needs ${soname}, which no unpacked package provides`);
      if (!resolved) {
        // The program interpreter: take the packages' copy at the same path.
        await this.copyFromPackages(soname!);
        continue;
      }
      if (!resolved.startsWith(`${this.pkgRoot}/`))
        throw new LabError('lab-setup', `${binary} needs ${soname}, found only on the runner (${resolved}): add its package to the recipe`);
      await this.copyFromPackages(resolved.slice(this.pkgRoot.length));
    }
  }

  /**
   * Kernel modules `names` and everything they depend on (the `depends=` of each .ko's
   * modinfo, as depmod would read it), copied uncompressed. Returns their guest paths in
   * load order, dependencies first — busybox insmod needs no modules.dep then.
   */
  async kernelModules(kernelVersion: string, names: readonly string[]): Promise<string[]> {
    const base = `/lib/modules/${kernelVersion}`;
    const index = await moduleIndex(join(this.pkgRoot, base));
    const order: string[] = [];
    const visit = async (name: string, chain: string[]): Promise<void> => {
      const key = name.replace(/-/g, '_');
      const rel = index.get(key);
      if (!rel)
        throw new LabError('lab-setup', `kernel ${kernelVersion} has no module ${name} (needed by ${chain.join(' → ') || 'the recipe'})`);
      const guestPath = `${base}/${rel.replace(/\.xz$/, '')}`;
      if (order.includes(guestPath)) return;
      const data = await readModule(join(this.pkgRoot, base, rel));
      for (const dep of modinfoDepends(data)) await visit(dep, [...chain, name]);
      await this.write(guestPath, data);
      order.push(guestPath);
    };
    for (const n of names) await visit(n, []);
    return order;
  }
}

/** `depends=` of a module's .modinfo section: comma-separated module names. */
export function modinfoDepends(ko: Buffer): string[] {
  const at = ko.indexOf('\0depends=');
  if (at < 0) return [];
  const end = ko.indexOf(0, at + 1);
  return ko
    .subarray(at + '\0depends='.length, end)
    .toString()
    .split(',')
    .filter(Boolean);
}

async function moduleIndex(dir: string): Promise<Map<string, string>> {
  const index = new Map<string, string>();
  async function walk(rel: string): Promise<void> {
    for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else if (/\.ko(\.xz)?$/.test(e.name)) index.set(e.name.replace(/\.ko(\.xz)?$/, '').replace(/-/g, '_'), r);
    }
  }
  await walk('kernel');
  return index;
}

async function readModule(path: string): Promise<Buffer> {
  if (!path.endsWith('.xz')) return readFile(path);
  // Binary output does not travel well through runLocal's text result: decompress beside it.
  await runLocal(['xz', '-dk', '-f', path]);
  return readFile(path.replace(/\.xz$/, ''));
}

/** Follows symlinks inside `root`, absolute targets taken relative to `root`. */
export async function resolveInRoot(root: string, path: string): Promise<string> {
  let current = posix.normalize(`/${path}`);
  for (let hops = 0; hops < 40; hops++) {
    const parts = current.split('/').filter(Boolean);
    let prefix = '';
    let changed = false;
    for (const [i, part] of parts.entries()) {
      const candidate = `${prefix}/${part}`;
      const st = await lstat(join(root, candidate)).catch(() => undefined);
      if (!st) throw new LabError('lab-setup', `${path} is not in the unpacked packages (${root})`);
      if (st.isSymbolicLink()) {
        const target = await readlink(join(root, candidate));
        const base = target.startsWith('/') ? target : posix.join(prefix || '/', target);
        current = posix.normalize(`/${[base, ...parts.slice(i + 1)].join('/')}`);
        changed = true;
        break;
      }
      prefix = candidate;
    }
    if (!changed) return join(root, current);
  }
  throw new LabError('lab-setup', `too many symlinks resolving ${path} in ${root}`);
}
