/**
 * Which hosts a validation gives the candidate, and how: the runner's build on the hosts that
 * run QEMU through libvirt on themselves, a prefix on the host for a host named by --on-host,
 * and a check that such a host really ran the candidate's version. On the seed lab's config.
 */
import { expect, test } from '@playwright/test';
import { UsageError } from '../cli/host-args.js';
import { onHostMismatches, parseOnHost, withCandidate } from '../cli/validate.js';
import { lab as seedInput } from '../labs/seed-lab.config.js';
import type { BuildRecord } from '../targets/components-build.js';
import { parseLab } from '../targets/config.js';

const build: BuildRecord = {
  dir: '/var/tmp/labrig-components/qemu-10.0.2_libvirt-11.3.0',
  suite: 'bookworm-backports',
  recipe: 1,
  components: {
    qemu: { version: '1:10.0.2+ds-2+deb13u1~bpo12+1', upstream: '10.0.2' },
    libvirt: { version: '11.3.0-2~bpo12+1', upstream: '11.3.0' },
  },
  packages: [],
  binaries: [],
  fetchedAt: '2026-12-02T00:00:00Z',
  fetchSeconds: 0,
};

test('the runner build goes to the named hosts, an on-host prefix to its host, nothing else changes', () => {
  const lab = parseLab(seedInput);
  const before = JSON.stringify(lab);
  const out = withCandidate(lab, build, ['kunpeng920'], { 'x86-pmem': '/opt/qemu-10.0/bin' });
  const by = (name: string) => out.hosts.find((h) => h.name === name)!;
  expect(by('kunpeng920').components).toMatchObject({ qemuDir: `${build.dir}/bin`, libvirtDir: `${build.dir}/bin` });
  expect(by('x86-pmem').components.qemuDir).toBe('/opt/qemu-10.0/bin');
  expect(by('x86-pmem').components.libvirtDir).toBe(lab.hosts.find((h) => h.name === 'x86-pmem')!.components.libvirtDir);
  for (const name of ['mp30-ar1', 'xen-freebsd', 'xen-arch'])
    expect(by(name).components, name).toEqual(lab.hosts.find((h) => h.name === name)!.components);
  expect(JSON.stringify(lab), 'the lab given is not changed').toBe(before);
});

test('--on-host takes <host>=<absolute dir> of a host in the lab; anything else is a usage error naming it', () => {
  const lab = parseLab(seedInput);
  expect(parseOnHost(['x86-pmem=/opt/qemu-10.0/bin'], lab)).toEqual({ 'x86-pmem': '/opt/qemu-10.0/bin' });
  const error = (words: string[]) => {
    try {
      parseOnHost(words, lab);
    } catch (e) {
      expect(e).toBeInstanceOf(UsageError);
      return (e as Error).message;
    }
    throw new Error(`no error for ${words.join(' ')}`);
  };
  expect(error(['x86-pmem=opt/qemu'])).toContain('expected <host>=<absolute directory on that host>');
  expect(error(['x86-pmem'])).toContain('expected <host>=');
  expect(error(['pmem-9=/opt/qemu-10.0/bin'])).toMatch(/no host named pmem-9 in the lab \(mp30-ar1, kunpeng920, x86-pmem/);
});

test("an on-host prefix whose QEMU (as the run's facts read it) is not the candidate's version is named", () => {
  const onHost = { 'x86-pmem': '/opt/qemu-10.0/bin' };
  expect(onHostMismatches(onHost, build, { 'x86-pmem': { qemu: '10.0.2' } })).toEqual([]);
  expect(onHostMismatches(onHost, build, { 'x86-pmem': { qemu: '7.2.22' } })).toEqual([
    'x86-pmem: the QEMU in /opt/qemu-10.0/bin is 7.2.22, not the candidate 10.0.2',
  ]);
  expect(onHostMismatches(onHost, build, {})).toEqual([
    'x86-pmem: the QEMU in /opt/qemu-10.0/bin is not found (no facts), not the candidate 10.0.2',
  ]);
  const libvirtOnly = { ...build, components: { libvirt: build.components.libvirt! } };
  expect(onHostMismatches(onHost, libvirtOnly, { 'x86-pmem': { qemu: '10.0.2' } })).toEqual([
    'x86-pmem: --on-host gives a QEMU, but the candidate has none',
  ]);
});
