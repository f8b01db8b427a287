/**
 * The probe guest of the pcie-root-port suite (its contract: contracts/probe-guest.ts): Debian's
 * arm64 kernel and a busybox initramfs that reports on its console whether the probe disk (serial
 * `labrig-probe`, placed behind the last root port) is visible, and how many PCI bridges the
 * kernel enumerated — then powers off. Built from packages, cached like the hosts' images.
 */
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BuiltImage, cachedImage, cacheRoot, debCacheDir, imageKey } from './cache.js';
import { PROBE_SERIAL, PROBE_VERDICT_PREFIX } from './contracts/probe-guest.js';
import { writeInitramfs } from './cpio.js';
import { fetchDebs, foreignApt, type Progress, resolvePackages, unpackDeb } from './debs.js';
import { RootfsBuilder } from './rootfs.js';

export const PROBE_GUEST_KERNEL = '6.1.0-56-arm64';
const RECIPE_VERSION = 2;

// busybox is arm64: it cannot run here to list its applets, so the guest installs them itself.
const init = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "${PROBE_VERDICT_PREFIX} init on $(uname -r)"
while read -r m; do insmod "$m" 2>/dev/null; done < /etc/modules.order
found=missing
# PCI enumeration is over before init runs: with no virtio-blk function at all, do not wait.
i=0; grep -qs 0x1af4 /sys/bus/pci/devices/*/vendor || i=25
while [ $i -lt 25 ]; do
  for s in /sys/block/vd*/serial; do [ "$(cat "$s" 2>/dev/null)" = "${PROBE_SERIAL}" ] && found=present; done
  [ $found = present ] && break
  sleep 0.2; i=$((i+1))
done
bridges=0; pci=0
for d in /sys/bus/pci/devices/*; do
  [ -e "$d/class" ] || continue
  pci=$((pci+1))
  case "$(cat "$d/class")" in 0x0604*) bridges=$((bridges+1));; esac
  echo "LABRIG-PCI: $(basename "$d") class=$(cat "$d/class") id=$(cat "$d/vendor"):$(cat "$d/device")"
done
echo "${PROBE_VERDICT_PREFIX} $found bridges=$bridges pci=$pci"
poweroff -f
`;

export async function aarch64ProbeGuest(progress: Progress): Promise<BuiltImage> {
  const apt = foreignApt('arm64', join(cacheRoot(), 'apt-lists-arm64'));
  const pkgs = await resolvePackages([`linux-image-${PROBE_GUEST_KERNEL}`, 'busybox-static'], apt, progress);
  const key = imageKey('aarch64-probe-guest', RECIPE_VERSION, pkgs, [init]);
  return cachedImage('aarch64-probe-guest', key, progress, async (tmp, work) => {
    const debs = await fetchDebs(pkgs, debCacheDir(apt.arch), apt, progress);
    const pkgRoot = join(work, 'pkgs');
    for (const deb of debs) await unpackDeb(deb, pkgRoot);
    const root = new RootfsBuilder(join(work, 'root'), pkgRoot);
    await root.mkdirs(['bin', 'proc', 'sys', 'dev', 'etc']);
    await root.copyFromPackages('/bin/busybox');
    const modules = await root.kernelModules(PROBE_GUEST_KERNEL, ['virtio_blk', 'virtio_pci']);
    await root.write('/etc/modules.order', `${modules.join('\n')}\n`);
    await root.write('/init', init, 0o755);
    await copyFile(join(pkgRoot, 'boot', `vmlinuz-${PROBE_GUEST_KERNEL}`), join(tmp, 'vmlinuz'));
    const size = await writeInitramfs(
      root.dir,
      [{ type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1 }],
      join(tmp, 'initrd.img'),
    );
    progress(`aarch64 probe guest: initramfs ${(size / 1e6).toFixed(1)} MB, modules ${modules.length}`);
    return {
      name: 'aarch64-probe-guest',
      recipeVersion: RECIPE_VERSION,
      packages: pkgs,
      kernelVersion: PROBE_GUEST_KERNEL,
      files: { kernel: 'vmlinuz', initrd: 'initrd.img' },
      hostKey: { publicKey: '', fingerprint: '' },
    };
  });
}
