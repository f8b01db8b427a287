/**
 * emu-mini: the smallest real host — an x86_64 TCG VM with Debian's kernel, a busybox
 * initramfs, dropbear with a host key made at build time (so the lab can pin it) and a
 * getty on the serial console. Root has an empty password: a test VM holds no secret.
 */

import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../../drivers/errors.js';
import { runLocal } from '../../drivers/local.js';
import { type BuiltImage, cachedImage, clientKey, debCacheDir, imageKey, sshFingerprint } from '../../images/cache.js';
import { CONSOLE_AND_NULL, writeInitramfs } from '../../images/cpio.js';
import { fetchDebs, hostApt, type Progress, resolvePackages, unpackDeb } from '../../images/debs.js';
import { RootfsBuilder } from '../../images/rootfs.js';
import { bmcPowerConfig, solConsoleConfig } from './access.js';
import type { EmulatedVmHost, VmHostRecord } from './hosts.js';

/** The Debian kernel ABI of emu-mini (apt-cache search linux-image-6.1.0 lists the choices). */
export const EMU_MINI_KERNEL = '6.1.0-56-amd64';
/** Bump when the recipe below changes what the image contains. */
const RECIPE_VERSION = 2;

/** A busybox userland with dropbear's sshd: what emu-mini is, and what emu-xen's dom0 runs beside xl. */
export const BUSYBOX_DROPBEAR_PACKAGES = [
  'busybox-static',
  'dropbear-bin',
  // dropbear's libraries (ldd checks that nothing else is needed)
  'libtomcrypt1',
  'libtommath1',
  'libgmp10',
  'zlib1g',
  'libcrypt1',
  'libc6',
  // flock(1): busybox 1.35 in Debian has no flock applet; the host lease needs one
  'util-linux',
];

const PACKAGES = [`linux-image-${EMU_MINI_KERNEL}`, ...BUSYBOX_DROPBEAR_PACKAGES];

/** What suites and drivers run on the guest; checked against busybox at build time. */
const REQUIRED_APPLETS = [
  'sh',
  'setsid',
  'stty',
  'kill',
  'sleep',
  'cat',
  'uname',
  'dmesg',
  'mount',
  'ip',
  'getty',
  'login',
  'init',
  'insmod',
  'hostname',
];

const HOST_KEY = '/etc/dropbear/dropbear_ed25519_host_key';

const inittab = `::sysinit:/etc/init.d/rcS
ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100
::respawn:/usr/sbin/dropbear -F -E -s -B -p 22 -r ${HOST_KEY} 2>>/var/log/dropbear.log
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
`;

// QEMU user networking: the guest is 10.0.2.15, the gateway 10.0.2.2 (slirp's fixed plan).
const rcS = `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
hostname -F /etc/hostname
while read -r m; do insmod "$m" || echo "rcS: insmod $m failed"; done < /etc/modules.order
ip link set lo up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
ip link set eth0 up
# Wait for the link (≈2 s under TCG) so SSH answers by the time login: shows.
i=0; while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "rcS: emu-mini up, boot_id $(cat /proc/sys/kernel/random/boot_id)"
`;

async function buildImage(
  tmp: string,
  work: string,
  progress: Progress,
  pubKey: string,
  pkgs: Awaited<ReturnType<typeof resolvePackages>>,
) {
  const debs = await fetchDebs(pkgs, debCacheDir(hostApt.arch), hostApt, progress);
  const pkgRoot = join(work, 'pkgs');
  for (const [i, deb] of debs.entries()) {
    progress(`[${i + 1}/${debs.length}] unpacking ${pkgs[i]!.name}`);
    await unpackDeb(deb, pkgRoot);
  }
  const root = new RootfsBuilder(join(work, 'root'), pkgRoot);
  await root.mkdirs([
    'bin',
    'sbin',
    'usr/bin',
    'usr/sbin',
    'etc/init.d',
    'etc/dropbear',
    'proc',
    'sys',
    'dev',
    'run',
    'var/log',
    'lib/modules',
  ]);
  await root.mkdirs(['tmp'], 0o1777);
  await root.mkdirs(['root', 'root/.ssh'], 0o700);
  progress('assembling the initramfs: busybox, dropbear, flock, modules');
  await root.busyboxApplets('/bin/busybox', REQUIRED_APPLETS);
  await root.binaryWithLibs('/usr/sbin/dropbear');
  await root.binaryWithLibs('/usr/bin/flock');
  const modules = await root.kernelModules(EMU_MINI_KERNEL, ['e1000']);

  // The host key is made here, once per image, so its fingerprint can be pinned.
  const keyFile = join(work, 'dropbear_ed25519_host_key');
  const libs = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu'].map((d) => join(pkgRoot, d)).join(':');
  const dropbearkey = join(pkgRoot, 'usr/bin/dropbearkey');
  await runLocal([dropbearkey, '-t', 'ed25519', '-f', keyFile], { env: { LD_LIBRARY_PATH: libs } });
  const { stdout } = await runLocal([dropbearkey, '-y', '-f', keyFile], { env: { LD_LIBRARY_PATH: libs } });
  const publicKey = stdout
    .split('\n')
    .find((l) => l.startsWith('ssh-ed25519 '))
    ?.trim();
  if (!publicKey) throw new LabError('lab-setup', `dropbearkey -y printed no public key:\n${stdout}`);
  await root.write(HOST_KEY, await readFile(keyFile), 0o600);

  await root.write('/etc/inittab', inittab);
  await root.write('/etc/init.d/rcS', rcS, 0o755);
  await root.write('/etc/modules.order', `${modules.join('\n')}\n`);
  await root.write('/etc/hostname', 'emu-mini\n');
  await root.write('/etc/issue', 'labrig emulated host emu-mini\n');
  await root.write('/etc/passwd', 'root::0:0:root:/root:/bin/sh\n');
  await root.write('/etc/group', 'root:x:0:\n');
  await root.write('/etc/shells', '/bin/sh\n');
  await root.write('/etc/profile', 'export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n');
  await root.write('/root/.ssh/authorized_keys', `${pubKey}\n`, 0o600);
  await root.write('/init', '#!/bin/sh\nexec /sbin/init\n', 0o755);

  progress('writing kernel and initramfs');
  await copyFile(join(pkgRoot, 'boot', `vmlinuz-${EMU_MINI_KERNEL}`), join(tmp, 'vmlinuz'));
  const size = await writeInitramfs(root.dir, CONSOLE_AND_NULL, join(tmp, 'initrd.img'));
  progress(`initramfs: ${(size / 1e6).toFixed(1)} MB, modules: ${modules.length}`);
  await writeFile(join(tmp, 'hostkey.pub'), `${publicKey}\n`);
  return {
    name: 'emu-mini',
    recipeVersion: RECIPE_VERSION,
    packages: pkgs,
    kernelVersion: EMU_MINI_KERNEL,
    files: { kernel: 'vmlinuz', initrd: 'initrd.img', hostKeyPub: 'hostkey.pub' },
    hostKey: { publicKey, fingerprint: sshFingerprint(publicKey) },
  };
}

export async function emuMiniImage(progress: Progress): Promise<BuiltImage> {
  const pkgs = await resolvePackages(PACKAGES, hostApt, progress);
  const { publicKeyText } = await clientKey();
  const key = imageKey('emu-mini', RECIPE_VERSION, pkgs, [publicKeyText]);
  return cachedImage('emu-mini', key, progress, (tmp, work) => buildImage(tmp, work, progress, publicKeyText, pkgs));
}

export const emuMini: EmulatedVmHost = {
  name: 'emu-mini',
  defaultSshPort: 2223,
  // Reached like a rack server: its BMC powers it and carries its console (SOL), on an address of its own.
  address: '127.0.0.2',
  access: { kind: 'bmc' },
  image: emuMiniImage,
  vm: (image, { sshPort }) => ({
    name: 'emu-mini',
    binary: 'qemu-system-x86_64',
    machine: 'pc',
    cpu: 'max',
    memoryMiB: 512,
    smp: 1,
    kernel: image.file('kernel'),
    initrd: image.file('initrd'),
    append: 'console=ttyS0,115200',
    sshForwardPort: sshPort,
    nicModel: 'e1000',
  }),
  readyPattern: /^\S+ login: /m,
  readyTimeoutMs: 120_000,
  labHost: (r: VmHostRecord) => ({
    name: 'emu-mini',
    role: 'local',
    description: `x86_64 TCG VM, Debian kernel ${EMU_MINI_KERNEL}, busybox + dropbear; BMC ipmi_sim (IPMI lanplus power, SOL console)`,
    ssh: { address: r.address ?? '127.0.0.1', port: r.sshPort, user: 'root', identityFile: r.identityFile, hostKey: r.hostKey },
    ...(r.bmc
      ? { console: solConsoleConfig(r.bmc), power: bmcPowerConfig(r.bmc) }
      : {
          console: { kind: 'serial', path: r.ttyLink, baud: 115200, login: { user: 'root' } },
          power: { kind: 'qmp', socket: r.qmpSocket, start: r.startArgv },
        }),
    expect: { arch: 'x86_64', absent: ['kvm'] },
  }),
};
