/**
 * The image of emu-xen: Debian's Xen 4.17 hypervisor (gunzipped: QEMU's multiboot loader
 * takes the 32-bit ELF, not the .gz), Debian's amd64 kernel as PV dom0, and a dom0
 * initramfs with the xl toolstack started by hand the way xencommons would: modules,
 * xenfs on /proc/xen, xenstored, xen-init-dom0, xenconsoled. It also carries the PV domU
 * (same kernel, a busybox initramfs) the Xen suite creates.
 */
import { copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { LabError } from '../drivers/errors.js';
import { runLocal } from '../drivers/local.js';
import { debCacheDir, type ImageManifest, sshFingerprint } from './cache.js';
import { CONSOLE_AND_NULL, writeInitramfs } from './cpio.js';
import { type DebPackage, fetchDebs, hostApt, type Progress, unpackDeb } from './debs.js';
import { RootfsBuilder } from './rootfs.js';
import { buildDomuInitramfs } from './xen-domu.js';
import { buildDomuBootDisk } from './xen-domu-disk.js';

export const XEN_LIBEXEC = '/usr/lib/xen-4.17/bin';
/** Where the PV domU's kernel and initramfs live in dom0. */
export const DOMU_DIR = '/var/lib/labrig/domu';

/** The recipe's packages of `Architecture: all` (terminfo, initscripts' vars.sh). */
const ARCH_ALL = ['ncurses-base', 'initscripts'];

const HOST_KEY = '/etc/dropbear/dropbear_ed25519_host_key';

const APPLETS = [
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
  'ps',
  'pidof',
  'grep',
  'sed',
  'timeout',
  'ln',
  // the block hotplug script (a domU disk that is a file: a loop device) and xendomains
  'losetup',
  'stat',
  'readlink',
  'seq',
  'run-parts',
];

/** xl's helpers are exec'd from XEN_LIBEXEC (xenconsole for `xl console`), so the tree stays there. */
const XEN_TOOLS = ['xl', 'xenstored', 'xenconsoled', 'xenconsole', 'xen-init-dom0', 'libxl-save-helper', 'pygrub'];
const XENSTORE_NAMES = [
  'xenstore-read',
  'xenstore-write',
  'xenstore-ls',
  'xenstore-list',
  'xenstore-rm',
  'xenstore-exists',
  'xenstore-chmod',
  'xenstore-watch',
];

/**
 * Loaded in this order; xen-privcmd first because xenfs depends on it. netback + bridge: the
 * domU's vif; blkback + loop: its disk (a file); virtio_blk + ext4 (crc32c, its soft
 * dependency): dom0's own disk with /etc/xen.
 */
export const DOM0_MODULES = [
  'e1000',
  'xen-privcmd',
  'xenfs',
  'xen-evtchn',
  'xen-gntdev',
  'xen-gntalloc',
  'xen-netback',
  'bridge',
  'loop',
  'xen-blkback',
  'virtio_pci',
  'virtio_blk',
  'crc32c_generic',
  'ext4',
];

/** dom0's disk (QEMU's first virtio disk): its /etc/xen, so cfg files and /etc/xen/auto survive a reboot as on an installed dom0. */
export const DOM0_DISK = '/dev/vda';
/** The domU's boot disk for pygrub (xen-domu-disk.ts), beside its kernel and initramfs. */
export const DOMU_BOOT_DISK = `${DOMU_DIR}/disk.img`;

/** Python for pygrub and xendomains' xen-init-name: the stdlib without what neither imports. */
const PYTHON_STDLIB = '/usr/lib/python3.11';
const PYTHON_SKIP = [
  'test',
  'tests',
  'idlelib',
  'tkinter',
  'turtledemo',
  'lib2to3',
  'ensurepip',
  'pydoc_data',
  'distutils',
  'venv',
  'sqlite3',
  'lib-dynload',
  'config-3.11-x86_64-linux-gnu',
  // a link to /etc/python3.11, which python3.11-minimal's postinst would make
  'sitecustomize.py',
];
/** The compiled modules pygrub (curses, ctypes, resource, termios) and xen-init-name (json) load. */
const PYTHON_DYNLOAD = ['_ctypes', '_curses', '_json', 'resource', 'termios', '_contextvars', '_queue', '_posixshmem', '_typing'];
/** Xen's own Python (grub menu parsers, xenfsimage) and the filesystem plugin pygrub reads ext2/3/4 with. */
const XEN_PYTHON = '/usr/lib/xen-4.17/lib/python';
const XEN_PRIVATE_LIBS = '/usr/lib/xen-4.17/lib/x86_64-linux-gnu';

/** The bridge domU vifs join (DOMAIN.md §3's `xenbr0`); dom0's own eth0 stays off it. */
export const XEN_BRIDGE = 'xenbr0';

/** libxl runs vif-bridge itself (bash); these are it and what it sources. */
const HOTPLUG_SCRIPTS = [
  'vif-bridge',
  'block',
  'block-common.sh',
  'vif-common.sh',
  'xen-hotplug-common.sh',
  'xen-network-common.sh',
  'xen-script-common.sh',
  'hotplugpath.sh',
  'logging.sh',
  'locking.sh',
];

const inittab = `::sysinit:/etc/init.d/rcS
hvc0::respawn:/sbin/getty -L 115200 hvc0 vt100
::respawn:/usr/sbin/dropbear -F -E -s -B -p 22 -r ${HOST_KEY} 2>>/var/log/dropbear.log
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
`;

// What xencommons does on a Debian dom0, by hand (no systemd, no sysvinit scripts here).
// xenstored writes its pid file once its socket is up: that is what the wait below waits for.
const rcS = (hostname: string) => `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# the links udev makes on Debian; the hotplug scripts' lock (locking.sh) stats /dev/stdin
ln -s /proc/self/fd /dev/fd; ln -s /proc/self/fd/0 /dev/stdin; ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/xen /run/xenstored /run/lock /var/lib/xen /var/lib/xenstored /var/log/xen/console
hostname -F /etc/hostname
while read -r m; do insmod "$m" || echo "rcS: insmod $m failed"; done < /etc/modules.order
mount -t xenfs xenfs /proc/xen || echo "rcS: mount xenfs failed"
i=0; while [ ! -b ${DOM0_DISK} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mount -t ext4 ${DOM0_DISK} /etc/xen || echo "rcS: mount ${DOM0_DISK} on /etc/xen failed"
${XEN_LIBEXEC}/xenstored --pid-file /run/xen/xenstored.pid
i=0; while [ ! -s /run/xen/xenstored.pid ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
[ -s /run/xen/xenstored.pid ] || echo "rcS: xenstored did not start"
${XEN_LIBEXEC}/xen-init-dom0 >/var/log/xen/xen-init-dom0.log 2>&1 || echo "rcS: xen-init-dom0 failed"
${XEN_LIBEXEC}/xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
brctl addbr ${XEN_BRIDGE} && ip link set ${XEN_BRIDGE} up || echo "rcS: bridge ${XEN_BRIDGE} failed"
ip link set lo up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
ip link set eth0 up
i=0; while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
# Debian's rc2.d/S..xendomains: the domains linked in /etc/xen/auto, started before the logins
/etc/init.d/xendomains start >/var/log/xen/xendomains.log 2>&1 || echo "rcS: xendomains start failed"
echo "rcS: ${hostname} up, boot_id $(cat /proc/sys/kernel/random/boot_id)"
`;

export interface XenImageInput {
  name: string;
  recipeVersion: number;
  kernelVersion: string;
  packages: DebPackage[];
  clientPublicKey: string;
}

/** The dropbear host key, made once per image so its fingerprint can be pinned. */
async function dropbearHostKey(pkgRoot: string, work: string): Promise<{ key: Buffer; publicKey: string }> {
  const keyFile = join(work, 'dropbear_ed25519_host_key');
  const env = { LD_LIBRARY_PATH: ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu'].map((d) => join(pkgRoot, d)).join(':') };
  const dropbearkey = join(pkgRoot, 'usr/bin/dropbearkey');
  await runLocal([dropbearkey, '-t', 'ed25519', '-f', keyFile], { env });
  const { stdout } = await runLocal([dropbearkey, '-y', '-f', keyFile], { env });
  const publicKey = stdout
    .split('\n')
    .find((l) => l.startsWith('ssh-ed25519 '))
    ?.trim();
  if (!publicKey) throw new LabError('lab-setup', `dropbearkey -y printed no public key:\n${stdout}`);
  return { key: await readFile(keyFile), publicKey };
}

export async function buildXenImage(
  tmp: string,
  work: string,
  progress: Progress,
  input: XenImageInput,
): Promise<Omit<ImageManifest, 'builtAt' | 'buildMs'>> {
  const { packages: pkgs, kernelVersion } = input;
  // debFileName() names files after the apt context's arch: `Architecture: all` packages are
  // fetched through an 'all' context so their _all.deb is found (as pmem-image.ts does).
  const archAll = pkgs.filter((p) => ARCH_ALL.includes(p.name));
  const archOwn = pkgs.filter((p) => !ARCH_ALL.includes(p.name));
  const debs = [
    ...(await fetchDebs(archOwn, debCacheDir(hostApt.arch), hostApt, progress)),
    ...(await fetchDebs(archAll, debCacheDir('all'), { arch: 'all', options: hostApt.options }, progress)),
  ];
  const names = [...archOwn, ...archAll].map((p) => p.name);
  const pkgRoot = join(work, 'pkgs');
  for (const [i, deb] of debs.entries()) {
    progress(`[${i + 1}/${debs.length}] unpacking ${names[i]}`);
    await unpackDeb(deb, pkgRoot);
  }

  progress('Xen: gunzipping the hypervisor for the multiboot loader');
  const xenGz = await readFile(join(pkgRoot, 'boot/xen-4.17-amd64.gz'));
  await writeFile(join(tmp, 'xen'), gunzipSync(xenGz));

  progress('building the PV domU initramfs');
  const domuRamdisk = join(work, 'domu-initrd.img');
  const domuSize = await buildDomuInitramfs(pkgRoot, work, domuRamdisk, kernelVersion);

  const root = new RootfsBuilder(join(work, 'root'), pkgRoot);
  await root.mkdirs([
    'bin',
    'sbin',
    'usr/bin',
    'usr/sbin',
    'etc/init.d',
    'etc/dropbear',
    'etc/xen',
    'proc',
    'sys',
    'dev',
    'run',
    'lib/modules',
    'var/log',
    'var/lib',
  ]);
  await root.mkdirs(['tmp'], 0o1777);
  await root.mkdirs(['root', 'root/.ssh'], 0o700);
  progress('assembling the dom0 initramfs: busybox, dropbear, flock, xl toolstack, modules');
  await root.busyboxApplets('/bin/busybox', APPLETS);
  progress('dom0: python3.11 for pygrub and xendomains');
  await root.binaryWithLibs('/usr/bin/python3.11');
  await root.treeFromPackages(PYTHON_STDLIB, PYTHON_SKIP);
  for (const m of PYTHON_DYNLOAD) await root.binaryWithLibs(`${PYTHON_STDLIB}/lib-dynload/${m}.cpython-311-x86_64-linux-gnu.so`);
  await root.treeFromPackages(XEN_PYTHON, ['xenfsimage.cpython-311-x86_64-linux-gnu.so']);
  await root.binaryWithLibs(`${XEN_PYTHON}/xenfsimage.cpython-311-x86_64-linux-gnu.so`, undefined, [XEN_PRIVATE_LIBS]);
  await root.binaryWithLibs(`${XEN_PRIVATE_LIBS}/xenfsimage/ext2fs-lib/fsimage.so`, undefined, [XEN_PRIVATE_LIBS]);
  await root.treeFromPackages('/lib/terminfo');
  // xendomains as Debian ships it (xen-utils-common), with what it sources and runs
  for (const f of [
    '/etc/init.d/xendomains',
    '/etc/default/xendomains',
    '/usr/sbin/xen',
    '/usr/lib/xen-common/bin/xen-init-name',
    '/usr/lib/xen-common/bin/xen-init-list',
    '/lib/init/vars.sh',
    '/lib/lsb/init-functions',
  ])
    await root.copyFromPackages(f);
  await root.treeFromPackages('/lib/lsb/init-functions.d');
  await root.binaryWithLibs('/usr/sbin/dropbear');
  await root.binaryWithLibs('/usr/bin/flock');
  for (const tool of XEN_TOOLS) await root.binaryWithLibs(`${XEN_LIBEXEC}/${tool}`);
  await root.binaryWithLibs('/usr/bin/xenstore');
  await root.binaryWithLibs('/bin/bash');
  for (const script of HOTPLUG_SCRIPTS) await root.copyFromPackages(`/etc/xen/scripts/${script}`);
  // glibc dlopens libgcc_s for pthread_cancel/unwinding: ldd does not list it, xl aborts without it.
  await root.copyFromPackages('/lib/x86_64-linux-gnu/libgcc_s.so.1');
  const links = [
    ...['xl', 'xenstored', 'xenconsoled'].map((t) => [`/usr/sbin/${t}`, `${XEN_LIBEXEC}/${t}`] as const),
    ['/usr/bin/pygrub', `${XEN_LIBEXEC}/pygrub`] as const,
    ['/usr/bin/python3', 'python3.11'] as const,
    ...XENSTORE_NAMES.map((n) => [`/usr/bin/${n}`, 'xenstore'] as const),
    ['/var/run', '/run'] as const,
    ['/var/lock', '/run/lock'] as const,
  ];
  for (const [link, target] of links) await runLocal(['ln', '-s', target, join(root.dir, link)]);
  const modules = await root.kernelModules(kernelVersion, DOM0_MODULES);

  const hostKey = await dropbearHostKey(pkgRoot, work);
  await root.write(HOST_KEY, hostKey.key, 0o600);
  await root.write('/etc/inittab', inittab);
  await root.write('/etc/init.d/rcS', rcS(input.name), 0o755);
  await root.write('/etc/modules.order', `${modules.join('\n')}\n`);
  await root.write('/etc/hostname', `${input.name}\n`);
  await root.write('/etc/issue', `labrig emulated host ${input.name} (Xen dom0)\n`);
  await root.write('/etc/passwd', 'root::0:0:root:/root:/bin/sh\n');
  await root.write('/etc/group', 'root:x:0:\n');
  await root.write('/etc/shells', '/bin/sh\n');
  await root.write('/etc/profile', 'export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n');
  await root.write(
    '/etc/xen/xl.conf',
    '# labrig emu-xen: xl defaults (dom0_mem is fixed on the Xen command line, so no autoballoon)\nautoballoon="off"\n',
  );
  await root.write('/root/.ssh/authorized_keys', `${input.clientPublicKey}\n`, 0o600);
  await root.write('/init', '#!/bin/sh\nexec /sbin/init\n', 0o755);
  await root.write(`${DOMU_DIR}/vmlinuz`, await readFile(join(pkgRoot, 'boot', `vmlinuz-${kernelVersion}`)));
  await root.write(`${DOMU_DIR}/initrd.img`, await readFile(domuRamdisk));
  progress('domU boot disk for pygrub: ext4 with /boot and /boot/grub/grub.cfg');
  const bootDiskMiB = await buildDomuBootDisk(work, join(root.dir, DOMU_BOOT_DISK), {
    kernel: join(pkgRoot, 'boot', `vmlinuz-${kernelVersion}`),
    initrd: domuRamdisk,
    kernelVersion,
    args: 'console=hvc0',
  });

  // /etc/xen leaves the initramfs for dom0's disk, mounted there at boot: what an admin puts
  // in it (cfg files, links in auto/) outlives a reboot. QEMU opens the disk with
  // snapshot=on, so each QEMU start begins from this image and a guest reboot keeps the writes.
  progress('dom0 disk: /etc/xen (xl.conf, scripts, auto/) on ext4');
  const etcXen = join(work, 'dom0-etc-xen');
  await rename(join(root.dir, 'etc/xen'), etcXen);
  await mkdir(join(etcXen, 'auto'), { recursive: true });
  await root.mkdirs(['etc/xen']);
  const disk = await runLocal(
    ['mke2fs', '-q', '-F', '-t', 'ext4', '-L', 'labrig-dom0', '-E', 'root_owner=0:0', '-d', etcXen, join(tmp, 'disk.img'), '32M'],
    { timeoutMs: 120_000, check: false },
  );
  if (disk.code !== 0) throw new LabError('lab-setup', `mke2fs could not make dom0's disk: ${(disk.stderr || disk.stdout).trim()}`);

  progress('writing Xen, dom0 kernel and initramfs');
  await copyFile(join(pkgRoot, 'boot', `vmlinuz-${kernelVersion}`), join(tmp, 'vmlinuz'));
  const size = await writeInitramfs(root.dir, CONSOLE_AND_NULL, join(tmp, 'initrd.img'));
  progress(
    `dom0 initramfs: ${(size / 1e6).toFixed(1)} MB (domU initramfs ${(domuSize / 1e6).toFixed(1)} MB, boot disk ${bootDiskMiB} MiB), modules: ${modules.length}`,
  );
  await writeFile(join(tmp, 'hostkey.pub'), `${hostKey.publicKey}\n`);
  return {
    name: input.name,
    recipeVersion: input.recipeVersion,
    packages: pkgs,
    kernelVersion,
    files: { xen: 'xen', kernel: 'vmlinuz', initrd: 'initrd.img', disk: 'disk.img', hostKeyPub: 'hostkey.pub' },
    hostKey: { publicKey: hostKey.publicKey, fingerprint: sshFingerprint(hostKey.publicKey) },
  };
}
