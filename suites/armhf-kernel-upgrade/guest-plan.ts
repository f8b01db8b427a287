/**
 * Which guest the suite boots: one built on the runner by the images/ recipe from Debian's armhf
 * packages (its files uploaded to the host), or a prepared disk and installer kernel already on
 * the host (copied, never written in place).
 */
import { armhfGuestImage, initrdFile, kernelFile } from '../../images/armhf-guest.js';
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
