/**
 * The armhf guest of the kernel-upgrade suite (seed 000) on the emulated lab, from Debian's
 * armhf packages: a virtio root disk (ext4, busybox) whose /boot is the 9p share, and, for
 * each kernel version, the kernel and a per-kernel initramfs carrying that kernel's own
 * modules (virtio, ext4, 9p: modules in Debian's armmp). The disk also holds a pool of
 * those kernels, from which the guest "installs" one the way the kernel package does
 * (image into /boot, links moved by linux-update-symlinks): no network, no apt in the guest.
 * What the guest cannot do itself is build an initramfs; the pool's are built here.
 */
import { copyFile, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../drivers/errors.js';
import { runLocal } from '../drivers/local.js';
import { type BuiltImage, cachedImage, cacheRoot, debCacheDir, imageKey } from './cache.js';
import { GUEST_FAILED, GUEST_KERNEL_INSTALL } from './contracts/armhf-guest.js';
import { CONSOLE_AND_NULL, writeInitramfs } from './cpio.js';
import { fetchDebs, foreignApt, type Progress, resolvePackages, unpackDeb } from './debs.js';
import { RootfsBuilder } from './rootfs.js';

/** Debian's armhf kernels the emulated lab upgrades between (both fetchable with apt-get download). */
export const ARMHF_KERNELS = ['6.1.0-47-armmp', '6.1.0-50-armmp'] as const;
/** Where the guest keeps the kernels it can install (contracts/armhf-guest.ts: the command that installs one). */
export const GUEST_KERNEL_POOL = '/var/lib/labrig/kernels';
export const GUEST_HOSTNAME = 'labrig-armhf';
const RECIPE_VERSION = 1;

/** Modules the initramfs loads, dependencies resolved from each .ko's modinfo. */
const MODULES = ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4', '9pnet_virtio', '9p'];

// busybox is armhf: it cannot run here to list its applets, so the guest installs them itself.
const initramfsInit = (version: string) => `#!/bin/busybox sh
# labrig armhf initramfs for ${version}: this kernel's modules, then the virtio root disk.
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "labrig-initramfs: kernel $(uname -r), initramfs ${version}"
while read -r m; do insmod "$m" || echo "${GUEST_FAILED}: insmod $m"; done < /etc/modules.order
root=/dev/vda
for a in $(cat /proc/cmdline); do case "$a" in root=*) root="\${a#root=}";; esac; done
i=0; while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mount -t ext4 -o rw "$root" /newroot || { echo "${GUEST_FAILED}: cannot mount $root"; exec sh; }
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
`;

const rcS = `#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
mount -t sysfs sysfs /sys
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
hostname -F /etc/hostname
# /boot from fstab: the 9p share (the seed's line, without systemd's automount option)
mount -a -t 9p || echo "${GUEST_FAILED}: mount /boot failed"
grep -q ' /boot 9p ' /proc/mounts || echo "${GUEST_FAILED}: /boot is not the 9p share"
echo "labrig-guest: up on $(uname -r), /boot/vmlinuz -> $(readlink /boot/vmlinuz 2>/dev/null || echo none)"
`;

const inittab = `::sysinit:/etc/init.d/rcS
ttyAMA0::respawn:/sbin/getty -L 115200 ttyAMA0 vt100
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
`;

const fstab = `/dev/vda / ext4 rw 0 1
virtio-boot /boot 9p trans=virtio,version=9p2000.L 0 0
`;

/**
 * What installing linux-image-<version> does to /boot with link_in_boot = yes: dpkg unpacks the
 * image (a .dpkg-new renamed into place), the initramfs appears, then linux-update-symlinks
 * points vmlinuz/initrd.img at the new version and keeps the previous targets as .old.
 * BOOT and POOL may be overridden (the unit test runs it on a scratch directory).
 */
export const kernelInstallScript = `#!/bin/sh
set -e
v="$1"
[ -n "$v" ] || { echo "usage: $0 <kernel version>" >&2; exit 2; }
BOOT="\${BOOT:-/boot}"
POOL="\${POOL:-${GUEST_KERNEL_POOL}}"
for f in vmlinuz initrd.img; do
  [ -f "$POOL/$v/$f-$v" ] || { echo "$0: $POOL/$v has no $f-$v" >&2; exit 1; }
done
for f in vmlinuz initrd.img; do
  cp "$POOL/$v/$f-$v" "$BOOT/$f-$v.dpkg-new"
  mv -f "$BOOT/$f-$v.dpkg-new" "$BOOT/$f-$v"
done
for f in vmlinuz initrd.img; do
  cur="$(readlink "$BOOT/$f" 2>/dev/null || true)"
  [ "$cur" = "$f-$v" ] && continue
  [ -z "$cur" ] || ln -sfn "$cur" "$BOOT/$f.old"
  ln -sfn "$f-$v" "$BOOT/$f"
done
sync
echo "labrig-kernel-install: $v: vmlinuz -> $(readlink "$BOOT/vmlinuz"), initrd.img -> $(readlink "$BOOT/initrd.img")"
`;

/** What keys a busybox initramfs in an image's cache key: its init and its modules. */
export const busyboxInitramfsKey = (extraModules: readonly string[] = []) =>
  `${initramfsInit('@')}\n${[...MODULES, ...extraModules].join(',')}`;

/** Image file keys: the kernel and initramfs of each version, and the root disk. */
export const kernelFile = (version: string) => `vmlinuz-${version}`;
export const initrdFile = (version: string) => `initrd.img-${version}`;

/** A busybox initramfs for `version`: that kernel's virtio, ext4 and 9p modules, then switch_root to /dev/vda's /sbin/init. */
export async function busyboxInitramfs(
  pkgRoot: string,
  work: string,
  version: string,
  out: string,
  progress: Progress,
  extraModules: readonly string[] = [],
): Promise<void> {
  const root = new RootfsBuilder(join(work, `initramfs-${version}`), pkgRoot);
  await root.mkdirs(['bin', 'proc', 'sys', 'dev', 'etc', 'newroot']);
  await root.copyFromPackages('/bin/busybox');
  const modules = await root.kernelModules(version, [...MODULES, ...extraModules]);
  await root.write('/etc/modules.order', `${modules.join('\n')}\n`);
  await root.write('/init', initramfsInit(version), 0o755);
  const size = await writeInitramfs(root.dir, CONSOLE_AND_NULL, out);
  progress(`armhf initramfs ${version}: ${(size / 1e6).toFixed(1)} MB, ${modules.length} modules`);
}

async function rootDisk(pkgRoot: string, work: string, tmp: string, kernels: readonly string[], progress: Progress): Promise<void> {
  const root = new RootfsBuilder(join(work, 'rootfs'), pkgRoot);
  await root.mkdirs(['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc/init.d', 'proc', 'sys', 'dev', 'run', 'boot', 'var/log', 'lib/modules']);
  await root.mkdirs(['tmp'], 0o1777);
  await root.mkdirs(['root'], 0o700);
  await root.copyFromPackages('/bin/busybox');
  // The links init needs before rcS can run `busybox --install`.
  for (const l of ['bin/sh', 'sbin/init']) await symlink('/bin/busybox', join(root.dir, l));
  await root.write('/etc/inittab', inittab);
  await root.write('/etc/init.d/rcS', rcS, 0o755);
  await root.write('/etc/fstab', fstab);
  await root.write('/etc/kernel-img.conf', 'do_symlinks = yes\nlink_in_boot = yes\n');
  await root.write('/etc/hostname', `${GUEST_HOSTNAME}\n`);
  await root.write('/etc/issue', 'labrig armhf guest (seed 000)\n');
  await root.write('/etc/passwd', 'root::0:0:root:/root:/bin/sh\n');
  await root.write('/etc/group', 'root:x:0:\n');
  await root.write('/etc/shells', '/bin/sh\n');
  await root.write('/etc/profile', 'export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n');
  await root.write(GUEST_KERNEL_INSTALL, kernelInstallScript, 0o755);
  for (const v of kernels) {
    await mkdir(join(root.dir, GUEST_KERNEL_POOL, v), { recursive: true });
    await copyFile(join(tmp, kernelFile(v)), join(root.dir, GUEST_KERNEL_POOL, v, kernelFile(v)));
    await copyFile(join(tmp, initrdFile(v)), join(root.dir, GUEST_KERNEL_POOL, v, initrdFile(v)));
  }
  const disk = join(tmp, 'root.img');
  const r = await runLocal(['mke2fs', '-q', '-F', '-t', 'ext4', '-L', 'labrig-root', '-E', 'root_owner=0:0', '-d', root.dir, disk, '64M'], {
    check: false,
    timeoutMs: 120_000,
  });
  if (r.code !== 0) throw new LabError('lab-setup', `mke2fs could not make the armhf root disk: ${(r.stderr || r.stdout).trim()}`);
  progress(`armhf root disk: ${disk} (64 MiB ext4, kernels in the pool: ${kernels.join(', ')})`);
}

/** The cached guest image for `kernels` (the first boots first; the others are upgrades). */
export async function armhfGuestImage(kernels: readonly string[], progress: Progress): Promise<BuiltImage> {
  if (kernels.length === 0) throw new LabError('config', 'the armhf guest needs at least one kernel version');
  const apt = foreignApt('armhf', join(cacheRoot(), 'apt-lists-armhf'));
  const pkgs = await resolvePackages([...kernels.map((v) => `linux-image-${v}`), 'busybox-static'], apt, progress);
  const key = imageKey('armhf-guest', RECIPE_VERSION, pkgs, [
    initramfsInit('@'),
    rcS,
    inittab,
    fstab,
    kernelInstallScript,
    MODULES.join(','),
  ]);
  return cachedImage('armhf-guest', key, progress, async (tmp, work) => {
    const debs = await fetchDebs(pkgs, debCacheDir(apt.arch), apt, progress);
    const pkgRoot = join(work, 'pkgs');
    for (const [i, deb] of debs.entries()) {
      progress(`[${i + 1}/${debs.length}] unpacking ${pkgs[i]!.name}`);
      await unpackDeb(deb, pkgRoot);
    }
    const files: Record<string, string> = { disk: 'root.img' };
    for (const v of kernels) {
      await copyFile(join(pkgRoot, 'boot', `vmlinuz-${v}`), join(tmp, kernelFile(v)));
      await busyboxInitramfs(pkgRoot, work, v, join(tmp, initrdFile(v)), progress);
      files[kernelFile(v)] = kernelFile(v);
      files[initrdFile(v)] = initrdFile(v);
    }
    await rootDisk(pkgRoot, work, tmp, kernels, progress);
    return {
      name: 'armhf-guest',
      recipeVersion: RECIPE_VERSION,
      packages: pkgs,
      kernelVersion: kernels[0]!,
      files,
      // The guest has no SSH: the suite reaches it on its serial console only.
      hostKey: { publicKey: '', fingerprint: '' },
    };
  });
}
