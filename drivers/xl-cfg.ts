/**
 * xl domain configuration files from a typed spec (xl.cfg(5)). Strings are double-quoted
 * with libxlu's escapes (backslash, quote, \n, \t; the lexer takes no raw newline); the
 * comma-separated device specs of `vif`/`disk` cannot carry a comma or `=` in a value, except
 * a disk's `target=`, which must come last for that reason. Anything that cannot be written
 * faithfully is refused rather than mangled.
 */

export interface XlVif {
  /** 00:16:3e:xx:xx:xx — the OUI reserved for Xen guests. */
  mac: string;
  bridge?: string;
  /** HVM: the emulated NIC model (e1000, rtl8139). */
  model?: string;
}

export interface XlDisk {
  /** Image file or block device in dom0. */
  target: string;
  vdev: string;
  format?: 'raw' | 'qcow2' | 'vhd';
  access?: 'rw' | 'ro';
  devtype?: 'cdrom';
}

interface XlCommonSpec {
  name: string;
  memoryMiB: number;
  vcpus: number;
  vifs?: readonly XlVif[];
  disks?: readonly XlDisk[];
  onPoweroff?: 'destroy' | 'preserve';
  onReboot?: 'destroy' | 'restart' | 'preserve';
  onCrash?: 'destroy' | 'restart' | 'preserve' | 'coredump-destroy';
}

interface XlPvCommon extends XlCommonSpec {
  type: 'pv';
  /** The guest kernel's command line; with a bootloader, added to the menu entry's own. */
  extra?: string;
}

/** A PV guest whose kernel dom0 names by path. */
export interface XlPvKernelSpec extends XlPvCommon {
  kernel: string;
  ramdisk?: string;
  bootloader?: undefined;
}

/**
 * A PV guest booted by a bootloader in dom0: pygrub reads the menu (grub.cfg, extlinux.conf)
 * on the first disk and hands libxl the kernel and initrd it names.
 */
export interface XlPvBootloaderSpec extends XlPvCommon {
  bootloader: 'pygrub';
  kernel?: undefined;
  ramdisk?: undefined;
}

export type XlPvSpec = XlPvKernelSpec | XlPvBootloaderSpec;

export interface XlHvmSpec extends XlCommonSpec {
  type: 'hvm';
  /** `pty`: the guest's first serial port, reached with `xl console -t serial`. */
  serial?: 'pty';
  /** Boot order, e.g. `c` (disk), `d` (cdrom). */
  boot?: string;
  vnc?: boolean;
}

export type XlDomainSpec = XlPvSpec | XlHvmSpec;

export const XEN_OUI = '00:16:3e';

/** A random MAC in Xen's OUI; the top bit of the first random byte is clear, as libxl's own are. */
export function randomXenMac(random: () => number = Math.random): string {
  const b = [Math.floor(random() * 0x80), Math.floor(random() * 0x100), Math.floor(random() * 0x100)];
  return `${XEN_OUI}:${b.map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
}

const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/;

/** A string literal as libxlu's lexer reads it back. */
export function xlString(value: string): string {
  if (CONTROL.test(value)) throw new Error(`xl cfg: control character in ${JSON.stringify(value)}`);
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t')}"`;
}

function specValue(field: string, value: string): string {
  if (/[,=]/.test(value) || value !== value.trim() || value === '')
    throw new Error(`xl cfg: ${field} value ${JSON.stringify(value)} cannot go into a comma-separated device spec`);
  return value;
}

export function vifSpec(v: XlVif): string {
  if (!new RegExp(`^${XEN_OUI}(:[0-9a-f]{2}){3}$`, 'i').test(v.mac))
    throw new Error(`xl cfg: vif MAC ${v.mac} is not in Xen's OUI ${XEN_OUI}`);
  const parts = [`mac=${v.mac.toLowerCase()}`];
  if (v.bridge) parts.push(`bridge=${specValue('bridge', v.bridge)}`);
  if (v.model) parts.push(`model=${specValue('model', v.model)}`);
  return parts.join(',');
}

export function diskSpec(d: XlDisk): string {
  const parts = [`format=${d.format ?? 'raw'}`, `vdev=${specValue('vdev', d.vdev)}`, `access=${d.access ?? 'rw'}`];
  if (d.devtype) parts.push(`devtype=${d.devtype}`);
  // target= last: everything after it, commas included, is the path (xl-disk-configuration(5)).
  if (d.target === '' || CONTROL.test(d.target)) throw new Error(`xl cfg: bad disk target ${JSON.stringify(d.target)}`);
  parts.push(`target=${d.target}`);
  return parts.join(',');
}

function positiveInt(field: string, n: number): number {
  if (!Number.isInteger(n) || n <= 0) throw new Error(`xl cfg: ${field} must be a positive integer, got ${n}`);
  return n;
}

/** The cfg text for `xl create`. */
export function xlConfig(spec: XlDomainSpec): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(spec.name))
    throw new Error(`xl cfg: domain name ${JSON.stringify(spec.name)}: use letters, digits, . _ -`);
  const lines: string[] = [`name = ${xlString(spec.name)}`];
  // `builder` is deprecated since 4.10 in favour of `type`, but only `builder` is understood
  // by the older xl of the seeds (FreeBSD's Xen 4.7/4.11), and 4.17 still honours it.
  lines.push(spec.type === 'hvm' ? 'builder = "hvm"' : 'type = "pv"');
  lines.push(`memory = ${positiveInt('memory', spec.memoryMiB)}`, `vcpus = ${positiveInt('vcpus', spec.vcpus)}`);
  if (spec.type === 'pv') {
    if (spec.bootloader) {
      if (!spec.disks?.length) throw new Error(`xl cfg: ${spec.name}: bootloader ${spec.bootloader} needs a disk to read its menu from`);
      lines.push(`bootloader = ${xlString(spec.bootloader)}`);
    } else {
      lines.push(`kernel = ${xlString(spec.kernel)}`);
      if (spec.ramdisk) lines.push(`ramdisk = ${xlString(spec.ramdisk)}`);
    }
    if (spec.extra !== undefined) lines.push(`extra = ${xlString(spec.extra)}`);
  } else {
    if (spec.serial) lines.push(`serial = ${xlString(spec.serial)}`);
    if (spec.boot) lines.push(`boot = ${xlString(spec.boot)}`);
    lines.push(`vnc = ${spec.vnc ? 1 : 0}`);
  }
  const list = (items: readonly string[]) => `[ ${items.map(xlString).join(', ')} ]`;
  if (spec.disks?.length) lines.push(`disk = ${list(spec.disks.map(diskSpec))}`);
  if (spec.vifs?.length) lines.push(`vif = ${list(spec.vifs.map(vifSpec))}`);
  if (spec.onPoweroff) lines.push(`on_poweroff = ${xlString(spec.onPoweroff)}`);
  if (spec.onReboot) lines.push(`on_reboot = ${xlString(spec.onReboot)}`);
  if (spec.onCrash) lines.push(`on_crash = ${xlString(spec.onCrash)}`);
  return `${lines.join('\n')}\n`;
}
