/**
 * Which guest the suite boots: one built on the runner by an images/ recipe from Debian's armhf
 * packages (its files uploaded to the host) — the busybox guest or the real Debian one with its
 * apt repository — or a prepared disk and installer kernel already on the host (copied, never
 * written in place). Each guest's commands come from its contract (images/contracts/).
 */
import { ARMHF_DEBIAN, armhfDebianImage, DEBIAN_DISK, INSTALLER_INITRD, INSTALLER_KERNEL, repoFiles } from '../../images/armhf-debian.js';
import { armhfGuestImage, initrdFile, kernelFile } from '../../images/armhf-guest.js';
import { APT_SHARE_TAG, aptKernelInstall, DEBIAN_GUEST_CMDLINE, DEBIAN_GUEST_LOGIN } from '../../images/contracts/armhf-debian.js';
import { GUEST_CMDLINE, GUEST_KERNEL_INSTALL } from '../../images/contracts/armhf-guest.js';
import type { Progress } from '../../images/debs.js';
import type { ArmhfParams, ArmhfPaths, GuestPlan } from './plan.js';

export interface GuestMaterial {
  plan: GuestPlan;
  /** Runner files sent to the host over SFTP. */
  uploads: Array<{ local: string; remote: string }>;
  /** Files copied on the host itself. */
  copies: Array<{ from: string; to: string }>;
}

export async function guestMaterial(params: ArmhfParams, paths: ArmhfPaths, progress: Progress): Promise<GuestMaterial> {
  const installKernel = `${paths.installDir}/vmlinuz`;
  const installInitrd = `${paths.installDir}/initrd.img`;
  const g = params.guest;
  if (g.kind === 'recipe' && g.recipe === ARMHF_DEBIAN) {
    const [from, to] = g.kernels;
    const image = await armhfDebianImage(g.kernels, progress);
    return {
      plan: {
        cmdline: DEBIAN_GUEST_CMDLINE,
        diskFormat: 'qcow2',
        repoTag: APT_SHARE_TAG,
        installCommand: aptKernelInstall(from),
        upgradeCommand: aptKernelInstall(to),
        login: { ...DEBIAN_GUEST_LOGIN },
        expectFrom: from,
        expectTo: to,
      },
      uploads: [
        { local: image.file(DEBIAN_DISK), remote: paths.disk },
        { local: image.file(INSTALLER_KERNEL), remote: installKernel },
        { local: image.file(INSTALLER_INITRD), remote: installInitrd },
        ...repoFiles(image).map((f) => ({ local: f.path, remote: `${paths.repo}/${f.name}` })),
      ],
      copies: [],
    };
  }
  if (g.kind === 'recipe') {
    const [from, to] = g.kernels;
    const image = await armhfGuestImage(g.kernels, progress);
    return {
      plan: {
        cmdline: GUEST_CMDLINE,
        diskFormat: 'raw',
        installCommand: `${GUEST_KERNEL_INSTALL} ${from}`,
        upgradeCommand: `${GUEST_KERNEL_INSTALL} ${to}`,
        login: { user: 'root' },
        expectFrom: from,
        expectTo: to,
      },
      uploads: [
        { local: image.file('disk'), remote: paths.disk },
        { local: image.file(kernelFile(from)), remote: installKernel },
        { local: image.file(initrdFile(from)), remote: installInitrd },
      ],
      copies: [],
    };
  }
  return {
    plan: {
      cmdline: g.cmdline,
      diskFormat: g.diskFormat,
      installCommand: g.installCommand,
      upgradeCommand: g.upgradeCommand,
      login: g.login,
    },
    uploads: [],
    copies: [
      { from: g.disk, to: paths.disk },
      { from: g.installKernel, to: installKernel },
      { from: g.installInitrd, to: installInitrd },
    ],
  };
}
