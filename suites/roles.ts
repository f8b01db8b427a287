/** Which suites run on which host role: each Playwright project is one host. */
import type { Role } from '../targets/schema.js';

export const suitesByRole: Record<Role, string[]> = {
  local: ['host-facts.spec.ts'],
  'arm64-armhf': ['host-facts.spec.ts'],
  'arm64-kunpeng': ['host-facts.spec.ts', 'pcie-root-ports.spec.ts'],
  'x86-pmem': ['host-facts.spec.ts'],
  'x86-xen': ['host-facts.spec.ts', 'xen.spec.ts'],
};
