/**
 * The guest images the suites boot on any lab, by name: what `labrig images build` builds. A lab's
 * own images (a prepared disk, a PV kernel) are named by path in its config instead; the emulated
 * lab adds its host images beside these (cli/image-catalog.ts).
 */
import { aarch64ProbeGuest } from './aarch64-probe-guest.js';
import { ARMHF_KERNELS, armhfGuestImage } from './armhf-guest.js';
import type { BuiltImage } from './cache.js';
import type { Progress } from './debs.js';

/** One image to build: a recipe and its parameters. */
export interface ImageRecipe {
  name: string;
  /** What it is and who boots it, for a listing. */
  what: string;
  build(progress: Progress): Promise<BuiltImage>;
}

/** The armhf guest of the armhf-kernel-upgrade suite, booted on `kernels[0]` and upgraded to the next. */
export const armhfGuestRecipe = (kernels: readonly string[] = ARMHF_KERNELS): ImageRecipe => ({
  name: 'armhf-guest',
  what: `armhf libvirt guest of armhf-kernel-upgrade (Debian kernels ${kernels.join(' → ')}, busybox; disk, kernels, initrds)`,
  build: (progress) => armhfGuestImage(kernels, progress),
});

export const probeGuestRecipe: ImageRecipe = {
  name: 'aarch64-probe-guest',
  what: 'aarch64 guest of pcie-root-ports: counts the root ports it sees and powers off (kernel, initrd)',
  build: aarch64ProbeGuest,
};

export const guestRecipes: readonly ImageRecipe[] = [armhfGuestRecipe(), probeGuestRecipe];
