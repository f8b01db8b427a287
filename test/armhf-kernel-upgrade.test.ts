/**
 * The armhf kernel-upgrade suite's own logic, for real where it can be: the hook script and the
 * guest's kernel-install script run under /bin/sh (and busybox sh) on scratch directories laid
 * out as a mapped 9p share looks on the host; the host-view command reads real xattrs.
 */

import { lstat, mkdir, mkdtemp, readFile, readlink, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { domainXml, summariseDomain } from '../drivers/domain-xml.js';
import { runLocal } from '../drivers/local.js';
import { kernelInstallScript } from '../images/armhf-guest.js';
import { bootShareHook, HOOK_SIGNATURE, parseHookLog } from '../suites/armhf-kernel-upgrade/hook.js';
import {
  type ArmhfParams,
  armhfDomainSpec,
  armhfPaths,
  checkKernelMatchesLink,
  domainProblems,
  rebootedInPlace,
} from '../suites/armhf-kernel-upgrade/plan.js';
import {
  describeView,
  guestTypeOf,
  hostViewCommand,
  isMappedSymlink,
  kernelVersionOf,
  parseHostView,
  virtfsMode,
} from '../suites/armhf-kernel-upgrade/share-view.js';
import { hostSchema } from '../targets/schema.js';

const A = '6.1.0-47-armmp';
const B = '6.1.0-50-armmp';

async function scratch(): Promise<{ dir: string; done: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'labrig-armhf-'));
  return { dir, done: () => rm(dir, { recursive: true, force: true }) };
}

/** A share as the host sees it after the guest installed `version`: mapped links are small files. */
async function guestInstalled(share: string, version: string): Promise<void> {
  await mkdir(share, { recursive: true });
  await writeFile(join(share, `vmlinuz-${version}`), 'kernel image bytes '.repeat(50));
  await writeFile(join(share, `initrd.img-${version}`), 'initramfs bytes '.repeat(50));
  await writeFile(join(share, 'vmlinuz'), `vmlinuz-${version}`);
  await writeFile(join(share, 'initrd.img'), `initrd.img-${version}`);
}

async function hook(root: string, args: string[], opts: { chainTo?: string; input?: string } = {}) {
  const script = join(root, 'qemu-hook');
  await writeFile(script, bootShareHook({ shareRoot: root, logFile: join(root, 'hook.log'), chainTo: opts.chainTo }), { mode: 0o755 });
  return runLocal(['/bin/sh', script, ...args], { check: false, input: opts.input ?? '<domain/>' });
}

const hookLog = async (root: string, vm: string) => parseHookLog(await readFile(join(root, 'hook.log'), 'utf8').catch(() => ''), vm);

test('hook: on prepare begin, the mapped link files become real host symlinks that resolve', async () => {
  const { dir, done } = await scratch();
  try {
    await guestInstalled(join(dir, 'vm1-boot'), A);
    const r = await hook(dir, ['vm1', 'prepare', 'begin', '-']);
    expect(r.code, r.stderr).toBe(0);
    expect(await readlink(join(dir, 'vm1-boot/virtio-vmlinuz'))).toBe(`vmlinuz-${A}`);
    expect(await readlink(join(dir, 'vm1-boot/virtio-initrd.img'))).toBe(`initrd.img-${A}`);
    expect(await realpath(join(dir, 'vm1-boot/virtio-vmlinuz'))).toBe(await realpath(join(dir, `vm1-boot/vmlinuz-${A}`)));
    const [entry] = await hookLog(dir, 'vm1');
    expect(entry?.links).toEqual([
      { link: 'virtio-vmlinuz', target: `vmlinuz-${A}`, changed: true },
      { link: 'virtio-initrd.img', target: `initrd.img-${A}`, changed: true },
    ]);
  } finally {
    await done();
  }
});

test('hook: idempotent — a second run keeps the very same link; an upgrade moves it', async () => {
  const { dir, done } = await scratch();
  try {
    const share = join(dir, 'vm1-boot');
    await guestInstalled(share, A);
    await hook(dir, ['vm1', 'prepare', 'begin', '-']);
    const first = await lstat(join(share, 'virtio-vmlinuz'));
    expect((await hook(dir, ['vm1', 'prepare', 'begin', '-'])).code).toBe(0);
    const second = await lstat(join(share, 'virtio-vmlinuz'));
    expect(second.ino).toBe(first.ino);
    await guestInstalled(share, B);
    expect((await hook(dir, ['vm1', 'prepare', 'begin', '-'])).code).toBe(0);
    expect(await readlink(join(share, 'virtio-vmlinuz'))).toBe(`vmlinuz-${B}`);
    const log = await hookLog(dir, 'vm1');
    expect(log.map((e) => e.links.map((l) => l.changed))).toEqual([
      [true, true],
      [false, false],
      [true, true],
    ]);
  } finally {
    await done();
  }
});

test('hook: links kept in / (boot/vmlinuz-…) and real symlinks (passthrough) are read too', async () => {
  const { dir, done } = await scratch();
  try {
    const share = join(dir, 'vm1-boot');
    await guestInstalled(share, A);
    await writeFile(join(share, 'vmlinuz'), `boot/vmlinuz-${A}\n`);
    await rm(join(share, 'initrd.img'));
    await runLocal(['ln', '-s', `initrd.img-${A}`, join(share, 'initrd.img')]);
    expect((await hook(dir, ['vm1', 'prepare', 'begin', '-'])).code).toBe(0);
    expect(await readlink(join(share, 'virtio-vmlinuz'))).toBe(`vmlinuz-${A}`);
    expect(await readlink(join(share, 'virtio-initrd.img'))).toBe(`initrd.img-${A}`);
  } finally {
    await done();
  }
});

test('hook: nothing for domains without a share, nor for other operations; no kernel yet is not an error', async () => {
  const { dir, done } = await scratch();
  try {
    expect((await hook(dir, ['other', 'prepare', 'begin', '-'])).code).toBe(0);
    await guestInstalled(join(dir, 'vm1-boot'), A);
    for (const op of ['start', 'started', 'stopped', 'release']) expect((await hook(dir, ['vm1', op, 'begin', '-'])).code).toBe(0);
    expect(await lstat(join(dir, 'vm1-boot/virtio-vmlinuz')).catch(() => undefined)).toBeUndefined();
    expect(await lstat(join(dir, 'other-boot')).catch(() => undefined)).toBeUndefined();
    await mkdir(join(dir, 'fresh-boot'));
    expect((await hook(dir, ['fresh', 'prepare', 'begin', '-'])).code).toBe(0);
    expect((await hookLog(dir, 'fresh'))[0]?.noKernelLink).toBe(true);
    expect(await hookLog(dir, 'other')).toEqual([]);
  } finally {
    await done();
  }
});

test('hook: refuses the start when vmlinuz names a missing file or is not a link; keeps the old link', async () => {
  const { dir, done } = await scratch();
  try {
    const share = join(dir, 'vm1-boot');
    await guestInstalled(share, A);
    await hook(dir, ['vm1', 'prepare', 'begin', '-']);
    await writeFile(join(share, 'vmlinuz'), `vmlinuz-${B}`);
    const r = await hook(dir, ['vm1', 'prepare', 'begin', '-']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`names vmlinuz-${B}, which is not in ${share}`);
    expect(await readlink(join(share, 'virtio-vmlinuz'))).toBe(`vmlinuz-${A}`);
    await writeFile(join(share, 'vmlinuz'), Buffer.alloc(4096, 0x7f));
    expect((await hook(dir, ['vm1', 'prepare', 'begin', '-'])).stderr).toContain('neither a mapped link nor a symlink');
    expect((await hookLog(dir, 'vm1')).slice(1).map((e) => !!e.error)).toEqual([true, true]);
  } finally {
    await done();
  }
});

test('hook: the hook that was there before still runs, with the same arguments and stdin', async () => {
  const { dir, done } = await scratch();
  try {
    const previous = join(dir, 'previous-hook');
    await writeFile(previous, `#!/bin/sh\necho "$@" > ${dir}/chained.args\ncat > ${dir}/chained.stdin\nexit 3\n`, { mode: 0o755 });
    const r = await hook(dir, ['vmX', 'stopped', 'end', '-'], { chainTo: previous, input: '<domain><name>vmX</name></domain>' });
    expect(r.code).toBe(3);
    expect(await readFile(join(dir, 'chained.args'), 'utf8')).toBe('vmX stopped end -\n');
    expect(await readFile(join(dir, 'chained.stdin'), 'utf8')).toBe('<domain><name>vmX</name></domain>');
  } finally {
    await done();
  }
});

test('hook text: signed, and never calls back into libvirt', () => {
  const text = bootShareHook({ shareRoot: '/srv', logFile: '/var/log/libvirt/x.log' });
  expect(text.split('\n')[1]).toBe(HOOK_SIGNATURE);
  const code = text.split('\n').filter((l) => !l.trim().startsWith('#'));
  expect(code.join('\n')).not.toMatch(/\bvirsh\b|libvirt-sock|virt-admin/);
});

test('kernel install in the guest: image lands in /boot, links move as linux-update-symlinks moves them', async () => {
  const { dir, done } = await scratch();
  try {
    const pool = join(dir, 'pool');
    const boot = join(dir, 'boot');
    await mkdir(boot);
    for (const v of [A, B]) {
      await mkdir(join(pool, v), { recursive: true });
      await writeFile(join(pool, v, `vmlinuz-${v}`), `k ${v}`);
      await writeFile(join(pool, v, `initrd.img-${v}`), `i ${v}`);
    }
    const script = join(dir, 'install');
    await writeFile(script, kernelInstallScript, { mode: 0o755 });
    for (const shell of [['/bin/sh'], ['busybox', 'sh']]) {
      await rm(boot, { recursive: true });
      await mkdir(boot);
      const install = (v: string) => runLocal([...shell, script, v], { env: { BOOT: boot, POOL: pool }, check: false });
      expect((await install(A)).code).toBe(0);
      expect(await readlink(join(boot, 'vmlinuz'))).toBe(`vmlinuz-${A}`);
      expect(await lstat(join(boot, 'vmlinuz.old')).catch(() => undefined)).toBeUndefined();
      expect((await install(B)).stdout).toContain(`vmlinuz -> vmlinuz-${B}`);
      expect(await readlink(join(boot, 'vmlinuz'))).toBe(`vmlinuz-${B}`);
      expect(await readlink(join(boot, 'vmlinuz.old'))).toBe(`vmlinuz-${A}`);
      expect(await readlink(join(boot, 'initrd.img'))).toBe(`initrd.img-${B}`);
      expect(await readFile(join(boot, `vmlinuz-${B}`), 'utf8')).toBe(`k ${B}`);
      expect((await install(B)).code).toBe(0);
      expect(await readlink(join(boot, 'vmlinuz.old'))).toBe(`vmlinuz-${A}`);
      const missing = await install('9.9.9-1-armmp');
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('has no vmlinuz-9.9.9-1-armmp');
    }
  } finally {
    await done();
  }
});

test('host view: a mapped-xattr symlink read back from a real file with user.virtfs.mode', async () => {
  const { dir, done } = await scratch();
  try {
    const f = join(dir, 'vmlinuz');
    await writeFile(f, `vmlinuz-${B}`, { mode: 0o600 });
    // What QEMU writes for a guest symlink: S_IFLNK|0777 as a little-endian 32-bit mode_t.
    await runLocal(['setfattr', '-n', 'user.virtfs.mode', '-v', `0x${Buffer.from(new Uint32Array([0o120777]).buffer).toString('hex')}`, f]);
    const view = parseHostView(f, (await runLocal(['/bin/sh', '-c', hostViewCommand(f)])).stdout);
    expect(view).toMatchObject({ type: 'regular', perm: '600', content: `vmlinuz-${B}` });
    expect(view.xattrs?.['user.virtfs.mode']).toBe('ffa10000');
    expect(virtfsMode(view)).toBe(0o120777);
    expect(guestTypeOf(view)).toBe('symlink');
    expect(isMappedSymlink(view)).toBe(true);
    expect(describeView(view)).toContain(`holds "vmlinuz-${B}", user.virtfs.mode 120777 (guest sees symlink)`);
    await writeFile(join(dir, `vmlinuz-${B}`), 'kernel');
    await runLocal(['ln', '-s', `vmlinuz-${B}`, join(dir, 'virtio-vmlinuz')]);
    const link = parseHostView(
      join(dir, 'virtio-vmlinuz'),
      (await runLocal(['/bin/sh', '-c', hostViewCommand(join(dir, 'virtio-vmlinuz'))])).stdout,
    );
    expect(link).toMatchObject({ type: 'symlink', linkTarget: `vmlinuz-${B}`, resolvesTo: await realpath(join(dir, `vmlinuz-${B}`)) });
    expect(isMappedSymlink(link)).toBe(false);
    const gone = parseHostView(join(dir, 'nothing'), (await runLocal(['/bin/sh', '-c', hostViewCommand(join(dir, 'nothing'))])).stdout);
    expect(gone.type).toBe('missing');
  } finally {
    await done();
  }
});

test('host view: getfattr output and "no xattr tool" are read too', () => {
  const v = parseHostView(
    '/srv/x-boot/vmlinuz',
    'stat regular file|600|libvirt-qemu|22\ncontent vmlinuz-6.1.0-50-armmp\nxattr user.virtfs.mode=0xFFA10000\nxattr user.virtfs.uid=0x00000000\n',
  );
  expect(guestTypeOf(v)).toBe('symlink');
  const none = parseHostView(
    '/srv/x-boot/vmlinuz',
    'stat regular file|600|libvirt-qemu|22\ncontent vmlinuz-6.1.0-50-armmp\nxattr-unavailable\n',
  );
  expect(none.xattrs).toBeUndefined();
  expect(describeView(none)).toContain('xattrs unreadable');
  expect(kernelVersionOf('vmlinuz-6.1.0-50-armmp')).toBe('6.1.0-50-armmp');
  expect(kernelVersionOf('boot/vmlinuz-6.1.0-50-armmp')).toBe('6.1.0-50-armmp');
  expect(kernelVersionOf('initrd.img-6.1.0-50-armmp', 'initrd.img')).toBe('6.1.0-50-armmp');
  expect(kernelVersionOf('bzImage')).toBeUndefined();
});

const params: ArmhfParams = hostSchema.parse({
  name: 'emu-arm64',
  role: 'arm64-armhf',
  ssh: { address: '127.0.0.1', identityFile: '/k', hostKey: `SHA256:${'A'.repeat(43)}` },
  expect: { arch: 'x86_64' },
  suites: {
    armhfKernelUpgrade: {
      vm: 'labrig-armhf-guest',
      restartLibvirtd: 'true',
      guest: { kind: 'recipe', recipe: 'armhf-guest', kernels: [A, B] },
    },
  },
}).suites.armhfKernelUpgrade!;

test('domain: the seed’s definition — armv7l virt, highmem=off, mapped 9p virtio-boot, on_reboot=destroy', () => {
  const paths = armhfPaths(params);
  expect(paths).toEqual({
    share: '/srv/labrig-armhf-guest-boot',
    disk: '/srv/labrig-armhf-guest.img',
    installDir: '/srv/labrig-armhf-guest-install',
    serialLog: '/var/log/libvirt/qemu/labrig-armhf-guest-serial.log',
    repo: '/srv/labrig-armhf-guest-apt',
  });
  const spec = armhfDomainSpec({
    params,
    paths,
    from: 'share',
    cmdline: 'console=ttyAMA0 root=/dev/vda rw',
    diskFormat: 'raw',
    accel: 'tcg',
  });
  const summary = summariseDomain(domainXml(spec));
  expect(summary).toMatchObject({
    arch: 'armv7l',
    machine: 'virt',
    type: 'qemu',
    onReboot: 'destroy',
    kernel: '/srv/labrig-armhf-guest-boot/virtio-vmlinuz',
    initrd: '/srv/labrig-armhf-guest-boot/virtio-initrd.img',
    cmdline: 'console=ttyAMA0 root=/dev/vda rw',
    filesystems: [{ tag: 'virtio-boot', accessMode: 'mapped', source: '/srv/labrig-armhf-guest-boot' }],
    qemuArgs: ['-machine', 'highmem=off'],
  });
  expect(domainProblems(summary, spec)).toEqual([]);
  // libvirt may name the versioned machine type; anything else is reported.
  expect(domainProblems({ ...summary, machine: 'virt-7.2' }, spec)).toEqual([]);
  expect(
    domainProblems(
      { ...summary, onReboot: 'restart', qemuArgs: [], filesystems: [{ ...summary.filesystems[0]!, accessMode: 'passthrough' }] },
      spec,
    ),
  ).toEqual(['on_reboot restart, not destroy', 'no -machine highmem=off', 'virtio-boot accessmode passthrough, not mapped']);
  const installer = armhfDomainSpec({ params, paths, from: 'installer', cmdline: 'x', diskFormat: 'raw', accel: 'tcg' });
  expect(installer.kernel?.path).toBe('/srv/labrig-armhf-guest-install/vmlinuz');

  // Under KVM on an arm64 host (the MP30-AR1): a kvm domain whose vCPU has AArch64 turned off.
  const kvm = armhfDomainSpec({ params, paths, from: 'share', cmdline: 'x', diskFormat: 'raw', accel: 'kvm' });
  const kvmXml = domainXml(kvm);
  expect(kvmXml).toMatch(/<domain type="kvm"/);
  expect(kvmXml).toMatch(
    /<cpu mode="host-passthrough">\s*<feature policy="disable" name="aarch64"><\/feature>|<cpu mode="host-passthrough">\s*<feature policy="disable" name="aarch64"\/>/,
  );
  expect(domainProblems(summariseDomain(kvmXml), kvm)).toEqual([]);
  expect(domainProblems(summary, kvm)).toContain('domain type qemu, not kvm');
});

test('verdicts: uname -r must be the version /boot/vmlinuz names; a reboot must not start a kernel', () => {
  expect(checkKernelMatchesLink('h', `${B}\n`, `vmlinuz-${B}`, B)).toBe(B);
  expect(() => checkKernelMatchesLink('h', A, `vmlinuz-${B}`)).toThrow(`the guest runs ${A}, but its /boot/vmlinuz names ${B}`);
  expect(() => checkKernelMatchesLink('h', B, `vmlinuz-${B}`, A)).toThrow(`names ${B}, expected ${A}`);
  expect(() => checkKernelMatchesLink('h', B, 'bzImage')).toThrow('no vmlinuz-<version>');
  expect(rebootedInPlace('reboot\r\nThe system is going down NOW!\r\nSent SIGTERM to all processes\r\nreboot: Restarting system\r\n')).toBe(
    false,
  );
  expect(rebootedInPlace('reboot: Restarting system\r\n[    0.000000] Booting Linux on physical CPU 0x0\r\n')).toBe(true);
});
