/**
 * Host facts (seeds/001): what the host is, checked against what the lab says it should be.
 * A fact that contradicts the host's declared expectation fails with both values.
 */

import { shellQuote } from '../drivers/ssh.js';
import { libvirtEndpoint } from '../targets/components-libvirtd.js';
import { versionMismatches } from '../targets/facts.js';
import { expect, test } from '../targets/fixtures.js';
import { normalizeArch } from '../targets/platform.js';
import { currentSpeedMhz, kvmOnArm64, kvmOnX86, parseDomCapabilities } from './host-facts/parse.js';

const UEFI_AARCH64 = [
  '/usr/share/AAVMF/AAVMF_CODE.fd',
  '/usr/share/qemu-efi-aarch64/QEMU_EFI.fd',
  '/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw',
  '/usr/share/edk2/aarch64/QEMU_EFI.fd',
];

test.describe('host facts @facts', () => {
  test('architecture is the declared one', async ({ host, findings }) => {
    const raw = (await host.run('uname -m', { check: true })).stdout.trim();
    // FreeBSD's uname -m says amd64 / arm64: the same machines as x86_64 / aarch64.
    const arch = normalizeArch(raw) ?? raw;
    findings.record('arch', arch);
    expect(arch, `${host.name}: declared arch ${host.config.expect.arch}, host says ${raw}`).toBe(host.config.expect.arch);
  });

  test('KVM availability, read the right way for the architecture', async ({ host, findings }) => {
    const raw = (await host.run('uname -m', { check: true })).stdout.trim();
    const arch = normalizeArch(raw) ?? raw;
    const evidence = await test.step(`KVM on ${arch}`, async () => {
      if (arch === 'aarch64') return kvmOnArm64((await host.run('dmesg 2>/dev/null || true')).stdout);
      const modules = (await host.run('lsmod 2>/dev/null | tail -n +2 || true; ls /sys/module 2>/dev/null || true')).stdout;
      const dev = (await host.run('test -c /dev/kvm')).code === 0;
      return kvmOnX86(modules, dev);
    });
    findings.record('kvm', evidence.kvm);
    findings.record('kvm_evidence', evidence.how);
    const { features, absent } = host.config.expect;
    if (features.includes('kvm')) expect(evidence.kvm, `${host.name}: declared kvm, host says no (${evidence.how})`).toBe(true);
    if (absent.includes('kvm')) expect(evidence.kvm, `${host.name}: declared no kvm, host says yes (${evidence.how})`).toBe(false);
  });

  test('nominal CPU frequency is dmidecode Current Speed', async ({ host, findings }) => {
    const r = await host.run('dmidecode -t 4 2>&1');
    const mhz = r.code === 0 ? currentSpeedMhz(r.stdout) : undefined;
    const declared = host.config.expect.cpuMhz;
    if (mhz === undefined) {
      const why = r.stdout.trim().split('\n').pop() || `exit ${r.code}`;
      findings.record('cpu_mhz', `unavailable: ${why}`);
      expect(declared, `${host.name}: declared cpuMhz ${declared}, but dmidecode gave none (${why})`).toBeUndefined();
      return;
    }
    findings.record('cpu_mhz', mhz, 'MHz');
    if (declared !== undefined) expect(mhz, `${host.name}: declared ${declared} MHz, dmidecode Current Speed ${mhz} MHz`).toBe(declared);
  });

  test('libvirt domcapabilities CPU models', async ({ host, findings }) => {
    test.skip(!host.config.expect.features.includes('libvirt'), 'host declares no libvirt');
    const libvirt = libvirtEndpoint(host.config);
    const has = (await host.run(`command -v ${shellQuote(libvirt.virsh)}`)).code === 0;
    expect(has, `${host.name}: declared libvirt, but virsh is not installed`).toBe(true);
    const arch = host.config.suites.hostFacts?.domcapsArch ?? host.config.expect.arch;
    const virttype = host.config.expect.features.includes('kvm') ? 'kvm' : 'qemu';
    const machine = arch === 'x86_64' ? '' : ' --machine virt';
    const r = await host.run(
      `${shellQuote(libvirt.virsh)} -c ${shellQuote(libvirt.uri)} domcapabilities --arch ${arch} --virttype ${virttype}${machine}`,
      {
        check: true,
        timeoutMs: 120_000,
      },
    );
    await test.info().attach('domcapabilities.xml', { body: r.stdout, contentType: 'application/xml' });
    const caps = parseDomCapabilities(r.stdout);
    findings.record('domcaps_cpu_modes', caps.cpuModes.join(','));
    findings.record('domcaps_cpu_models', caps.models.length);
    findings.record('domcaps_cpu_models_usable', caps.models.filter((m) => m.usable === 'yes').length);
    findings.record('domcaps_cpu_models_unknown', caps.models.filter((m) => m.usable === 'unknown').length);
    expect(caps.arch, 'domcapabilities answers for the arch asked').toBe(arch);
    expect(caps.cpuModes.length, `${host.name}: libvirt offers no CPU mode for ${arch}/${virttype}`).toBeGreaterThan(0);
  });

  test('the component versions are the ones this run validates', async ({ host, findings }) => {
    const facts = await host.facts();
    for (const c of ['kernel', 'qemu', 'libvirt', 'xen', 'edk2'] as const) if (facts[c]) findings.record(`version_${c}`, facts[c]!);
    const wanted = host.config.expect.versions;
    test.skip(Object.keys(wanted).length === 0, 'the lab declares no versions for this host');
    expect(versionMismatches(facts, wanted), `${host.name} runs other versions than declared`).toEqual([]);
  });

  test('UEFI firmware for aarch64 guests', async ({ host, findings }) => {
    const declared = host.config.expect.features.includes('uefi');
    test.skip(!declared, 'host declares no uefi feature');
    const r = await host.run(`for f in ${UEFI_AARCH64.join(' ')}; do test -r "$f" && echo "$f"; done; true`);
    const found = r.stdout.trim().split('\n').filter(Boolean);
    findings.record('uefi_firmware', found[0] ?? 'none');
    expect(found, `${host.name}: declared uefi, none of ${UEFI_AARCH64.join(', ')} exists`).not.toHaveLength(0);
  });
});
