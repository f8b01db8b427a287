/**
 * Every image `labrig images` knows: the suites' guest images (images/catalog.ts) and the
 * emulated lab's host images; and which of them a lab config needs.
 */
import { armhfGuestRecipe, guestRecipes, type ImageRecipe, probeGuestRecipe } from '../images/catalog.js';
import { suitesByRole } from '../suites/roles.js';
import { vmHost, vmHosts } from '../targets/emulated/hosts.js';
import type { HostConfig, Lab } from '../targets/schema.js';
import { UsageError } from './host-args.js';

const hostImageRecipes: readonly ImageRecipe[] = vmHosts.map((h) => ({
  name: h.name,
  what: `the emulated lab's host ${h.name} (kernel, initrd${h.name === 'emu-mini' ? '' : ', disk'}; booted by \`labrig lab up\`)`,
  build: h.image,
}));

export const knownImages: readonly ImageRecipe[] = [...guestRecipes, ...hostImageRecipes];

/** The recipes of these names; an unknown name is a usage error naming the known ones. */
export function imagesNamed(names: readonly string[]): ImageRecipe[] {
  const unknown = names.filter((n) => !knownImages.some((r) => r.name === n));
  if (unknown.length)
    throw new UsageError(`no image ${unknown.map((n) => `"${n}"`).join(', ')} (images: ${knownImages.map((r) => r.name).join(', ')})`);
  return [...new Set(names)].map((n) => knownImages.find((r) => r.name === n)!);
}

const runs = (h: HostConfig, suite: string) => h.role.some((r) => suitesByRole[r].includes(suite));

/** What the lab's suites boot that a recipe builds (a guest the config names by path is the lab's own), and the emulated lab's hosts. */
export function imagesNeeded(lab: Lab): ImageRecipe[] {
  const needed: ImageRecipe[] = [];
  const add = (r: ImageRecipe) => needed.some((n) => n.name === r.name && n.what === r.what) || needed.push(r);
  for (const h of lab.hosts) {
    const armhf = h.suites.armhfKernelUpgrade?.guest;
    if (runs(h, 'armhf-kernel-upgrade.spec.ts') && armhf?.kind === 'recipe') add(armhfGuestRecipe(armhf.kernels));
    if (runs(h, 'pcie-root-ports.spec.ts') && !h.suites.pcieRootPorts?.guest) add(probeGuestRecipe);
    const vm = lab.name === 'emulated' ? vmHost(h.name) : undefined;
    if (vm) add(hostImageRecipes.find((r) => r.name === vm.name)!);
  }
  return needed;
}
