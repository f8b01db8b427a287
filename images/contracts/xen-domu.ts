/**
 * The test guest's contract with the Xen suite. The PV domU's init prints
 * `labrig-domu ready: <value of labrig.marker=>` on its console and then offers a root shell
 * there. The suite puts a fresh marker on each guest's command line, so the line proves this
 * very guest reached userspace; the kernel's own echo of its command line
 * (`labrig.marker=…`) can never match it.
 */
export const DOMU_READY_PREFIX = 'labrig-domu ready: ';

export const markerArgument = (marker: string) => `labrig.marker=${marker}`;

export function readyPattern(marker: string): RegExp {
  return new RegExp(`${DOMU_READY_PREFIX}${marker.replace(/[^A-Za-z0-9]/g, '\\$&')}\\b`);
}
