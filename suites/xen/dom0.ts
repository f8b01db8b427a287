/**
 * dom0 checks that read the host's own tools: Linux's /proc and /sys, or on a FreeBSD dom0
 * (no /proc, no /sys) ps(1) and ifconfig(8). Pure: each script and the parser of its output.
 */
import { shellQuote } from '../../drivers/ssh.js';
import type { OsFamily } from '../../targets/platform.js';

/** The backend NIC of a domain's vif in dom0: libxl's NETBACK_NIC_NAME, `vif%u.%d` on Linux and `xnb%u.%d` on FreeBSD (libxl_osdeps.h). */
export function backendNic(os: OsFamily, domid: number, devid: number): string {
  return `${os === 'freebsd' ? 'xnb' : 'vif'}${domid}.${devid}`;
}

/** Prints the bridge's member interfaces: its brif directory on Linux, `ifconfig <bridge>` on FreeBSD. */
export function bridgeMembersScript(os: OsFamily, bridge: string): string {
  return os === 'freebsd' ? `ifconfig ${shellQuote(bridge)}` : `ls ${shellQuote(`/sys/class/net/${bridge}/brif`)}`;
}

/** FreeBSD's ifconfig shows each member as `member: xnb1.0 flags=143<LEARNING,…>` (if_bridge(4)). */
export function parseBridgeMembers(os: OsFamily, output: string): string[] {
  if (os === 'freebsd') return [...output.matchAll(/^\s*member: (\S+) flags=/gm)].map((m) => m[1]!);
  return output.split(/\s+/).filter(Boolean);
}

/** One process name a line: /proc/<pid>/comm on Linux, `ps -axo comm=` where there is no /proc. */
export function processNamesScript(os: OsFamily): string {
  return os === 'freebsd' ? 'ps -axo comm=' : 'cat /proc/[0-9]*/comm 2>/dev/null';
}

export function parseProcessNames(output: string): string[] {
  return output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}
