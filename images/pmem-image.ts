/**
 * Builds emu-x86-pmem's image: an ext4 root disk made with `mke2fs -d` from a tree assembled
 * out of Debian packages (no root mounts, no chroot), holding TWO kernels in /boot, each with
 * its own initramfs and modules, so a kexec from one to the other is a real kernel change.
 * The disk also carries what the snapshot → kexec → restore procedure needs on the host:
 * kexec-tools, ndctl, daxio, mke2fs, qemu-system-x86_64 (with its TCG module and firmware),
 * qemu-img, and OpenSSH's sshd — and, when the recipe names one, a candidate QEMU under its own
 * prefix (images/qemu-candidate.ts) for the restore after the kexec.
 */
import { copyFile, cp, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LabError } from '../drivers/errors.js';
import { runLocal } from '../drivers/local.js';
import { debCacheDir, type ImageManifest, sshFingerprint } from './cache.js';
import { CONSOLE_AND_NULL, writeInitramfs } from './cpio.js';
import { type DebPackage, fetchDebs, hostApt, type Progress, unpackDeb } from './debs.js';
import { stagedPvhKernel } from './pmem-guest-kernel.js';
import { initramfsInit, inittab, rcS, sshdConfig } from './pmem-scripts.js';
import { type CandidateQemu, installCandidateQemu, unpackCandidateQemu } from './qemu-candidate.js';
import { RootfsBuilder } from './rootfs.js';

export interface PmemImageRecipe {
  name: string;
  recipeVersion: number;
  /** Kernel ABIs installed in /boot; the first is the one QEMU boots. */
  kernels: readonly string[];
  packages: DebPackage[];
  clientPublicKey: string;
  diskMiB: number;
  /** A second QEMU under its own prefix (the upgrade seed 003 restores with). */
  candidateQemu?: CandidateQemu;
}

/** Binaries copied with every library ldd finds for them (before busybox: see below). */
const BINARIES = [
  '/usr/sbin/sshd',
  '/sbin/kexec',
  '/usr/bin/ndctl',
  '/usr/bin/daxio',
  '/sbin/mke2fs',
  '/usr/bin/qemu-system-x86_64',
  // Debian builds QEMU with modules: TCG itself is one.
  '/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so',
  '/usr/bin/qemu-img',
  // flock(1) for the host lease: Debian's busybox has no flock applet
  '/usr/bin/flock',
];

/** Packages of the recipe whose .deb is `_all` (firmware and data). */
const ARCH_ALL = ['qemu-system-data', 'seabios'];

/** Firmware QEMU looks up for an x86 `pc` machine booted with -kernel. */
const FIRMWARE_TREES = ['/usr/share/seabios', '/usr/share/qemu'];

/** What the initramfs loads to reach the root disk (crc32c: ext4 asks the crypto API for it). */
const ROOT_MODULES = ['crc32c_generic', 'virtio_pci', 'virtio_blk', 'ext4'];
/** What rcS loads from the root disk: NIC, memmap= pmem (nd_e820), fsdax and devdax drivers. */
const HOST_MODULES = ['e1000', 'nd_e820', 'nd_pmem', 'dax_pmem', 'device_dax'];

const REQUIRED_APPLETS = [
  'sh',
  'mount',
  'umount',
  'switch_root',
  'insmod',
  'getty',
  'login',
  'init',
  'ip',
  'sleep',
  'cat',
  'tail',
  'sha256sum',
  'dd',
];

export const PMEM_HOST_KEY = '/etc/ssh/ssh_host_ed25519_key';
/**
 * The nested guest's kernel: the first kernel's vmlinux, decompressed at build time and
 * wrapped by pmem-guest-kernel.ts. QEMU boots it through its PVH entry, skipping the in-guest
 * xz decompression that took 75 s under TCG-in-TCG before the first kernel line.
 */
export const PMEM_GUEST_KERNEL = '/usr/share/labrig/guest/vmlinux-staged';
/** Where its loader and image sit in guest RAM; the guest command line reserves this range. */
export const PMEM_GUEST_STAGING = { offsetMiB: 128, sizeMiB: 64 } as const;
const MiB = 1024 * 1024;

export async function buildPmemImage(
  tmp: string,
  work: string,
  progress: Progress,
  r: PmemImageRecipe,
): Promise<Omit<ImageManifest, 'builtAt' | 'buildMs'>> {
  // debFileName() names files after the apt context's arch: `Architecture: all` packages are
  // fetched through an 'all' context so their _all.deb is found.
  const archAll = r.packages.filter((p) => ARCH_ALL.includes(p.name));
  const archOwn = r.packages.filter((p) => !ARCH_ALL.includes(p.name));
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
  if (r.candidateQemu) {
    progress(`candidate QEMU ${r.candidateQemu.version} from ${r.candidateQemu.suite} → ${r.candidateQemu.prefix}`);
    await unpackCandidateQemu(r.candidateQemu, pkgRoot, progress);
  }
  const root = new RootfsBuilder(join(work, 'root'), pkgRoot);
  await root.mkdirs([
    'bin',
    'sbin',
    'usr/bin',
    'usr/sbin',
    'etc/init.d',
    'etc/ssh',
    'proc',
    'sys',
    'dev',
    'run',
    'mnt',
    'boot',
    'var/log',
    'var/lib',
    'var/lock',
    'lib/modules',
  ]);
  await root.mkdirs(['tmp', 'var/tmp'], 0o1777);
  await root.mkdirs(['root', 'root/.ssh'], 0o700);

  progress('root disk: sshd, kexec, ndctl, daxio, mke2fs, qemu-system-x86_64, qemu-img and their libraries');
  // Real binaries first: busyboxApplets() skips paths that exist, while a copy onto an applet
  // symlink would write through it into /bin/busybox.
  for (const b of BINARIES) await root.binaryWithLibs(b);
  const candidateVersion = r.candidateQemu && (await installCandidateQemu(root, r.candidateQemu));
  if (candidateVersion) progress(`candidate QEMU in ${r.candidateQemu!.prefix}: ${candidateVersion}`);
  await symlink('mke2fs', join(root.dir, 'sbin/mkfs.ext4'));
  await root.copyFromPackages('/etc/mke2fs.conf');
  for (const t of FIRMWARE_TREES) await cp(join(pkgRoot, t), join(root.dir, t), { recursive: true, verbatimSymlinks: true });
  await root.busyboxApplets('/bin/busybox', REQUIRED_APPLETS);

  for (const k of r.kernels) {
    progress(`kernel ${k}: /boot, modules, initramfs`);
    await root.copyFromPackages(`/boot/vmlinuz-${k}`);
    await root.copyFromPackages(`/boot/config-${k}`);
    await root.copyFromPackages(`/boot/System.map-${k}`);
    await root.copyFromPackages(`/lib/modules/${k}/modules.order`);
    await root.copyFromPackages(`/lib/modules/${k}/modules.builtin`);
    const early = await root.kernelModules(k, ROOT_MODULES);
    const all = await root.kernelModules(k, [...ROOT_MODULES, ...HOST_MODULES]);
    await root.write(`/lib/modules/${k}/labrig-modules.order`, `${all.filter((m) => !early.includes(m)).join('\n')}\n`);
    const size = await buildInitramfs(join(work, `initrd-${k}`), pkgRoot, k, join(root.dir, `boot/initrd.img-${k}`));
    progress(`initramfs for ${k}: ${(size / 1e6).toFixed(1)} MB`);
  }

  const vmlinux = join(work, 'vmlinux');
  await extractVmlinux(join(root.dir, `boot/vmlinuz-${r.kernels[0]}`), vmlinux);
  const staged = stagedPvhKernel(await readFile(vmlinux), PMEM_GUEST_STAGING.offsetMiB * MiB);
  if (staged.reservedBytes > PMEM_GUEST_STAGING.sizeMiB * MiB)
    throw new LabError(
      'lab-setup',
      `the staged guest kernel needs ${staged.reservedBytes} bytes, more than the ${PMEM_GUEST_STAGING.sizeMiB} MiB reserved for it`,
    );
  await root.write(PMEM_GUEST_KERNEL, staged.elf);
  progress(
    `nested guest kernel (${r.kernels[0]}, PVH, staged at ${PMEM_GUEST_STAGING.offsetMiB} MiB): ${(staged.elf.length / 1e6).toFixed(1)} MB`,
  );

  // The host key is made here, once per image, so its fingerprint can be pinned.
  const keyFile = join(work, 'ssh_host_ed25519_key');
  await runLocal(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `${r.name} host key`, '-f', keyFile]);
  const publicKey = (await readFile(`${keyFile}.pub`, 'utf8')).trim();
  await root.write(PMEM_HOST_KEY, await readFile(keyFile), 0o600);
  await root.write(`${PMEM_HOST_KEY}.pub`, `${publicKey}\n`);
  await root.write('/etc/ssh/sshd_config', sshdConfig(PMEM_HOST_KEY));
  await root.write('/etc/inittab', inittab());
  await root.write('/etc/init.d/rcS', rcS(r.name), 0o755);
  await root.write('/etc/hostname', `${r.name}\n`);
  await root.write('/etc/issue', `labrig emulated host ${r.name}\n`);
  // sshd's privilege separation needs its user; root logs in on the console with no password.
  await root.write('/etc/passwd', 'root::0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n');
  await root.write('/etc/group', 'root:x:0:\nnogroup:x:65534:\n');
  await root.write('/etc/shells', '/bin/sh\n');
  await root.write('/etc/profile', 'export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n');
  await root.write('/root/.ssh/authorized_keys', `${r.clientPublicKey}\n`, 0o600);

  progress(`root disk: mke2fs -d (${r.diskMiB} MiB, sparse)`);
  const disk = join(tmp, 'root.img');
  await runLocal(['mke2fs', '-q', '-t', 'ext4', '-L', 'labrig-root', '-d', root.dir, '-F', disk, `${r.diskMiB}M`], { timeoutMs: 300_000 });
  const boot = r.kernels[0]!;
  await copyFile(join(root.dir, `boot/vmlinuz-${boot}`), join(tmp, 'vmlinuz'));
  await copyFile(join(root.dir, `boot/initrd.img-${boot}`), join(tmp, 'initrd.img'));
  await writeFile(join(tmp, 'hostkey.pub'), `${publicKey}\n`);
  progress(`root disk: ${(((await stat(disk)).blocks * 512) / 1e6).toFixed(0)} MB used of ${r.diskMiB} MiB`);
  return {
    name: r.name,
    recipeVersion: r.recipeVersion,
    packages: r.packages,
    kernelVersion: boot,
    files: { kernel: 'vmlinuz', initrd: 'initrd.img', disk: 'root.img', hostKeyPub: 'hostkey.pub' },
    hostKey: { publicKey, fingerprint: sshFingerprint(publicKey) },
    ...(r.candidateQemu && candidateVersion
      ? {
          candidateQemu: {
            prefix: r.candidateQemu.prefix,
            suite: r.candidateQemu.suite,
            version: candidateVersion,
            packages: r.candidateQemu.packages,
          },
        }
      : {}),
  };
}

/** A kernel's own initramfs: busybox and the modules that reach the root disk. */
async function buildInitramfs(dir: string, pkgRoot: string, kernel: string, out: string): Promise<number> {
  const b = new RootfsBuilder(dir, pkgRoot);
  await b.mkdirs(['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'newroot']);
  await b.busyboxApplets('/bin/busybox', ['sh', 'mount', 'umount', 'switch_root', 'insmod', 'sleep', 'cat', 'mkdir']);
  const modules = await b.kernelModules(kernel, ROOT_MODULES);
  await b.write('/etc/modules.order', `${modules.join('\n')}\n`);
  await b.write('/init', initramfsInit(), 0o755);
  const size = await writeInitramfs(b.dir, CONSOLE_AND_NULL, out);
  if (size < 100_000) throw new LabError('lab-setup', `initramfs for ${kernel} is only ${size} bytes`);
  return size;
}

/** bzImage → vmlinux: the xz stream inside (Debian: CONFIG_KERNEL_XZ) decompressed with xz(1). */
async function extractVmlinux(bzImage: string, out: string): Promise<void> {
  const data = await readFile(bzImage);
  const at = data.indexOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  if (at < 0) throw new LabError('lab-setup', `${bzImage} holds no xz stream: cannot extract vmlinux`);
  await mkdir(dirname(out), { recursive: true });
  await runLocal(['sh', '-c', 'tail -c +"$1" "$2" | xz -dc --single-stream > "$3"', 'sh', String(at + 1), bzImage, out], {
    timeoutMs: 120_000,
  });
  const head = (await readFile(out)).subarray(0, 4);
  if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])))
    throw new LabError('lab-setup', `vmlinux extracted from ${bzImage} is not an ELF file`);
}
