/**
 * Where everything of the armhf kernel-upgrade suite lives on the host, the two domain
 * definitions it uses (the installer boot, then the seed's boot from the share), and the
 * verdicts on what the guest says — pure, so they are unit-tested.
 */
import type { DomainSpec, DomainSummary } from '../../drivers/domain-xml.js';
import { ProductError } from '../../drivers/errors.js';
import type { HostConfig } from '../../targets/schema.js';
import { kernelVersionOf } from './share-view.js';

export type ArmhfParams = NonNullable<HostConfig['suites']['armhfKernelUpgrade']>;

export interface ArmhfPaths {
  /** The 9p share that is the guest's /boot (seed: /srv/<vm>-boot). */
  share: string;
  /** The guest's root disk (seed: /srv/<vm>.img). */
  disk: string;
  /** Kernel and initrd of the installer boot (the seed downloaded them to /tmp). */
  installDir: string;
  /** The serial console as virtlogd records it. */
  serialLog: string;
  /** The apt repository the host serves the guest on a second, read-only 9p share (when its guest has one). */
  repo: string;
}

export function armhfPaths(p: Pick<ArmhfParams, 'vm' | 'shareRoot'>): ArmhfPaths {
  return {
    share: `${p.shareRoot}/${p.vm}-boot`,
    disk: `${p.shareRoot}/${p.vm}.img`,
    installDir: `${p.shareRoot}/${p.vm}-install`,
    serialLog: `/var/log/libvirt/qemu/${p.vm}-serial.log`,
    repo: `${p.shareRoot}/${p.vm}-apt`,
  };
}

/** Which kernel a definition boots: the installer's files, or the share's virtio-* links. */
export type BootFrom = 'installer' | 'share';

export function bootFiles(paths: ArmhfPaths, from: BootFrom): { path: string; initrd: string } {
  return from === 'installer'
    ? { path: `${paths.installDir}/vmlinuz`, initrd: `${paths.installDir}/initrd.img` }
    : { path: `${paths.share}/virtio-vmlinuz`, initrd: `${paths.share}/virtio-initrd.img` };
}

/**
 * The seed's domain: armv7l on `virt` (under KVM on an arm64 host whose cores run AArch32, with
 * the vCPU's AArch64 turned off as QEMU's `-cpu host,aarch64=off`; TCG elsewhere), direct kernel boot, root disk on virtio, /boot
 * as a mapped 9p share tagged virtio-boot, console on the PL011, and on_reboot=destroy so a
 * guest reboot cannot come back on the kernel QEMU already holds. highmem=off: Debian's
 * non-LPAE armmp kernel cannot reach the high PCIe ECAM window (FIELD-NOTES).
 */
export function armhfDomainSpec(o: {
  params: ArmhfParams;
  paths: ArmhfPaths;
  from: BootFrom;
  cmdline: string;
  diskFormat: 'raw' | 'qcow2';
  /** The 9p tag of the apt repository share (paths.repo), when the guest installs kernels with apt. */
  repoTag?: string | undefined;
  /** Set when redefining the domain (the seed's `virsh edit` after the installer boot). */
  uuid?: string | undefined;
  emulator?: string | undefined;
  accel: 'kvm' | 'tcg';
}): DomainSpec {
  const kernel = bootFiles(o.paths, o.from);
  return {
    name: o.params.vm,
    ...(o.uuid ? { uuid: o.uuid } : {}),
    type: o.accel === 'kvm' ? 'kvm' : 'qemu',
    ...(o.accel === 'kvm' ? { cpu: { mode: 'host-passthrough' as const, disable: ['aarch64'] } } : {}),
    arch: 'armv7l',
    machine: 'virt',
    ...(o.emulator ? { emulator: o.emulator } : {}),
    memoryMiB: o.params.memoryMiB,
    vcpus: 1,
    highmem: false,
    kernel: { path: kernel.path, initrd: kernel.initrd, cmdline: o.cmdline },
    onReboot: 'destroy',
    disks: [{ source: o.paths.disk, format: o.diskFormat, target: 'vda' }],
    filesystems: [
      { source: o.paths.share, tag: 'virtio-boot', accessMode: 'mapped' },
      ...(o.repoTag ? [{ source: o.paths.repo, tag: o.repoTag, accessMode: 'mapped' as const, readonly: true }] : []),
    ],
    serialLog: o.paths.serialLog,
  };
}

/** What libvirt made of the definition, checked against what the seed needs; empty when it all holds. */
export function domainProblems(summary: DomainSummary, spec: DomainSpec): string[] {
  const problems: string[] = [];
  if (summary.type !== spec.type) problems.push(`domain type ${summary.type}, not ${spec.type}${spec.type === 'qemu' ? ' (TCG)' : ''}`);
  if (summary.arch !== 'armv7l') problems.push(`arch ${summary.arch}, not armv7l`);
  if (!/^virt(-|$)/.test(summary.machine)) problems.push(`machine ${summary.machine}, not virt`);
  if (summary.onReboot !== 'destroy') problems.push(`on_reboot ${summary.onReboot}, not destroy`);
  if (summary.kernel !== spec.kernel?.path) problems.push(`kernel ${summary.kernel}, not ${spec.kernel?.path}`);
  if (summary.initrd !== spec.kernel?.initrd) problems.push(`initrd ${summary.initrd}, not ${spec.kernel?.initrd}`);
  if (!summary.qemuArgs.join(' ').includes('highmem=off')) problems.push('no -machine highmem=off');
  const fs = summary.filesystems.find((f) => f.tag === 'virtio-boot');
  if (!fs) problems.push('no filesystem tagged virtio-boot');
  else if (fs.accessMode !== 'mapped') problems.push(`virtio-boot accessmode ${fs.accessMode}, not mapped`);
  for (const want of spec.filesystems ?? []) {
    const got = summary.filesystems.find((f) => f.tag === want.tag);
    if (!got) problems.push(`no filesystem tagged ${want.tag}`);
    else if (want.readonly && !got.readonly) problems.push(`${want.tag} is not read-only`);
  }
  if (!summary.disks.some((d) => d.target === 'vda' && d.bus === 'virtio')) problems.push('no virtio disk vda');
  return problems;
}

/** The guest's commands and the kernels expected, for either kind of guest. */
export interface GuestPlan {
  cmdline: string;
  diskFormat: 'raw' | 'qcow2';
  /** The 9p tag under which the guest mounts paths.repo, its apt repository (none: the guest has no such share). */
  repoTag?: string;
  installCommand: string;
  upgradeCommand: string;
  login: { user: string; passwordEnv?: string };
  /** Known in advance for a recipe-built guest; on a prepared one, whatever apt installs. */
  expectFrom?: string;
  expectTo?: string;
}

/** What the guest runs and what it should end on: `uname -r` must name the kernel the link names. */
export function checkKernelMatchesLink(host: string, uname: string, link: string, expect?: string): string {
  const named = kernelVersionOf(link);
  if (!named) throw new ProductError('mismatch', `the guest's /boot/vmlinuz names "${link}", which is no vmlinuz-<version>`, { host });
  if (uname.trim() !== named)
    throw new ProductError('mismatch', `the guest runs ${uname.trim()}, but its /boot/vmlinuz names ${named} (${link})`, { host });
  if (expect && named !== expect)
    throw new ProductError('mismatch', `the guest's /boot/vmlinuz names ${named}, expected ${expect}`, { host });
  return named;
}

/** The console after a guest `reboot`: any sign of a kernel starting again means on_reboot did not hold. */
export function rebootedInPlace(consoleAfterReboot: string): boolean {
  return /Booting Linux on physical CPU|Linux version \d/.test(consoleAfterReboot);
}
