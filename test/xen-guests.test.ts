/**
 * The Xen suite's guests without a host: the pygrub cfg (bootloader and disk, no kernel by
 * path), the GRUB menu pygrub reads on the guest's disk, where an autostarted guest's cfg and
 * /etc/xen/auto link go and what xendomains logs for it, and the IOMMU state Xen reports.
 * pygrub.cfg and xl-create-n-pygrub.json were recorded by the suite on emu-xen (Xen 4.17.7).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { parseXlDryRun, parseXlInfo, xlConfig } from '../drivers/xl.js';
import { markerArgument } from '../images/contracts/xen-domu.js';
import { grubMenu, PYGRUB_BOOT_ARGUMENT } from '../images/xen-domu-disk.js';
import { iommuState } from '../suites/xen/boot.js';
import { autostartPaths, kernelPvSpec, type PvGuest, pygrubPvSpec, xendomainsStarted } from '../suites/xen/guests.js';

const rec = (name: string) => readFileSync(join(import.meta.dirname, 'recorded', 'xen', name), 'utf8');

const pv: PvGuest = {
  kernel: '/var/lib/labrig/domu/vmlinuz',
  ramdisk: '/var/lib/labrig/domu/initrd.img',
  extra: 'console=hvc0',
  memoryMiB: 128,
  vcpus: 1,
  bridge: 'xenbr0',
  bootDisk: '/var/lib/labrig/domu/disk.img',
};

test.describe('PV guests as xl cfg', () => {
  test('pygrub: bootloader and the boot disk as xvda, the marker in extra, no kernel or ramdisk by path', () => {
    const spec = pygrubPvSpec(pv, 'labrig-pygrub-1', '0123456789ab');
    const cfg = xlConfig(spec);
    expect(cfg).toContain('bootloader = "pygrub"\n');
    expect(cfg).toContain('disk = [ "format=raw,vdev=xvda,access=rw,target=/var/lib/labrig/domu/disk.img" ]\n');
    expect(cfg).toContain(`extra = "console=hvc0 ${markerArgument('0123456789ab')}"\n`);
    expect(cfg).not.toMatch(/^(kernel|ramdisk) =/m);
    expect(cfg).toMatch(/^vif = \[ "mac=00:16:3e:[0-9a-f:]{8},bridge=xenbr0" \]$/m);
  });

  test('the recorded pygrub run: the builder wrote that cfg, and libxl read it back as a bootloader guest with no kernel', () => {
    const spec = pygrubPvSpec(pv, 'labrig-pygrub-rd0794b98-ef3185', '54d55e841863');
    expect(xlConfig({ ...spec, vifs: [{ mac: '00:16:3e:2b:5c:c8', bridge: 'xenbr0' }] })).toBe(rec('pygrub.cfg'));
    const parsed = parseXlDryRun(rec('xl-create-n-pygrub.json'));
    expect({ bootloader: parsed.bootloader, kernel: parsed.kernel, ramdisk: parsed.ramdisk, cmdline: parsed.cmdline }).toEqual({
      bootloader: 'pygrub',
      kernel: undefined,
      ramdisk: undefined,
      cmdline: spec.extra,
    });
    expect(parsed.disks).toEqual([{ target: '/var/lib/labrig/domu/disk.img', vdev: 'xvda' }]);
  });

  test('kernel by path: kernel and ramdisk, no bootloader and no disk', () => {
    const cfg = xlConfig(kernelPvSpec(pv, 'labrig-pv-1', 'abcdef012345'));
    expect(cfg).toContain('kernel = "/var/lib/labrig/domu/vmlinuz"\n');
    expect(cfg).toContain('ramdisk = "/var/lib/labrig/domu/initrd.img"\n');
    expect(cfg).not.toMatch(/^(bootloader|disk) =/m);
  });

  test('a bootloader without a disk to read is refused; no bootDisk configured, no pygrub spec', () => {
    const spec = pygrubPvSpec(pv, 'labrig-pygrub-2', '0123456789ab');
    expect(() => xlConfig({ ...spec, disks: [] })).toThrow(/bootloader pygrub needs a disk/);
    expect(() => pygrubPvSpec({ ...pv, bootDisk: undefined }, 'x', 'y')).toThrow(/bootDisk is not configured/);
  });
});

test.describe("the guest disk's GRUB menu", () => {
  test('one entry with kernel, its arguments and initrd, default 0, in the form GrubConf parses', () => {
    const menu = grubMenu({
      title: 'Debian GNU/Linux, with Linux 6.1.0-56-amd64',
      kernel: '/boot/vmlinuz-6.1.0-56-amd64',
      initrd: '/boot/initrd.img-6.1.0-56-amd64',
      args: `console=hvc0 ${PYGRUB_BOOT_ARGUMENT}`,
    });
    expect(menu).toBe(
      [
        'set default="0"',
        'set timeout=1',
        '',
        "menuentry 'Debian GNU/Linux, with Linux 6.1.0-56-amd64' {",
        '\tlinux /boot/vmlinuz-6.1.0-56-amd64 console=hvc0 labrig.boot=pygrub',
        '\tinitrd /boot/initrd.img-6.1.0-56-amd64',
        '}',
        '',
      ].join('\n'),
    );
  });

  test('a quote, brace or newline cannot go into an entry', () => {
    const e = { title: 't', kernel: '/boot/k', initrd: '/boot/i', args: '' };
    expect(() => grubMenu({ ...e, title: "it's" })).toThrow(/title/);
    expect(() => grubMenu({ ...e, args: 'a}\nb' })).toThrow(/args/);
  });
});

test.describe('autostart (xendomains)', () => {
  test('the cfg in cfgDir, its link in autoDir, trailing slashes or not', () => {
    expect(autostartPaths({ autoDir: '/etc/xen/auto/', cfgDir: '/etc/xen' }, 'labrig-auto-1')).toEqual({
      cfgPath: '/etc/xen/labrig-auto-1.cfg',
      linkPath: '/etc/xen/auto/labrig-auto-1.cfg',
    });
  });

  // What Debian's /etc/init.d/xendomains prints through /lib/lsb/init-functions without a terminal
  // (run from the emu-xen image's own files).
  const log = [
    'Restoring Xen domain other (from /var/lib/xen/save/other)...failed.',
    'Starting Xen domain labrig-auto-1 (from /etc/xen/auto/labrig-auto-1.cfg)...done.',
    'Starting Xen domain labrig-auto-10 (from /etc/xen/auto/labrig-auto-10.cfg)...failed.',
    'libxl: error: ...',
    '',
  ].join('\n');

  test("xendomains' line for the domain: done, failed, or absent; a longer name is another domain", () => {
    expect(xendomainsStarted(log, 'labrig-auto-1')).toEqual({
      line: 'Starting Xen domain labrig-auto-1 (from /etc/xen/auto/labrig-auto-1.cfg)...done.',
      ok: true,
    });
    expect(xendomainsStarted(log, 'labrig-auto-10')?.ok).toBe(false);
    expect(xendomainsStarted(log, 'labrig-auto')).toBeUndefined();
    expect(xendomainsStarted(log.replace(/\n/g, '\r\n'), 'labrig-auto-1')?.ok).toBe(true);
  });
});

test.describe('IOMMU as Xen reports it', () => {
  test('the recorded emu-xen boot: xl info and xl dmesg agree, the serial console gives the same (dom0 kernel lines left out)', () => {
    const caps = parseXlInfo(rec('xl-info.txt')).virtCaps;
    const fromDmesg = iommuState(caps, rec('xl-dmesg.txt'));
    expect(fromDmesg.summary).toBe('no IOMMU: virt_caps "pv hvm gnttab-v1 gnttab-v2", Xen: I/O virtualisation disabled');
    expect(iommuState(caps, rec('serial-boot.log'))).toEqual(fromDmesg);
  });

  test('TCG: no directio in virt_caps, "I/O virtualisation disabled"', () => {
    const s = iommuState(
      ['pv', 'gnttab-v1', 'gnttab-v2'],
      '(XEN) Initing memory sharing.\n(XEN) I/O virtualisation disabled\n(XEN) nr_sockets: 1\n',
    );
    expect(s).toEqual({
      enabled: false,
      verdict: 'disabled',
      lines: ['I/O virtualisation disabled'],
      summary: 'no IOMMU: virt_caps "pv gnttab-v1 gnttab-v2", Xen: I/O virtualisation disabled',
    });
  });

  test('VT-d: its lines, "enabled", and hvm_directio in virt_caps; a ring without the verdict has none', () => {
    const dmesg = [
      '(XEN) [VT-D]Host address width 46',
      '(XEN) Intel VT-d iommu 0 supported page sizes: 4kB, 2MB, 1GB',
      '(XEN) Intel VT-d Snoop Control enabled.',
      '(XEN) I/O virtualisation enabled',
      '(XEN)  - Dom0 mode: Relaxed',
    ].join('\n');
    const s = iommuState(['pv', 'hvm', 'hvm_directio', 'pv_directio', 'hap', 'iommu_hap_pt_share'], dmesg);
    expect(s.enabled).toBe(true);
    expect(s.verdict).toBe('enabled');
    expect(s.lines).toEqual([
      '[VT-D]Host address width 46',
      'Intel VT-d iommu 0 supported page sizes: 4kB, 2MB, 1GB',
      'Intel VT-d Snoop Control enabled.',
      'I/O virtualisation enabled',
    ]);
    expect(iommuState(['pv'], '(XEN) Brought up 1 CPUs\n').verdict).toBeUndefined();
  });
});
