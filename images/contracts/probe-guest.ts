/**
 * The pcie-root-port probe guest's contract with its suite. The suite puts a disk with serial
 * `PROBE_SERIAL` behind the last root port; the guest's init looks for it and prints one
 * verdict line on its console, then powers off: `LABRIG-PROBE: present|missing bridges=<n> pci=<n>`.
 * A probe guest of a real lab (its own kernel and initrd) must print the same line.
 */
export const PROBE_SERIAL = 'labrig-probe';

/** The verdict line's prefix, as the guest prints it. */
export const PROBE_VERDICT_PREFIX = 'LABRIG-PROBE:';

/** The verdict line: "present"/"missing" is the device behind the last port; then the bridges and PCI functions the kernel enumerated. */
export const PROBE_MARKER = /LABRIG-PROBE: (present|missing) bridges=(\d+) pci=(\d+)/;
