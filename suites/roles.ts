/**
 * Which suites run on which host role: each Playwright project is one host, and runs the
 * suites of all its roles (emu-arm64 is both arm64 roles).
 */
import type { Role } from '../targets/schema.js';

export const suitesByRole: Record<Role, string[]> = {
  local: ['host-facts.spec.ts'],
  'arm64-armhf': ['host-facts.spec.ts', 'armhf-kernel-upgrade.spec.ts'],
  'arm64-kunpeng': ['host-facts.spec.ts', 'pcie-root-ports.spec.ts'],
  'x86-pmem': ['host-facts.spec.ts', 'snapshot-kexec.spec.ts'],
  'x86-xen': ['host-facts.spec.ts', 'xen.spec.ts'],
};
