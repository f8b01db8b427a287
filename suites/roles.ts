/**
 * Which suites run on which host role: each Playwright project is one host. The default
 * emulated lab has no x86-pmem or x86-xen host yet (their recipes are not in `lab up`'s
 * default set), so their suites run only where a lab provides such a host.
 */
import type { Role } from '../targets/schema.js';

export const suitesByRole: Record<Role, string[]> = {
  local: ['host-facts.spec.ts'],
  // armhf-kernel-upgrade.spec.ts joins once it has passed end to end on emu-arm64 (issue 5).
  'arm64-armhf': ['host-facts.spec.ts'],
  'arm64-kunpeng': ['host-facts.spec.ts', 'pcie-root-ports.spec.ts'],
  'x86-pmem': ['host-facts.spec.ts', 'snapshot-kexec.spec.ts'],
  'x86-xen': ['host-facts.spec.ts', 'xen.spec.ts'],
};
