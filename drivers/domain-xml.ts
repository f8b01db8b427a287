/**
 * libvirt domain XML from a typed spec (one builder, a well-kept XML library), and the few
 * facts read back from `virsh dumpxml` to prove libvirt made what was asked.
 */
import { XMLBuilder, XMLParser } from 'fast-xml-parser';

export interface DiskSpec {
  source: string;
  format: 'qcow2' | 'raw';
  /** Guest device name: vda, vdb… */
  target: string;
  serial?: string;
  readonly?: boolean;
  /** Put the disk behind the last pcie-root-port (the probe of the root-port ceiling). */
  behindLastRootPort?: boolean;
}

export interface FilesystemSpec {
  source: string;
  /** The 9p mount tag the guest uses. */
  tag: string;
  accessMode: 'mapped' | 'passthrough' | 'squash';
  /** The guest cannot write to it. */
  readonly?: boolean;
}

export type PortDevice = 'xhci' | 'video' | 'scsi-cdrom' | 'pcie-to-pci-bridge';

export interface DomainSpec {
  name: string;
  /** Redefining an existing domain (libvirt refuses the same name under a new UUID): its UUID. */
  uuid?: string;
  /** 'qemu' is TCG. On the emulated lab always 'qemu': libvirt would pick kvm where /dev/kvm exists. */
  type: 'qemu' | 'kvm';
  arch: 'aarch64' | 'armv7l' | 'x86_64';
  machine: string;
  /** The QEMU binary libvirt runs (a QEMU build under test); default: libvirt's own choice. */
  emulator?: string;
  memoryMiB: number;
  vcpus: number;
  /** `disable`: CPU features turned off, e.g. `aarch64` for an AArch32 guest under KVM on arm64. */
  cpu?: { mode: 'host-passthrough' | 'maximum' | 'custom'; model?: string; disable?: string[] };
  /** UEFI: a read-only pflash loader and a per-domain copy of the vars template. */
  uefi?: { loader: string; varsTemplate: string; nvram: string };
  /** Direct kernel boot. */
  kernel?: { path: string; initrd?: string; cmdline?: string };
  onReboot?: 'destroy' | 'restart';
  /** Number of pcie-root-port controllers (aarch64/q35: allocated at define time, no hot-plug on pcie-root). */
  rootPorts?: number;
  /** Pack root ports 8 to a slot as multifunction devices, instead of one slot each. */
  packRootPorts?: boolean;
  /** QEMU pcie-root-port io-reserve (bytes): 0 stops each port asking for 4 KiB of the 64 KiB I/O window. */
  rootPortIoReserve?: number;
  /**
   * Devices that each take a root port, in this order from port 1 (seed 001's budget: an xhci
   * controller and a virtio video take 2 of the 15 ports; a CD-ROM sits on a virtio-scsi
   * controller; a pcie-to-pci-bridge for legacy PCI devices). Needs rootPorts > their count.
   */
  portDevices?: PortDevice[];
  /** -machine highmem=off: non-LPAE armmp kernels cannot reach the high ECAM/MMIO (FIELD-NOTES). */
  highmem?: boolean;
  disks?: DiskSpec[];
  filesystems?: FilesystemSpec[];
  /** The serial console: a pty, recorded in full to this file by virtlogd. */
  serialLog: string;
}

const QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0';
const hex = (n: number, width = 2) => `0x${n.toString(16).padStart(width, '0')}`;

function rootPortControllers(spec: DomainSpec): object[] {
  const n = spec.rootPorts ?? 0;
  const ports: object[] = [];
  for (let i = 1; i <= n; i++) {
    const slot = spec.packRootPorts ? 1 + Math.floor((i - 1) / 8) : i;
    const fn = spec.packRootPorts ? (i - 1) % 8 : 0;
    ports.push({
      '@_type': 'pci',
      '@_index': i,
      '@_model': 'pcie-root-port',
      model: { '@_name': 'pcie-root-port' },
      target: { '@_chassis': i, '@_port': hex(0x8 + i - 1) },
      address: {
        '@_type': 'pci',
        '@_domain': '0x0000',
        '@_bus': '0x00',
        '@_slot': hex(slot),
        '@_function': hex(fn, 1),
        ...(spec.packRootPorts && fn === 0 ? { '@_multifunction': 'on' } : {}),
      },
    });
  }
  return [{ '@_type': 'pci', '@_index': 0, '@_model': 'pcie-root' }, ...ports];
}

const onPort = (port: number) => ({ '@_type': 'pci', '@_domain': '0x0000', '@_bus': hex(port), '@_slot': '0x00', '@_function': '0x0' });

/** Each port device on its own root port, 1, 2, … (the probe disk stays behind the last one). */
function portDeviceNodes(spec: DomainSpec): { controller: object[]; video: object[]; disk: object[] } {
  const out = { controller: [] as object[], video: [] as object[], disk: [] as object[] };
  const devices = spec.portDevices ?? [];
  if (devices.length && (spec.rootPorts ?? 0) <= devices.length)
    throw new Error(
      `${devices.length} port devices (${devices.join(', ')}) need more than ${devices.length} root ports, asked ${spec.rootPorts ?? 0}`,
    );
  const nextIndex = (spec.rootPorts ?? 0) + 1;
  devices.forEach((d, i) => {
    const address = onPort(i + 1);
    if (d === 'xhci') out.controller.push({ '@_type': 'usb', '@_index': 0, '@_model': 'qemu-xhci', address });
    if (d === 'video') out.video.push({ model: { '@_type': 'virtio', '@_heads': 1, '@_primary': 'yes' }, address });
    if (d === 'pcie-to-pci-bridge')
      out.controller.push({
        '@_type': 'pci',
        '@_index': nextIndex,
        '@_model': 'pcie-to-pci-bridge',
        model: { '@_name': 'pcie-pci-bridge' },
        address,
      });
    if (d === 'scsi-cdrom') {
      out.controller.push({ '@_type': 'scsi', '@_index': 0, '@_model': 'virtio-scsi', address });
      out.disk.push({
        '@_type': 'file',
        '@_device': 'cdrom',
        driver: { '@_name': 'qemu', '@_type': 'raw' },
        target: { '@_dev': 'sda', '@_bus': 'scsi' },
        readonly: '',
        address: { '@_type': 'drive', '@_controller': 0, '@_bus': 0, '@_target': 0, '@_unit': 0 },
      });
    }
  });
  return out;
}

function disk(spec: DomainSpec, d: DiskSpec): object {
  const last = spec.rootPorts ?? 0;
  if (d.behindLastRootPort && last < 1) throw new Error(`disk ${d.target}: behindLastRootPort needs rootPorts ≥ 1`);
  return {
    '@_type': 'file',
    '@_device': 'disk',
    driver: { '@_name': 'qemu', '@_type': d.format },
    source: { '@_file': d.source },
    target: { '@_dev': d.target, '@_bus': 'virtio' },
    ...(d.serial ? { serial: d.serial } : {}),
    ...(d.readonly ? { readonly: '' } : {}),
    ...(d.behindLastRootPort ? { address: onPort(last) } : {}),
  };
}

export function domainXml(spec: DomainSpec): string {
  const qemuArgs: string[] = [];
  if (spec.highmem === false) qemuArgs.push('-machine', 'highmem=off');
  if (spec.rootPortIoReserve !== undefined) qemuArgs.push('-global', `pcie-root-port.io-reserve=${spec.rootPortIoReserve}`);
  const os: Record<string, unknown> = { type: { '@_arch': spec.arch, '@_machine': spec.machine, '#text': 'hvm' } };
  if (spec.uefi) {
    os.loader = { '@_readonly': 'yes', '@_type': 'pflash', '#text': spec.uefi.loader };
    os.nvram = { '@_template': spec.uefi.varsTemplate, '#text': spec.uefi.nvram };
  }
  if (spec.kernel) {
    os.kernel = spec.kernel.path;
    if (spec.kernel.initrd) os.initrd = spec.kernel.initrd;
    if (spec.kernel.cmdline) os.cmdline = spec.kernel.cmdline;
  }
  const ports = portDeviceNodes(spec);
  const doc = {
    domain: {
      '@_type': spec.type,
      ...(qemuArgs.length ? { '@_xmlns:qemu': QEMU_NS } : {}),
      name: spec.name,
      ...(spec.uuid ? { uuid: spec.uuid } : {}),
      memory: { '@_unit': 'MiB', '#text': spec.memoryMiB },
      vcpu: spec.vcpus,
      os,
      ...(spec.cpu
        ? {
            cpu: {
              '@_mode': spec.cpu.mode,
              ...(spec.cpu.model ? { model: spec.cpu.model } : {}),
              ...(spec.cpu.disable?.length ? { feature: spec.cpu.disable.map((name) => ({ '@_policy': 'disable', '@_name': name })) } : {}),
            },
          }
        : {}),
      on_poweroff: 'destroy',
      on_reboot: spec.onReboot ?? 'restart',
      on_crash: 'destroy',
      devices: {
        ...(spec.emulator ? { emulator: spec.emulator } : {}),
        controller: [...(spec.rootPorts !== undefined ? rootPortControllers(spec) : []), ...ports.controller],
        disk: [...(spec.disks ?? []).map((d) => disk(spec, d)), ...ports.disk],
        ...(ports.video.length ? { video: ports.video } : {}),
        filesystem: (spec.filesystems ?? []).map((f) => ({
          '@_type': 'mount',
          '@_accessmode': f.accessMode,
          source: { '@_dir': f.source },
          target: { '@_dir': f.tag },
          ...(f.readonly ? { readonly: '' } : {}),
        })),
        serial: { '@_type': 'pty', log: { '@_file': spec.serialLog, '@_append': 'off' }, target: { '@_port': 0 } },
        console: { '@_type': 'pty', target: { '@_type': 'serial', '@_port': 0 } },
        memballoon: { '@_model': 'none' },
      },
      ...(qemuArgs.length ? { 'qemu:commandline': { 'qemu:arg': qemuArgs.map((a) => ({ '@_value': a })) } } : {}),
    },
  };
  return new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', format: true, suppressEmptyNode: true }).build(doc) as string;
}

export interface DomainSummary {
  name: string;
  uuid: string;
  type: string;
  arch: string;
  machine: string;
  emulator: string | undefined;
  rootPorts: number[];
  onReboot: string;
  disks: Array<{ target: string; bus: string; pciBus: number | undefined }>;
  filesystems: Array<{ tag: string; accessMode: string; source: string; readonly: boolean }>;
  kernel: string | undefined;
  initrd: string | undefined;
  cmdline: string | undefined;
  qemuArgs: string[];
}

const list = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
type Node = Record<string, unknown>;
const attr = (n: unknown, a: string) => (n as Node | undefined)?.[`@_${a}`] as string | undefined;

/** What libvirt made of a domain, from `virsh dumpxml`. */
export function summariseDomain(xml: string): DomainSummary {
  const parsed = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '@_',
    parseAttributeValue: false,
    parseTagValue: false,
  }).parse(xml) as { domain?: Node };
  const d = parsed.domain;
  if (!d) throw new Error('not a <domain> document');
  const devices = (d.devices ?? {}) as Node;
  const os = (d.os ?? {}) as Node;
  return {
    name: String(d.name),
    uuid: d.uuid === undefined ? '' : String(d.uuid),
    type: attr(d, 'type') ?? '',
    arch: attr(os.type, 'arch') ?? '',
    machine: attr(os.type, 'machine') ?? '',
    emulator: devices.emulator === undefined ? undefined : String(devices.emulator),
    rootPorts: list(devices.controller as Node[])
      .filter((c) => attr(c, 'model') === 'pcie-root-port')
      .map((c) => Number(attr(c, 'index'))),
    onReboot: String(d.on_reboot ?? ''),
    disks: list(devices.disk as Node[]).map((k) => ({
      target: attr(k.target, 'dev') ?? '',
      bus: attr(k.target, 'bus') ?? '',
      pciBus: attr(k.address, 'type') === 'pci' ? Number(attr(k.address, 'bus')) : undefined,
    })),
    filesystems: list(devices.filesystem as Node[]).map((f) => ({
      tag: attr(f.target, 'dir') ?? '',
      accessMode: attr(f, 'accessmode') ?? 'passthrough',
      source: attr(f.source, 'dir') ?? '',
      readonly: f.readonly !== undefined,
    })),
    kernel: os.kernel === undefined ? undefined : String(os.kernel),
    initrd: os.initrd === undefined ? undefined : String(os.initrd),
    cmdline: os.cmdline === undefined ? undefined : String(os.cmdline),
    qemuArgs: list((d['qemu:commandline'] as Node | undefined)?.['qemu:arg'] as Node[]).map((a) => attr(a, 'value') ?? ''),
  };
}
