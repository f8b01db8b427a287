/**
 * A real Debian 12 armhf guest for the kernel-upgrade suite (seed 000), built from Debian's
 * packages by mmdebstrap: the armhf maintainer scripts run through qemu-user (binfmt_misc), so
 * the tree is configured as on an installed system — systemd, dpkg/apt, initramfs-tools. No
 * kernel is installed in it: the guest installs its kernels itself with apt from the flat
 * repository the host serves on a second 9p share (contracts/armhf-debian.ts), and Debian's
 * postinst, initramfs-tools and linux-update-symlinks fill its 9p /boot. Its first boot uses the
 * installer files: kernels[0]'s vmlinuz and a busybox initramfs with that kernel's virtio, ext4,
 * 9p and autofs modules (the seed booted the installer's kernel the same way). The tree is cached
 * apart from the kernels (image armhf-debian-disk): a new kernel upload does not run mmdebstrap.
 * FIELD-NOTES "A real Debian armhf guest": mkinitramfs under qemu-user is the slow part, so
 * the build makes no initramfs at all; the guest makes its own (MODULES=dep).
 */

import { createHash } from 'node:crypto';
import { copyFile, link, mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { LabError } from '../drivers/errors.js';
import { runLocal } from '../drivers/local.js';
import { busyboxInitramfs, busyboxInitramfsKey } from './armhf-guest.js';
import { type BuiltImage, cachedImage, cacheRoot, debCacheDir, imageKey } from './cache.js';
import { APT_SHARE_MOUNT, APT_SHARE_TAG, APT_SOURCE_LINE } from './contracts/armhf-debian.js';
import { type AptContext, fetchDebs, foreignApt, type Progress, resolvePackages, unpackDeb } from './debs.js';

export const ARMHF_DEBIAN = 'armhf-debian';
const DEBIAN_TREE = 'armhf-debian-disk';
export const DEBIAN_HOSTNAME = 'labrig-armhf-debian';
const RECIPE_VERSION = 1;
const SUITE = 'bookworm';
/** What the tree holds besides Essential and apt (mmdebstrap --variant=apt): no kernel, no network. */
const INCLUDE = ['systemd-sysv', 'udev', 'kmod', 'initramfs-tools', 'linux-base', 'zstd', 'e2fsprogs', 'procps', 'busybox'];
/**
 * The installer's initramfs loads, beside virtio, ext4 and 9p: autofs (a module in armmp), without
 * which systemd's x-systemd.automount /boot cannot work while the tree has no modules yet.
 */
const INSTALLER_MODULES = ['autofs4'];
/** The disk: ext4 made from the tree by mke2fs -d (no loop mount), then qcow2 for the upload. */
const DISK_SIZE = '2G';

/** Image file keys. Repository files are `repo/<name>`. */
export const INSTALLER_KERNEL = 'installer-vmlinuz';
export const INSTALLER_INITRD = 'installer-initrd';
export const DEBIAN_DISK = 'disk';
const REPO_PREFIX = 'repo/';
export const repoFiles = (image: BuiltImage) =>
  Object.keys(image.manifest.files)
    .filter((k) => k.startsWith(REPO_PREFIX))
    .map((k) => ({ name: k.slice(REPO_PREFIX.length), path: image.file(k) }));

export const fstab = `/dev/vda / ext4 rw,errors=remount-ro 0 1
virtio-boot /boot 9p trans=virtio,version=9p2000.L,x-systemd.automount 0 0
${APT_SHARE_TAG} ${APT_SHARE_MOUNT} 9p trans=virtio,version=9p2000.L,ro,x-systemd.automount 0 0
`;

/** The links in /boot, as the seed's 9p /boot needs them (Debian keeps them in / otherwise). */
export const kernelImgConf = 'do_symlinks = yes\nlink_in_boot = yes\n';

/** Timers that would take apt's lock under the suite's feet. */
const MASKED = ['apt-daily.timer', 'apt-daily-upgrade.timer', 'dpkg-db-backup.timer', 'e2scrub_all.timer', 'fstrim.timer'];

/** The mmdebstrap command (root mode: the runner is root; maintainer scripts run through qemu-user). */
export function mmdebstrapArgv(dir: string): string[] {
  return [
    'mmdebstrap',
    '--mode=root',
    '--variant=apt',
    '--architectures=armhf',
    `--include=${INCLUDE.join(',')}`,
    '--dpkgopt=path-exclude=/usr/share/man/*',
    '--dpkgopt=path-exclude=/usr/share/locale/*',
    '--dpkgopt=path-exclude=/usr/share/doc/*',
    '--dpkgopt=path-include=/usr/share/doc/*/copyright',
    SUITE,
    dir,
  ];
}

/** binfmt_misc mounted and qemu-arm enabled, or why the build cannot run armhf maintainer scripts. */
async function ensureBinfmt(progress: Progress): Promise<void> {
  const entry = '/proc/sys/fs/binfmt_misc/qemu-arm';
  const enabled = async () => (await readFile(entry, 'utf8').catch(() => '')).startsWith('enabled');
  if (await enabled()) return;
  progress('binfmt_misc: mounting it and enabling qemu-arm (qemu-user-static, binfmt-support)');
  await runLocal(
    ['sh', '-c', 'grep -qs " /proc/sys/fs/binfmt_misc " /proc/mounts || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc'],
    {
      check: false,
      timeoutMs: 30_000,
    },
  );
  await runLocal(['update-binfmts', '--enable', 'qemu-arm'], { check: false, timeoutMs: 30_000 });
  if (!(await enabled()))
    throw new LabError(
      'lab-setup',
      `cannot run armhf binaries here: ${entry} is not enabled (install qemu-user-static and binfmt-support: bin/setup.sh)`,
    );
}

/** A flat apt repository (Packages, Release) of `debs`: what `dpkg-scanpackages` and `apt-ftparchive release` would write. */
export async function writeFlatRepo(debs: readonly string[], dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const stanzas: string[] = [];
  for (const deb of debs) {
    const name = basename(deb);
    await copyFile(deb, join(dir, name));
    const body = await readFile(deb);
    const control = (await runLocal(['dpkg-deb', '-f', deb], { timeoutMs: 60_000 })).stdout.trimEnd();
    const sha256 = createHash('sha256').update(body).digest('hex');
    const md5 = createHash('md5').update(body).digest('hex');
    stanzas.push(`${control}\nFilename: ./${name}\nSize: ${body.length}\nMD5sum: ${md5}\nSHA256: ${sha256}\n`);
  }
  const packages = `${stanzas.join('\n')}`;
  await writeFile(join(dir, 'Packages'), packages);
  const release = [
    'Origin: labrig',
    'Label: labrig',
    `Date: ${new Date().toUTCString()}`,
    'Architectures: armhf',
    'SHA256:',
    ` ${createHash('sha256').update(packages).digest('hex')} ${Buffer.byteLength(packages)} Packages`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'Release'), release);
  return [...debs.map((d) => basename(d)), 'Packages', 'Release'];
}

/** What the tree needs beyond its packages: fstab, kernel-img.conf, the apt source, a root without password. */
async function configureTree(root: string): Promise<void> {
  const w = async (path: string, content: string) => {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), content);
  };
  await w('/etc/fstab', fstab);
  await w('/etc/kernel-img.conf', kernelImgConf);
  await w('/etc/hostname', `${DEBIAN_HOSTNAME}\n`);
  await w('/etc/hosts', `127.0.0.1 localhost\n127.0.1.1 ${DEBIAN_HOSTNAME}\n`);
  await w('/etc/apt/sources.list', `${APT_SOURCE_LINE}\n`);
  await w('/etc/apt/apt.conf.d/90labrig', 'Acquire::Languages "none";\nAPT::Install-Recommends "false";\n');
  // The guest builds its own initramfs; only what its root device needs (FIELD-NOTES).
  await w('/etc/initramfs-tools/conf.d/labrig', 'MODULES=dep\n');
  await rm(join(root, 'etc/apt/sources.list.d'), { recursive: true, force: true });
  await mkdir(join(root, 'etc/apt/sources.list.d'));
  await rm(join(root, 'var/lib/apt/lists'), { recursive: true, force: true });
  await mkdir(join(root, 'var/lib/apt/lists/partial'), { recursive: true });
  await mkdir(join(root, APT_SHARE_MOUNT), { recursive: true });
  for (const unit of MASKED) {
    await rm(join(root, 'etc/systemd/system', unit), { force: true });
    await symlink('/dev/null', join(root, 'etc/systemd/system', unit));
  }
  const shadow = join(root, 'etc/shadow');
  const text = await readFile(shadow, 'utf8');
  if (!/^root:[^:]*:/m.test(text)) throw new LabError('lab-setup', `${shadow} has no root line`);
  await writeFile(shadow, text.replace(/^root:[^:]*:/m, 'root::'));
}

/**
 * The Debian tree as a disk, cached on its own: it holds no kernel, so a new kernel upload does
 * not build it again. mmdebstrap takes whatever bookworm has; the versions of its key packages
 * key the cache.
 */
async function debianDisk(apt: AptContext, progress: Progress): Promise<BuiltImage> {
  const pkgs = await resolvePackages(['systemd', 'initramfs-tools', 'linux-base', 'apt', 'udev'], apt, progress);
  const key = imageKey(DEBIAN_TREE, RECIPE_VERSION, pkgs, [
    mmdebstrapArgv('@').join(' '),
    fstab,
    kernelImgConf,
    APT_SOURCE_LINE,
    MASKED.join(','),
    DISK_SIZE,
  ]);
  return cachedImage(DEBIAN_TREE, key, progress, async (tmp, work) => {
    await ensureBinfmt(progress);
    const tree = join(work, 'rootfs');
    const t0 = Date.now();
    progress(`mmdebstrap ${SUITE} armhf (maintainer scripts through qemu-user: minutes)`);
    const r = await runLocal(mmdebstrapArgv(tree), { check: false, timeoutMs: 45 * 60_000 });
    if (r.code !== 0)
      throw new LabError(
        'lab-setup',
        `mmdebstrap failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-8).join('\n')}`,
      );
    progress(`mmdebstrap done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    await configureTree(tree);
    const raw = join(work, 'root.img');
    const mk = await runLocal(['mke2fs', '-q', '-F', '-t', 'ext4', '-L', 'labrig-root', '-d', tree, raw, DISK_SIZE], {
      check: false,
      timeoutMs: 600_000,
    });
    if (mk.code !== 0) throw new LabError('lab-setup', `mke2fs could not make the armhf Debian disk: ${(mk.stderr || mk.stdout).trim()}`);
    await runLocal(['qemu-img', 'convert', '-O', 'qcow2', raw, join(tmp, 'root.qcow2')], { timeoutMs: 600_000 });
    progress(`armhf Debian disk: ${((await stat(join(tmp, 'root.qcow2'))).size / 1e6).toFixed(0)} MB qcow2 (${DISK_SIZE} ext4)`);
    return {
      name: DEBIAN_TREE,
      recipeVersion: RECIPE_VERSION,
      packages: pkgs,
      kernelVersion: '',
      files: { [DEBIAN_DISK]: 'root.qcow2' },
      hostKey: { publicKey: '', fingerprint: '' },
    };
  });
}

/** The cached guest image: the disk, the installer boot's files, and the repository of `kernels` (kernels[0] first, kernels[1] the upgrade). */
export async function armhfDebianImage(kernels: readonly [string, string], progress: Progress): Promise<BuiltImage> {
  const apt = foreignApt('armhf', join(cacheRoot(), 'apt-lists-armhf'));
  const disk = await debianDisk(apt, progress);
  const kernelPkgs = await resolvePackages(
    kernels.map((v) => `linux-image-${v}`),
    apt,
    progress,
  );
  const [busybox] = await resolvePackages(['busybox-static'], apt, progress);
  const key = imageKey(ARMHF_DEBIAN, RECIPE_VERSION, [...kernelPkgs, busybox!], [disk.dir, busyboxInitramfsKey(INSTALLER_MODULES)]);
  return cachedImage(ARMHF_DEBIAN, key, progress, async (tmp, work) => {
    const debs = await fetchDebs(kernelPkgs, debCacheDir(apt.arch), apt, progress);
    const [busyboxDeb] = await fetchDebs([busybox!], debCacheDir(apt.arch), apt, progress);
    // The disk is the tree's, linked (same cache filesystem) or copied.
    await link(disk.file(DEBIAN_DISK), join(tmp, 'root.qcow2')).catch(() => copyFile(disk.file(DEBIAN_DISK), join(tmp, 'root.qcow2')));
    const files: Record<string, string> = { [DEBIAN_DISK]: 'root.qcow2' };

    // The installer boot: kernels[0]'s vmlinuz and a busybox initramfs with its modules.
    const pkgRoot = join(work, 'pkgs');
    await unpackDeb(debs[0]!, pkgRoot);
    await unpackDeb(busyboxDeb!, pkgRoot);
    await copyFile(join(pkgRoot, 'boot', `vmlinuz-${kernels[0]}`), join(tmp, INSTALLER_KERNEL));
    await busyboxInitramfs(pkgRoot, work, kernels[0], join(tmp, INSTALLER_INITRD), progress, INSTALLER_MODULES);
    files[INSTALLER_KERNEL] = INSTALLER_KERNEL;
    files[INSTALLER_INITRD] = INSTALLER_INITRD;

    // The repository the host serves: the kernels' .debs as Debian ships them.
    for (const f of await writeFlatRepo(debs, join(tmp, 'repo'))) files[`${REPO_PREFIX}${f}`] = `repo/${f}`;
    progress(`armhf apt repository: ${kernelPkgs.map((p) => `${p.name} ${p.version}`).join(', ')}`);
    return {
      name: ARMHF_DEBIAN,
      recipeVersion: RECIPE_VERSION,
      packages: [...disk.manifest.packages, ...kernelPkgs, busybox!],
      kernelVersion: kernels[0],
      files,
      // Reached on its serial console only.
      hostKey: { publicKey: '', fingerprint: '' },
    };
  });
}
