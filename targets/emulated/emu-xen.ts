/**
 * emu-xen: the x86 Xen host of the emulated lab. An x86_64 TCG VM boots Debian's Xen 4.17
 * through QEMU's multiboot loader, with Debian's amd64 kernel as PV dom0 and the xl
 * toolstack in a dom0 initramfs (xen-dom0.ts). Xen owns com1 (QEMU's serial pty), so that
 * console shows the `(XEN)` lines, dom0's kernel (hvc0 goes out through Xen's console) and
 * the login prompt of the getty on hvc0; serial input is Xen's to hand to dom0, which it
 * does once dom0 is up.
 */
import type { z } from 'zod';
import { type BuiltImage, cachedImage, clientKey, imageKey } from '../../images/cache.js';
import { hostApt, type Progress, resolvePackages } from '../../images/debs.js';
import { buildXenImage, DOMU_BOOT_DISK, DOMU_DIR, XEN_BRIDGE } from '../../images/xen-dom0.js';
import type { suiteParamsSchema } from '../schema.js';
import { BUSYBOX_DROPBEAR_PACKAGES, EMU_MINI_KERNEL } from './emu-mini.js';
import type { EmulatedVmHost, VmHostRecord } from './hosts.js';

type XenParams = NonNullable<z.input<typeof suiteParamsSchema>['xen']>;

/** The same Debian kernel as the other x86 hosts: it runs as PV dom0 and as PV domU. */
export const EMU_XEN_KERNEL = EMU_MINI_KERNEL;
/** Bump when the recipe changes what the image contains. */
const RECIPE_VERSION = 5;

/**
 * Xen's boot settings, as DOMAIN.md §3 has them. The command line is built from this object
 * and the same object goes to the suite, which checks what Xen says it booted with.
 */
export const EMU_XEN_BOOT = {
  dom0Mem: '512M,max:512M',
  dom0MaxVcpus: 1,
  console: 'com1',
  com1: '115200,8n1',
  loglvl: 'all',
  guestLoglvl: 'all',
} as const satisfies Omit<XenParams, 'pvGuest' | 'hvmGuest' | 'timeoutsMs' | 'autostart'>;

export function xenCommandline(b: Pick<XenParams, 'dom0Mem' | 'dom0MaxVcpus' | 'console' | 'com1' | 'loglvl' | 'guestLoglvl'>): string {
  const opts: [string, string | number | undefined][] = [
    ['dom0_mem', b.dom0Mem],
    ['dom0_max_vcpus', b.dom0MaxVcpus],
    ['console', b.console],
    ['com1', b.com1],
    ['loglvl', b.loglvl],
    ['guest_loglvl', b.guestLoglvl],
  ];
  return opts
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

const VM_MEMORY_MIB = 1024;
const DOM0_KERNEL_CMDLINE = 'console=hvc0';

const PACKAGES = [
  `linux-image-${EMU_XEN_KERNEL}`,
  'xen-hypervisor-4.17-amd64',
  'xen-utils-4.17',
  'xenstore-utils',
  // /etc/xen/scripts (vif-bridge, run by libxl for the domU's vif) and the bash they need
  'xen-utils-common',
  'bash',
  'libtinfo6',
  // the libraries ldd lists for xl, xenstored, xenconsoled, xen-init-dom0, xenstore
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
  'liblzma5',
  'libzstd1',
  // glibc dlopens libgcc_s.so.1; xl aborts without it (FIELD-NOTES)
  'libgcc-s1',
  // pygrub (xen-utils-4.17) and xendomains' xen-init-name are Python: python3.11 and what they import
  'python3.11-minimal',
  'libpython3.11-minimal',
  'libpython3.11-stdlib',
  'zlib1g',
  'libexpat1',
  'libffi8',
  'libncursesw6',
  'ncurses-base',
  // xenfsimage's ext2/3/4 plugin
  'libext2fs2',
  'libcom-err2',
  // /etc/init.d/xendomains sources /lib/init/vars.sh and /lib/lsb/init-functions
  'initscripts',
  'sysvinit-utils',
  ...BUSYBOX_DROPBEAR_PACKAGES,
];

export async function emuXenImage(progress: Progress): Promise<BuiltImage> {
  const pkgs = await resolvePackages(PACKAGES, hostApt, progress);
  const { publicKeyText } = await clientKey();
  const key = imageKey('emu-xen', RECIPE_VERSION, pkgs, [publicKeyText, xenCommandline(EMU_XEN_BOOT)]);
  return cachedImage('emu-xen', key, progress, (tmp, work) =>
    buildXenImage(tmp, work, progress, {
      name: 'emu-xen',
      recipeVersion: RECIPE_VERSION,
      kernelVersion: EMU_XEN_KERNEL,
      packages: pkgs,
      clientPublicKey: publicKeyText,
    }),
  );
}

export const emuXen: EmulatedVmHost = {
  name: 'emu-xen',
  defaultSshPort: 2226,
  // Its console through a console server (ser2net, telnet), on an address of its own, as a lab's
  // console server serves it (`lab up` access 'pty' gives it the pty back).
  address: '127.0.0.3',
  access: { kind: 'ser2net' },
  image: emuXenImage,
  vm: (image, { sshPort }) => ({
    name: 'emu-xen',
    binary: 'qemu-system-x86_64',
    machine: 'pc',
    // What Xen's own CI uses under TCG; -cpu max crashes dom0 at its first trap (FIELD-NOTES).
    cpu: 'qemu64',
    memoryMiB: VM_MEMORY_MIB,
    smp: 1,
    kernel: image.file('xen'),
    append: xenCommandline(EMU_XEN_BOOT),
    // Multiboot modules: "<file> <its command line>" each, comma-separated (paths hold no comma).
    initrd: `${image.file('kernel')} ${DOM0_KERNEL_CMDLINE},${image.file('initrd')}`,
    sshForwardPort: sshPort,
    nicModel: 'e1000',
    // dom0's /etc/xen (xen-dom0.ts): writes last as long as this QEMU, so across dom0 reboots
    extraArgs: ['-drive', `file=${image.file('disk')},format=raw,if=virtio,snapshot=on`],
  }),
  readyPattern: /^emu-xen login: /m,
  readyTimeoutMs: 240_000,
  labHost: (r: VmHostRecord) => ({
    name: 'emu-xen',
    role: 'x86-xen',
    description: `x86_64 TCG VM (-cpu qemu64): Debian Xen 4.17, dom0 Debian kernel ${EMU_XEN_KERNEL}, xl toolstack, busybox + dropbear`,
    ssh: { address: r.address ?? '127.0.0.1', port: r.sshPort, user: 'root', identityFile: r.identityFile, hostKey: r.hostKey },
    console: r.ser2net
      ? { kind: 'tcp', address: r.ser2net.address, port: r.ser2net.port, telnet: true, login: { user: 'root' } }
      : { kind: 'serial', path: r.ttyLink, baud: 115200, login: { user: 'root' } },
    power: { kind: 'qmp', socket: r.qmpSocket, start: r.startArgv },
    expect: { arch: 'x86_64', features: ['xen'], absent: ['kvm'] },
    suites: {
      xen: {
        ...EMU_XEN_BOOT,
        pvGuest: {
          kernel: `${DOMU_DIR}/vmlinuz`,
          ramdisk: `${DOMU_DIR}/initrd.img`,
          extra: 'console=hvc0',
          memoryMiB: 128,
          vcpus: 1,
          bridge: XEN_BRIDGE,
          bootDisk: DOMU_BOOT_DISK,
        },
        autostart: { autoDir: '/etc/xen/auto', cfgDir: '/etc/xen' },
        // Everything is emulated (TCG), and the domU kernel boots inside that.
        timeoutsMs: { create: 180_000, marker: 240_000, shutdown: 90_000 },
      },
    },
  }),
};
