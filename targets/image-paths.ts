/**
 * The guest images a lab names by path instead of having labrig build them: each field, the file
 * it names, and where that file must be — on the runner (uploaded by the suite) or on the host
 * (used in place, or copied there). Doctor checks each before any test: a missing image is one
 * line naming the field, never a failure halfway through a test.
 */
import type { HostConfig } from './schema.js';

export interface ImagePath {
  /** The config field, from `suites.` on (prefixed with the host's `hosts[i].` by the caller). */
  field: string;
  path: string;
  on: 'runner' | 'host';
  /** What the file is, and what to do instead. */
  hint: string;
}

export function imagePaths(h: HostConfig): ImagePath[] {
  const s = h.suites;
  const out: ImagePath[] = [];
  const add = (field: string, path: string | undefined, on: ImagePath['on'], hint: string) =>
    path !== undefined && out.push({ field: `suites.${field}`, path, on, hint });
  const probe = s.pcieRootPorts?.guest;
  const probeHint = 'the probe guest; without `guest`, the suite boots the one `labrig images build aarch64-probe-guest` builds';
  add('pcieRootPorts.guest.kernel', probe?.kernel, 'runner', probeHint);
  add('pcieRootPorts.guest.initrd', probe?.initrd, 'runner', probeHint);
  const armhf = s.armhfKernelUpgrade?.guest;
  if (armhf?.kind === 'prepared') {
    const hint = "the prepared armhf guest; or guest: {kind: 'recipe'} for the one `labrig images build armhf-guest` builds";
    add('armhfKernelUpgrade.guest.disk', armhf.disk, 'host', hint);
    add('armhfKernelUpgrade.guest.installKernel', armhf.installKernel, 'host', hint);
    add('armhfKernelUpgrade.guest.installInitrd', armhf.installInitrd, 'host', hint);
  }
  add('xen.pvGuest.kernel', s.xen?.pvGuest?.kernel, 'host', 'the PV guest kernel');
  add('xen.pvGuest.ramdisk', s.xen?.pvGuest?.ramdisk, 'host', 'the PV guest ramdisk');
  add('xen.hvmGuest.disk', s.xen?.hvmGuest?.disk, 'host', 'the HVM guest disk');
  add(
    'snapshotKexec.guest.kernel',
    s.snapshotKexec?.guest.kernel,
    'host',
    "the snapshot guest's kernel; without it, the host's running kernel",
  );
  return out;
}

/** One line for a file that is not there, naming the field. */
export const missingImageLine = (at: string, p: ImagePath) =>
  `${at}.${p.field}: ${p.path} does not exist or is not readable on the ${p.on} (${p.hint})`;
