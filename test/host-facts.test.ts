import { readFileSync } from 'node:fs';
import { expect, test } from '@playwright/test';
import { currentSpeedMhz, kvmOnArm64, kvmOnX86, parseDomCapabilities } from '../suites/host-facts/parse.js';
import { parseFacts, versionMismatches } from '../targets/facts.js';

const recorded = (name: string) => readFileSync(new URL(`./recorded/${name}`, import.meta.url), 'utf8');

test('dmidecode: Current Speed is the nominal frequency, not Max Speed (seeds/001)', () => {
  const text = `Handle 0x0004, DMI type 4, 48 bytes\nProcessor Information\n\tMax Speed: 4000 MHz\n\tCurrent Speed: 2600 MHz\n\tStatus: Populated, Enabled\n`;
  expect(currentSpeedMhz(text)).toBe(2600);
  expect(currentSpeedMhz('/dev/mem: No such file or directory')).toBeUndefined();
});

test('KVM on arm64 comes from dmesg, there is no module (seeds/001)', () => {
  const dmesg = `[Wed Jul  8 13:43:11 2020] kvm [1]: IPA Size Limit: 48bits\n[Wed Jul  8 13:43:11 2020] kvm [1]: GICv4 support disabled\n[Wed Jul  8 13:43:11 2020] kvm [1]: VHE mode initialized successfully\n`;
  expect(kvmOnArm64(dmesg)).toEqual({ kvm: true, how: 'dmesg: kvm [1]: VHE mode initialized successfully' });
  expect(kvmOnArm64('[    0.1] kvm [1]: Hyp mode initialized successfully').kvm).toBe(true);
  expect(kvmOnArm64('[    0.1] kvm [1]: HYP mode not available').kvm).toBe(false);
});

test('KVM on x86 is a loaded vendor module and /dev/kvm', () => {
  const lsmod = 'kvm_intel             188644  82\nkvm                   621480  1 kvm_intel\n';
  expect(kvmOnX86(lsmod, true)).toEqual({ kvm: true, how: 'kvm_intel loaded, /dev/kvm present' });
  expect(kvmOnX86('e1000 1 0\n', false).kvm).toBe(false);
  expect(kvmOnX86(lsmod, false).kvm).toBe(false);
});

test('domcapabilities under TCG on aarch64: custom models all "unknown", no host-passthrough', () => {
  const caps = parseDomCapabilities(recorded('domcaps-aarch64-virt-tcg.xml'));
  expect(caps.arch).toBe('aarch64');
  expect(caps.cpuModes).not.toContain('host-passthrough');
  expect(caps.cpuModes).toContain('custom');
  expect(caps.models.length).toBeGreaterThan(10);
  expect(caps.models.every((m) => m.usable === 'unknown')).toBe(true);
  expect(caps.models.map((m) => m.name)).toContain('cortex-a57');
});

test('domcapabilities on x86_64 kvm: host-passthrough offered, usability per model', () => {
  const caps = parseDomCapabilities(recorded('domcaps-x86_64-kvm.xml'));
  expect(caps.cpuModes).toContain('host-passthrough');
  expect(new Set(caps.models.map((m) => m.usable))).toEqual(new Set(['yes', 'no']));
});

test('host facts parsed from one script output', () => {
  const text = [
    '@@os',
    'Linux',
    '@@arch',
    'aarch64',
    '@@kernel',
    '4.18.0-193.1.2.el7.aarch64',
    '@@bootId',
    'b1',
    '@@distro',
    'CentOS Linux 7 (AltArch)',
    '@@cpuinfo',
    'processor\t: 0\nCPU part\t: 0xd01\nprocessor\t: 1\nCPU part\t: 0xd01',
    '@@meminfo',
    'MemTotal:       263518784 kB',
    '@@kvm',
    'yes',
    '@@qemu',
    'QEMU emulator version 2.12.0 (qemu-kvm-ev-2.12.0)',
    '@@libvirt',
    'libvirtd (libvirt) 4.5.0',
    '@@xen',
    '',
    '@@edk2',
    '',
  ].join('\n');
  expect(parseFacts(text)).toEqual({
    os: 'linux',
    arch: 'aarch64',
    kernel: '4.18.0-193.1.2.el7.aarch64',
    bootId: 'b1',
    distro: 'CentOS Linux 7 (AltArch)',
    cpuModel: 'CPU part 0xd01',
    cpus: 2,
    memTotalKiB: 263518784,
    kvmDevice: true,
    qemu: '2.12.0',
    qemuPath: null,
    libvirt: '4.5.0',
    xen: null,
    edk2: null,
  });
});

test('declared versions are prefixes of what the host runs', () => {
  const facts = parseFacts(
    '@@kernel\n6.1.0-56-amd64\n@@qemu\nQEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)\n@@libvirt\nlibvirtd (libvirt) 9.0.0',
  );
  expect(versionMismatches(facts, { kernel: '6.1.0-56', qemu: '7.2', libvirt: '9.0.0' })).toEqual([]);
  expect(versionMismatches(facts, { qemu: '8.2', xen: '4.17' })).toEqual(['qemu: wants 8.2, runs 7.2.22', 'xen: wants 4.17, runs none']);
});
