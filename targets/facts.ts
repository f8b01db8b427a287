/**
 * What a host is, read in one command: the manifest's per-host record and the basis of the
 * host-facts suite. Pure parsing, so it is tested on recorded outputs.
 */
import type { CommandResult } from '../drivers/local.js';
import { shellQuote } from '../drivers/ssh.js';
import { boottimeId, parseBoottime } from './boot-identity.js';
import { normalizeArch, type OsFamily, osFamilyOf } from './platform.js';

export interface HostFacts {
  /** `uname -s` as the lab names it; null for an OS the lab does not drive. */
  os: OsFamily | null;
  /** The lab's name (x86_64, aarch64, armv7l) where it knows the host's (`amd64` on FreeBSD); else as `uname -m` says. */
  arch: string;
  kernel: string;
  bootId: string;
  distro: string;
  cpuModel: string;
  cpus: number;
  memTotalKiB: number;
  kvmDevice: boolean;
  qemu: string | null;
  /** The QEMU binary whose version `qemu` is (a configured build's, else the first on PATH). */
  qemuPath: string | null;
  libvirt: string | null;
  xen: string | null;
  edk2: string | null;
}

/** Linux's /proc first; FreeBSD has no /proc by default, its sysctl(8) answers instead. */
const SECTIONS: Record<string, string> = {
  os: 'uname -s',
  arch: 'uname -m',
  kernel: 'uname -r',
  bootId: 'cat /proc/sys/kernel/random/boot_id || sysctl -n kern.boottime',
  distro: 'test -r /etc/os-release && . /etc/os-release && echo "$PRETTY_NAME"',
  cpuinfo: 'cat /proc/cpuinfo',
  meminfo: 'grep MemTotal /proc/meminfo',
  sysctlHw: 'test -r /proc/cpuinfo || sysctl -n hw.model hw.ncpu hw.physmem',
  kvm: 'test -c /dev/kvm && echo yes || echo no',
  qemu: 'for q in qemu-system-aarch64 qemu-system-x86_64 qemu-system-arm /usr/libexec/qemu-kvm; do command -v $q >/dev/null 2>&1 && { command -v $q; $q --version | head -1; break; }; done',
  libvirt: 'command -v libvirtd >/dev/null 2>&1 && libvirtd --version',
  xen: 'command -v xl >/dev/null 2>&1 && xl info 2>/dev/null | grep -E "^xen_(major|minor|extra)"',
  edk2: 'dpkg-query -W -f "\\${Version}" qemu-efi-aarch64 2>/dev/null || rpm -q --qf "%{VERSION}-%{RELEASE}" edk2-aarch64 2>/dev/null',
};

/**
 * Each section in its own subshell: one that fails (a missing file, a special builtin's error)
 * cannot end the rest. With a QEMU or libvirt build (components.qemuDir, libvirtDir) its binaries come first.
 */
export function factsScript(qemuDir?: string, libvirtDir?: string): string {
  const first: Record<string, string | undefined> = { qemu: qemuDir, libvirt: libvirtDir };
  return Object.entries(SECTIONS)
    .map(([key, cmd]) => `echo '@@${key}'; ( ${first[key] ? `PATH=${shellQuote(first[key])}:$PATH; ` : ''}${cmd} ) 2>/dev/null`)
    .join('; ');
}

export function parseFacts(text: string): HostFacts {
  const parts = new Map<string, string>();
  for (const chunk of text.split(/^@@/m).slice(1)) {
    const nl = chunk.indexOf('\n');
    parts.set(chunk.slice(0, nl < 0 ? undefined : nl).trim(), nl < 0 ? '' : chunk.slice(nl + 1).trim());
  }
  const get = (k: string) => parts.get(k) ?? '';
  const cpuinfo = get('cpuinfo');
  const model =
    /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? /^CPU part\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.replace(/^/, 'CPU part ') ?? 'unknown';
  const xenInfo = get('xen');
  const xenField = (f: string) => new RegExp(`^xen_${f}\\s*:\\s*(\\S*)`, 'm').exec(xenInfo)?.[1] ?? '';
  const orNull = (s: string) => (s === '' ? null : s);
  // FreeBSD: hw.model, hw.ncpu, hw.physmem (bytes), one value a line.
  const [hwModel, hwNcpu, hwPhysmem] = get('sysctlHw')
    .split('\n')
    .map((l) => l.trim());
  const boottime = parseBoottime(get('bootId'));
  return {
    os: osFamilyOf(get('os')) ?? null,
    arch: normalizeArch(get('arch')) ?? get('arch'),
    kernel: get('kernel'),
    bootId: boottime ? boottimeId(boottime) : get('bootId'),
    distro: get('distro'),
    cpuModel: cpuinfo || !hwModel ? model.trim() : hwModel,
    cpus: cpuinfo || !hwNcpu ? (cpuinfo.match(/^processor\s*:/gm) ?? []).length : Number(hwNcpu) || 0,
    memTotalKiB: get('meminfo') || !hwPhysmem ? Number(/(\d+)/.exec(get('meminfo'))?.[1] ?? 0) : Math.floor(Number(hwPhysmem) / 1024) || 0,
    kvmDevice: get('kvm') === 'yes',
    qemu: orNull(/version\s+(\S+)/.exec(get('qemu'))?.[1] ?? ''),
    qemuPath: orNull(/^\/\S*$/m.exec(get('qemu'))?.[0] ?? ''),
    // "libvirtd (libvirt) 11.3.0", its path first: a build's path may hold a version too
    libvirt: orNull(/(\d+\.\d+\.\d+)\s*$/m.exec(get('libvirt'))?.[1] ?? ''),
    xen: xenInfo ? `${xenField('major')}.${xenField('minor')}${xenField('extra')}` : null,
    edk2: orNull(get('edk2')),
  };
}

export async function collectFacts(
  run: (command: string) => Promise<CommandResult>,
  qemuDir?: string,
  libvirtDir?: string,
): Promise<HostFacts> {
  return parseFacts((await run(factsScript(qemuDir, libvirtDir))).stdout);
}

export type VersionedComponent = 'kernel' | 'qemu' | 'libvirt' | 'xen' | 'edk2';

/** The declared versions a host does not run, as "qemu: wants 8.2, runs 7.2.22" lines. */
export function versionMismatches(facts: HostFacts, wanted: Partial<Record<VersionedComponent, string>>): string[] {
  return (Object.entries(wanted) as Array<[VersionedComponent, string]>)
    .filter(([component, want]) => !(facts[component] ?? '').startsWith(want))
    .map(([component, want]) => `${component}: wants ${want}, runs ${facts[component] ?? 'none'}`);
}
