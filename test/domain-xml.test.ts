/**
 * The libvirt driver's pure parts: what summariseDomain reads back from a definition, and the
 * small parsers of virsh output.
 */
import { expect, test } from '@playwright/test';
import { type DomainSpec, domainXml, type PortDevice, summariseDomain } from '../drivers/domain-xml.js';
import { parseStateReason, Virsh } from '../drivers/libvirt.js';

const armhf: DomainSpec = {
  name: 'labrig-armhf-x',
  type: 'qemu',
  arch: 'armv7l',
  machine: 'virt',
  memoryMiB: 256,
  vcpus: 1,
  highmem: false,
  kernel: { path: '/srv/x-boot/virtio-vmlinuz', initrd: '/srv/x-boot/virtio-initrd.img', cmdline: 'console=ttyAMA0 root=/dev/vda rw' },
  onReboot: 'destroy',
  disks: [{ source: '/srv/x.img', format: 'raw', target: 'vda' }],
  filesystems: [{ source: '/srv/x-boot', tag: 'virtio-boot', accessMode: 'mapped' }],
  serialLog: '/var/log/libvirt/qemu/x-serial.log',
};

test('summary: arch, kernel, initrd, cmdline and a given UUID of a direct-kernel-boot domain read back', () => {
  const s = summariseDomain(domainXml(armhf));
  expect(s).toMatchObject({
    arch: 'armv7l',
    kernel: '/srv/x-boot/virtio-vmlinuz',
    initrd: '/srv/x-boot/virtio-initrd.img',
    cmdline: 'console=ttyAMA0 root=/dev/vda rw',
  });
  expect(s.uuid).toBe('');
  const again = summariseDomain(domainXml({ ...armhf, uuid: '887322b1-ce0d-4472-82f7-9aad0a85c52a' }));
  expect(again.uuid).toBe('887322b1-ce0d-4472-82f7-9aad0a85c52a');
  const noKernel = summariseDomain(domainXml({ ...armhf, kernel: undefined }));
  expect([noKernel.kernel, noKernel.initrd, noKernel.cmdline]).toEqual([undefined, undefined, undefined]);
});

test('summary of what libvirt 9.0 dumps for the armhf domain (machine expanded, defaults added)', () => {
  const dumped = `<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>labrig-armhf-guest</name>
  <os>
    <type arch='armv7l' machine='virt-7.2'>hvm</type>
    <kernel>/srv/labrig-armhf-guest-boot/virtio-vmlinuz</kernel>
    <initrd>/srv/labrig-armhf-guest-boot/virtio-initrd.img</initrd>
    <cmdline>console=ttyAMA0,115200 root=/dev/vda rw</cmdline>
  </os>
  <on_reboot>destroy</on_reboot>
  <devices>
    <filesystem type='mount' accessmode='mapped'><source dir='/srv/labrig-armhf-guest-boot'/><target dir='virtio-boot'/></filesystem>
  </devices>
  <qemu:commandline><qemu:arg value='-machine'/><qemu:arg value='highmem=off'/></qemu:commandline>
</domain>`;
  expect(summariseDomain(dumped)).toMatchObject({
    arch: 'armv7l',
    machine: 'virt-7.2',
    cmdline: 'console=ttyAMA0,115200 root=/dev/vda rw',
    qemuArgs: ['-machine', 'highmem=off'],
  });
});

test('virsh domstate --reason, and the console argv', () => {
  expect(parseStateReason('shut off (shutdown)\n')).toEqual({ state: 'shut off', reason: 'shutdown' });
  expect(parseStateReason('shut off (destroyed)')).toEqual({ state: 'shut off', reason: 'destroyed' });
  expect(parseStateReason('running (booted)')).toEqual({ state: 'running', reason: 'booted' });
  expect(parseStateReason('paused')).toEqual({ state: 'paused', reason: '' });
  const virsh = new Virsh({
    name: 'h',
    run: async () => ({ stdout: '', stderr: '', code: 0, signal: null, ms: 0 }),
    exec: async () => ({ stdout: '', stderr: '', code: 0, signal: null, ms: 0 }),
  });
  expect(virsh.consoleArgv('labrig-armhf-x')).toEqual(['virsh', '-c', 'qemu:///system', 'console', '--force', 'labrig-armhf-x']);
});

test("seed 001's port budget: xhci, virtio video, a CD-ROM on virtio-scsi and a pcie-to-pci-bridge each on its own root port, the probe disk behind the last", () => {
  const spec = {
    name: 'p',
    type: 'qemu' as const,
    arch: 'aarch64' as const,
    machine: 'virt-2.12',
    memoryMiB: 512,
    vcpus: 1,
    rootPorts: 15,
    serialLog: '/tmp/s.log',
    portDevices: ['xhci', 'video', 'scsi-cdrom', 'pcie-to-pci-bridge'] as const satisfies readonly PortDevice[],
    disks: [{ source: '/p.raw', format: 'raw' as const, target: 'vda', behindLastRootPort: true }],
  };
  const xml = domainXml({ ...spec, portDevices: [...spec.portDevices] });
  const bus = (re: RegExp) => re.exec(xml.replace(/\n\s*/g, ''))?.[1];
  expect(bus(/<controller type="usb" index="0" model="qemu-xhci"><address type="pci" domain="0x0000" bus="(0x\w+)"/)).toBe('0x01');
  expect(bus(/<video><model type="virtio" heads="1" primary="yes"\/><address type="pci" domain="0x0000" bus="(0x\w+)"/)).toBe('0x02');
  expect(bus(/<controller type="scsi" index="0" model="virtio-scsi"><address type="pci" domain="0x0000" bus="(0x\w+)"/)).toBe('0x03');
  expect(
    bus(
      /<controller type="pci" index="16" model="pcie-to-pci-bridge"><model name="pcie-pci-bridge"\/><address type="pci" domain="0x0000" bus="(0x\w+)"/,
    ),
  ).toBe('0x04');
  expect(xml).toMatch(/<disk type="file" device="cdrom">[\s\S]*<target dev="sda" bus="scsi"\/>/);
  const summary = summariseDomain(xml);
  expect(summary.rootPorts).toHaveLength(15);
  expect(summary.disks.find((d) => d.target === 'vda')?.pciBus).toBe(15);
  expect(() => domainXml({ ...spec, portDevices: [...spec.portDevices], rootPorts: 4 })).toThrow(
    '4 port devices (xhci, video, scsi-cdrom, pcie-to-pci-bridge) need more than 4 root ports, asked 4',
  );
});
