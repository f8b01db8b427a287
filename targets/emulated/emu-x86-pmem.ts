/**
 * emu-x86-pmem: the x86 pmem host of the emulated lab (DOMAIN.md §4). An x86_64 TCG VM whose
 * root is an ext4 virtio disk with two Debian kernels installed, emulated pmem from
 * `memmap=<size>!<offset>` (nd_e820, as in seed 003), kexec-tools, ndctl, daxio, and
 * qemu-system-x86_64 for the nested guest. The disk is opened with `snapshot=on`: a QEMU
 * start always begins from the cached image, while writes survive resets and kexecs of that
 * QEMU — which is what the snapshot → kexec → restore procedure needs. Beside Debian 12's QEMU
 * it carries bookworm-backports' QEMU 10.0 in /opt/qemu-10.0 (the upgrade of seed 003).
 */
import type { z } from 'zod';
import { type BuiltImage, cachedImage, clientKey, imageKey } from '../../images/cache.js';
import { hostApt, type Progress, resolvePackages } from '../../images/debs.js';
import { buildPmemImage, PMEM_GUEST_KERNEL, PMEM_GUEST_STAGING } from '../../images/pmem-image.js';
import { type CandidateQemuRequest, candidateBinDir, resolveCandidateQemu } from '../../images/qemu-candidate.js';
import type { suiteParamsSchema } from '../schema.js';
import type { EmulatedVmHost, VmHostRecord } from './hosts.js';

/** Both installed; QEMU boots the first, a kexec goes to the other (and back). */
export const EMU_X86_PMEM_KERNELS = ['6.1.0-55-amd64', '6.1.0-56-amd64'] as const;
/** Bump when the recipe changes what the image contains. */
const RECIPE_VERSION = 4;

/**
 * Seed 003 upgrades QEMU under the running guest: the image carries bookworm-backports' QEMU
 * 10.0 in its own prefix beside Debian 12's 7.2 (≈13 MB of .debs, ≈40 MB on the disk).
 */
export const EMU_X86_PMEM_CANDIDATE_QEMU: CandidateQemuRequest = {
  suite: 'bookworm-backports',
  version: '10.0',
  prefix: '/opt/qemu-10.0',
};
/** The candidate's wrappers on the host: what `restoreQemu` (or `components.qemuDir`) names. */
export const EMU_X86_PMEM_CANDIDATE_BIN = candidateBinDir(EMU_X86_PMEM_CANDIDATE_QEMU.prefix);

/**
 * The snapshot suite restores with the candidate (Debian 12's QEMU saves, 10.0 restores: seed
 * 003's upgrade). `LABRIG_EMU_RESTORE_QEMU=same` restores with the saving QEMU; any other value
 * names the restoring QEMU on emu-x86-pmem (a binary, or a directory holding one).
 */
export const RESTORE_QEMU_ENV = 'LABRIG_EMU_RESTORE_QEMU';

const VM_MEMORY_MIB = 3072;
/**
 * The pmem: 1 GiB of the VM's RAM from 1 GiB up, reserved by the kernel as legacy pmem. It must
 * lie inside one usable e820 range and be 16 MiB aligned: SeaBIOS reserves the last pages below
 * 3 GiB, and a region reaching them splits in two, both "misaligned, unable to map".
 */
export const EMU_X86_PMEM_MEMMAP = { sizeMiB: 1024, offsetMiB: 1024 } as const;
export const memmapArg = (m: { sizeMiB: number; offsetMiB: number }) => `memmap=${m.sizeMiB}M!${m.offsetMiB}M`;
const DISK_MIB = 1024;

const PACKAGES = [
  ...EMU_X86_PMEM_KERNELS.map((k) => `linux-image-${k}`),
  'busybox-static',
  'util-linux',
  'openssh-server',
  'kexec-tools',
  'ndctl',
  'pmdk-tools',
  'e2fsprogs',
  'qemu-system-x86',
  'qemu-system-common',
  'qemu-system-data',
  'seabios',
  'qemu-utils',
  // the libraries ldd lists for the binaries above (pmem-image.ts checks that none is missing)
  'libc6',
  'libgcc-s1',
  'zlib1g',
  'libcrypt1',
  'libwrap0',
  'libaudit1',
  'libcap-ng0',
  'libpam0g',
  'libsystemd0',
  'libcap2',
  'libgcrypt20',
  'libgpg-error0',
  'liblz4-1',
  'liblzma5',
  'libzstd1',
  'libselinux1',
  'libpcre2-8-0',
  'libgssapi-krb5-2',
  'libkrb5-3',
  'libk5crypto3',
  'libkrb5support0',
  'libkeyutils1',
  'libcom-err2',
  'libssl3',
  'libnsl2',
  'libtirpc3',
  'libxenmisc4.17',
  'libxenstore4',
  'libxentoollog1',
  'libxencall1',
  'libxenevtchn1',
  'libxengnttab1',
  'libxenforeignmemory1',
  'libxendevicemodel1',
  'libxentoolcore1',
  'libxenhypfs1',
  'libyajl2',
  'libuuid1',
  'libblkid1',
  'libmount1',
  'libext2fs2',
  'libndctl6',
  'libdaxctl1',
  'libcxl1',
  'libiniparser1',
  'libjson-c5',
  'libtraceevent1',
  'libtracefs1',
  'libkmod2',
  'libudev1',
  'libpmem1',
  'libpixman-1-0',
  'libcapstone4',
  'libpng16-16',
  'libjpeg62-turbo',
  'libgnutls30',
  'libsasl2-2',
  'libfdt1',
  'libseccomp2',
  'libnuma1',
  'libglib2.0-0',
  'librdmacm1',
  'libibverbs1',
  'libslirp0',
  'libvdeplug2',
  'libbpf1',
  'libelf1',
  'liburing2',
  'libfuse3-3',
  'libaio1',
  'libnettle8',
  'libhogweed6',
  'libgmp10',
  'libp11-kit0',
  'libidn2-0',
  'libunistring2',
  'libtasn1-6',
  'libffi8',
  'libnl-3-200',
  'libnl-route-3-200',
];

type SnapshotKexecParams = NonNullable<z.input<typeof suiteParamsSchema>['snapshotKexec']>;

/** What the snapshot-kexec suite is told about this host. */
export const EMU_X86_PMEM_SUITE: SnapshotKexecParams = {
  guest: {
    // Issue 15: a 512 MiB pattern (the schema's default), and room beside it. 768 MiB fits the
    // 1 GiB pmem in both modes (devdax: 1022 MiB usable).
    memoryMiB: 768,
    patternMiB: 512,
    kernel: PMEM_GUEST_KERNEL,
    // The staged kernel's loader and image stay reserved (pmem-guest-kernel.ts). Nested TCG
    // boots a Debian kernel in 90-180 s here: skip the ACPI interpreter (≈10 s) and the crypto
    // self-tests; nothing in the marker needs either.
    append: `console=ttyS0 memmap=${PMEM_GUEST_STAGING.sizeMiB}M$${PMEM_GUEST_STAGING.offsetMiB}M acpi=off cryptomgr.notests`,
  },
  // guestBoot includes writing the 512 MiB pattern; restore includes a full verify pass begun
  // after the restore (at most two passes at verifyMsPerSecond of each second).
  timeoutsMs: { guestBoot: 600_000, restore: 420_000, kexec: 180_000 },
};

/** The snapshot suite's restoring QEMU: the candidate, or what RESTORE_QEMU_ENV names ('same': none). */
export function restoreQemuOf(env: NodeJS.ProcessEnv): Pick<SnapshotKexecParams, 'restoreQemu'> {
  const v = env[RESTORE_QEMU_ENV]?.trim() || EMU_X86_PMEM_CANDIDATE_BIN;
  return v === 'same' ? {} : { restoreQemu: v };
}

export async function emuX86PmemImage(progress: Progress): Promise<BuiltImage> {
  const pkgs = await resolvePackages(PACKAGES, hostApt, progress);
  const candidateQemu = await resolveCandidateQemu(EMU_X86_PMEM_CANDIDATE_QEMU, progress);
  const { publicKeyText } = await clientKey();
  const key = imageKey(
    'emu-x86-pmem',
    RECIPE_VERSION,
    [...pkgs, ...candidateQemu.packages],
    [publicKeyText, String(DISK_MIB), candidateQemu.prefix],
  );
  return cachedImage('emu-x86-pmem', key, progress, (tmp, work) =>
    buildPmemImage(tmp, work, progress, {
      name: 'emu-x86-pmem',
      recipeVersion: RECIPE_VERSION,
      kernels: EMU_X86_PMEM_KERNELS,
      packages: pkgs,
      clientPublicKey: publicKeyText,
      diskMiB: DISK_MIB,
      candidateQemu,
    }),
  );
}

export const emuX86Pmem: EmulatedVmHost = {
  name: 'emu-x86-pmem',
  defaultSshPort: 2227,
  image: emuX86PmemImage,
  vm: (image, { sshPort }) => ({
    name: 'emu-x86-pmem',
    binary: 'qemu-system-x86_64',
    machine: 'pc',
    cpu: 'max',
    memoryMiB: VM_MEMORY_MIB,
    smp: 1,
    kernel: image.file('kernel'),
    initrd: image.file('initrd'),
    append: `console=ttyS0,115200 root=/dev/vda rw ${memmapArg(EMU_X86_PMEM_MEMMAP)}`,
    sshForwardPort: sshPort,
    nicModel: 'e1000',
    extraArgs: ['-drive', `file=${image.file('disk')},format=raw,if=virtio,snapshot=on`],
  }),
  readyPattern: /^emu-x86-pmem login: /m,
  readyTimeoutMs: 180_000,
  labHost: (r: VmHostRecord) => ({
    name: 'emu-x86-pmem',
    role: 'x86-pmem',
    description: `x86_64 TCG VM: Debian kernels ${EMU_X86_PMEM_KERNELS.join(' and ')} (kexec between them), ${memmapArg(EMU_X86_PMEM_MEMMAP)} pmem, ndctl, QEMU for a nested TCG guest, OpenSSH`,
    ssh: { address: '127.0.0.1', port: r.sshPort, user: 'root', identityFile: r.identityFile, hostKey: r.hostKey },
    console: { kind: 'serial', path: r.ttyLink, baud: 115200, login: { user: 'root' } },
    power: { kind: 'qmp', socket: r.qmpSocket, start: r.startArgv },
    expect: { arch: 'x86_64', features: ['pmem', 'kexec', 'qemu'], absent: ['kvm'] },
    returnTimeoutMs: 180_000,
    suites: { snapshotKexec: { ...EMU_X86_PMEM_SUITE, ...restoreQemuOf(process.env) } },
  }),
};
