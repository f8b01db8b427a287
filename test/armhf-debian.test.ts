/**
 * The real Debian armhf guest (images/armhf-debian.ts): its apt repository read by the runner's
 * own apt, the domain with the repository share, the lab's choice of guest, and the image itself
 * (built once, or taken from the cache) read back from its disk with debugfs.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { domainXml, summariseDomain } from '../drivers/domain-xml.js';
import { runLocal } from '../drivers/local.js';
import {
  ARMHF_DEBIAN,
  armhfDebianImage,
  DEBIAN_DISK,
  INSTALLER_INITRD,
  INSTALLER_KERNEL,
  repoFiles,
  writeFlatRepo,
} from '../images/armhf-debian.js';
import { APT_SHARE_MOUNT, APT_SHARE_TAG, aptKernelInstall } from '../images/contracts/armhf-debian.js';
import { stderrProgress } from '../images/debs.js';
import { armhfDomainSpec, armhfPaths, domainProblems } from '../suites/armhf-kernel-upgrade/plan.js';
import { emuArmhfGuest } from '../targets/emulated/emu-arm64.js';
import { hostSchema } from '../targets/schema.js';

const KERNELS = ['6.1.0-50-armmp', '6.1.0-53-armmp'] as const;

/** A tiny armhf .deb made by dpkg-deb, shaped like a kernel package's control. */
async function fakeDeb(dir: string, name: string, version: string): Promise<string> {
  const root = join(dir, `${name}-build`);
  await mkdir(join(root, 'DEBIAN'), { recursive: true });
  await mkdir(join(root, 'boot'), { recursive: true });
  await writeFile(join(root, 'boot', `vmlinuz-${name}`), 'not a kernel\n');
  await writeFile(
    join(root, 'DEBIAN', 'control'),
    `Package: ${name}\nVersion: ${version}\nArchitecture: armhf\nMaintainer: labrig <labrig@localhost>\nDepends: kmod\nDescription: test kernel\n`,
  );
  const deb = join(dir, `${name}_${version}_armhf.deb`);
  await runLocal(['dpkg-deb', '--root-owner-group', '--build', root, deb], { timeoutMs: 60_000 });
  return deb;
}

test('flat repository: apt on the runner (armhf, a private state) reads it and finds both kernels', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'labrig-armhf-repo-'));
  try {
    const debs = [await fakeDeb(dir, 'linux-image-9.9.0-1-armmp', '9.9.1-1'), await fakeDeb(dir, 'linux-image-9.9.0-2-armmp', '9.9.2-1')];
    const repo = join(dir, 'repo');
    const names = await writeFlatRepo(debs, repo);
    expect(names).toEqual([
      'linux-image-9.9.0-1-armmp_9.9.1-1_armhf.deb',
      'linux-image-9.9.0-2-armmp_9.9.2-1_armhf.deb',
      'Packages',
      'Release',
    ]);
    const sources = join(dir, 'sources.list');
    // The guest's own line, with the share's mount point replaced by where the repository is here.
    await writeFile(sources, `deb [trusted=yes] file:${repo} ./\n`);
    const opts = [
      '-o', `Dir::Etc::SourceList=${sources}`,
      '-o', 'Dir::Etc::SourceParts=/dev/null',
      '-o', `Dir::State::Lists=${dir}/lists`,
      '-o', `Dir::State::Status=${dir}/status`,
      '-o', `Dir::Cache=${dir}/cache`,
      '-o', 'APT::Architecture=armhf',
      '-o', 'APT::Architectures=armhf',
      '-o', 'Debug::NoLocking=1',
    ]; // biome-ignore format: option pairs
    await mkdir(join(dir, 'lists', 'partial'), { recursive: true });
    await writeFile(join(dir, 'status'), '');
    const update = await runLocal(['apt-get', ...opts, 'update'], { check: false, timeoutMs: 120_000 });
    expect(update.code, update.stderr).toBe(0);
    expect(update.stderr).not.toMatch(/^E:/m);
    const show = await runLocal(['apt-cache', ...opts, 'show', 'linux-image-9.9.0-2-armmp'], { timeoutMs: 60_000 });
    expect(show.stdout).toMatch(/^Version: 9\.9\.2-1$/m);
    expect(show.stdout).toMatch(/^Filename: \.\/linux-image-9\.9\.0-2-armmp_9\.9\.2-1_armhf\.deb$/m);
    // apt fetches the .deb through file: and checks its hash against Packages.
    const fetch = await runLocal(['apt-get', ...opts, '-o', 'APT::Sandbox::User=root', 'download', 'linux-image-9.9.0-1-armmp'], {
      check: false,
      cwd: dir,
      timeoutMs: 60_000,
    });
    expect(fetch.code, fetch.stderr).toBe(0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('domain: the repository is a second, read-only 9p share; the apt command installs the named kernel', () => {
  const params = hostSchema.parse({
    name: 'emu-arm64',
    role: 'arm64-armhf',
    ssh: { address: '127.0.0.1', identityFile: '/k', hostKey: `SHA256:${'A'.repeat(43)}` },
    expect: { arch: 'x86_64' },
    suites: {
      armhfKernelUpgrade: { vm: 'labrig-armhf-guest', restartLibvirtd: 'true', ...emuArmhfGuest({ LABRIG_EMU_ARMHF_GUEST: 'debian' }) },
    },
  }).suites.armhfKernelUpgrade!;
  expect(params.guest).toEqual({ kind: 'recipe', recipe: ARMHF_DEBIAN, kernels: [...KERNELS] });
  expect(params.memoryMiB).toBe(1024);
  const paths = armhfPaths(params);
  const spec = armhfDomainSpec({ params, paths, from: 'share', cmdline: 'x', diskFormat: 'qcow2', repoTag: APT_SHARE_TAG, accel: 'tcg' });
  const summary = summariseDomain(domainXml(spec));
  expect(summary.filesystems).toEqual([
    { tag: 'virtio-boot', accessMode: 'mapped', source: '/srv/labrig-armhf-guest-boot', readonly: false },
    { tag: APT_SHARE_TAG, accessMode: 'mapped', source: '/srv/labrig-armhf-guest-apt', readonly: true },
  ]);
  expect(domainProblems(summary, spec)).toEqual([]);
  expect(domainProblems({ ...summary, filesystems: summary.filesystems.map((f) => ({ ...f, readonly: false })) }, spec)).toEqual([
    `${APT_SHARE_TAG} is not read-only`,
  ]);
  expect(aptKernelInstall(KERNELS[1])).toMatch(/apt-get .*update && .*apt-get .*install -y linux-image-6\.1\.0-53-armmp$/);
  expect(emuArmhfGuest({}).guest).toMatchObject({ recipe: 'armhf-guest' });
  expect(() => emuArmhfGuest({ LABRIG_EMU_ARMHF_GUEST: 'ubuntu' })).toThrow('expected busybox or debian');
});

/** One file of an ext4 image, read with debugfs (no mount). */
async function debugfsCat(raw: string, path: string): Promise<string> {
  return (await runLocal(['debugfs', '-R', `cat ${path}`, raw], { timeoutMs: 60_000 })).stdout;
}

test('image: a configured Debian tree — systemd, apt, initramfs-tools, no kernel; 9p /boot by automount; link_in_boot', async () => {
  // A cold build runs mmdebstrap through qemu-user (minutes); a cached image is read in seconds.
  test.setTimeout(60 * 60_000);
  const image = await armhfDebianImage(KERNELS, stderrProgress);
  expect(Object.keys(image.manifest.files)).toEqual(expect.arrayContaining([DEBIAN_DISK, INSTALLER_KERNEL, INSTALLER_INITRD]));
  expect(repoFiles(image).map((f) => f.name)).toEqual([
    ...image.manifest.packages.filter((p) => p.name.startsWith('linux-image-')).map((p) => `${p.name}_${p.version}_armhf.deb`),
    'Packages',
    'Release',
  ]);
  const dir = await mkdtemp(join(tmpdir(), 'labrig-armhf-disk-'));
  try {
    const raw = join(dir, 'root.img');
    await runLocal(['qemu-img', 'convert', '-O', 'raw', image.file(DEBIAN_DISK), raw], { timeoutMs: 300_000 });
    const fstab = await debugfsCat(raw, '/etc/fstab');
    expect(fstab).toMatch(/^virtio-boot \/boot 9p trans=virtio,version=9p2000\.L,x-systemd\.automount 0 0$/m);
    expect(fstab).toContain(`${APT_SHARE_TAG} ${APT_SHARE_MOUNT} 9p`);
    expect(await debugfsCat(raw, '/etc/kernel-img.conf')).toMatch(/^link_in_boot = yes$/m);
    expect(await debugfsCat(raw, '/etc/apt/sources.list')).toBe(`deb [trusted=yes] file:${APT_SHARE_MOUNT} ./\n`);
    expect(await debugfsCat(raw, '/etc/shadow')).toMatch(/^root::/m);
    const status = await debugfsCat(raw, '/var/lib/dpkg/status');
    const stanza = (name: string) => status.split('\n\n').find((t) => t.startsWith(`Package: ${name}\n`)) ?? '';
    const installed = (name: string) => /^Status: install ok installed$/m.test(stanza(name));
    for (const p of ['systemd', 'systemd-sysv', 'apt', 'dpkg', 'initramfs-tools', 'linux-base', 'udev', 'kmod'])
      expect(installed(p), p).toBe(true);
    expect(status).not.toMatch(/^Package: linux-image-/m);
    expect(status).not.toMatch(/^Status: .*(half-configured|unpacked|half-installed)$/m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
