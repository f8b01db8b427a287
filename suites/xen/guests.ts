/**
 * The suite's PV guests as xl specs, from the host's suites.xen.pvGuest settings: booted from
 * a kernel given by path, or by pygrub from the guest's own disk image; and where an
 * autostarted guest's cfg and its /etc/xen/auto link go. Pure: tested without a host.
 */
import type { XlPvBootloaderSpec, XlPvKernelSpec } from '../../drivers/xl.js';
import { randomXenMac } from '../../drivers/xl.js';
import { markerArgument } from '../../images/contracts/xen-domu.js';
import type { XenParams } from './boot.js';

export type PvGuest = NonNullable<XenParams['pvGuest']>;
export type Autostart = NonNullable<XenParams['autostart']>;

function common(pv: PvGuest, name: string, marker: string) {
  return {
    type: 'pv' as const,
    name,
    memoryMiB: pv.memoryMiB,
    vcpus: pv.vcpus,
    extra: `${pv.extra} ${markerArgument(marker)}`,
    vifs: pv.bridge ? [{ mac: randomXenMac(), bridge: pv.bridge }] : [],
    onReboot: 'destroy' as const,
  };
}

/** `kernel =` and `ramdisk =` by path in dom0. */
export function kernelPvSpec(pv: PvGuest, name: string, marker: string): XlPvKernelSpec {
  return { ...common(pv, name, marker), kernel: pv.kernel, ...(pv.ramdisk ? { ramdisk: pv.ramdisk } : {}) };
}

/**
 * `bootloader = "pygrub"` with the guest's disk image as xvda: pygrub reads its menu and
 * hands libxl the kernel and initrd; `extra` is added to the menu entry's arguments.
 */
export function pygrubPvSpec(pv: PvGuest, name: string, marker: string): XlPvBootloaderSpec {
  if (!pv.bootDisk) throw new Error('pygrubPvSpec: suites.xen.pvGuest.bootDisk is not configured');
  return { ...common(pv, name, marker), bootloader: 'pygrub', disks: [{ target: pv.bootDisk, vdev: 'xvda' }] };
}

/** The cfg in cfgDir and its link in autoDir, as Debian's xendomains documentation has it (`ln -s ../<name>.cfg`). */
export function autostartPaths(a: Autostart, name: string): { cfgPath: string; linkPath: string } {
  const dir = (d: string) => d.replace(/\/+$/, '');
  return { cfgPath: `${dir(a.cfgDir)}/${name}.cfg`, linkPath: `${dir(a.autoDir)}/${name}.cfg` };
}

/**
 * What `xendomains start` logged (lsb init-functions, no terminal: `Starting Xen domain <name>
 * (from <file>)...done.`) for one domain: its line and whether it ended in `done`.
 * Undefined when the log does not name the domain.
 */
export function xendomainsStarted(log: string, name: string): { line: string; ok: boolean } | undefined {
  const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const line = new RegExp(`Starting Xen domain ${esc} \\(from [^)]+\\)[^\\n]*`).exec(log.replace(/\r/g, ''))?.[0];
  return line === undefined ? undefined : { line, ok: /\.\.\.done\.?\s*$/.test(line) };
}
