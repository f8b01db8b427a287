/**
 * `labrig components fetch`: a real candidate (bookworm-backports' QEMU 10.0 and libvirt 11.3)
 * fetched with apt from Debian's archive into a build directory; the runner's dpkg unchanged;
 * a second fetch from the cache; a version the suite does not have, and a build whose binaries
 * cannot find their libraries, each one line naming the component. The parsers on recorded
 * real outputs first.
 */

import { chmod, cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import { parseDepends, parseMadison, versionMatches } from '../targets/components-apt.js';
import { parseLddMissing, verifyBuild, wrapperScript } from '../targets/components-build.js';
import { componentsCacheDir, fetchComponents, parseComponentVersions } from '../targets/components-fetch.js';

test.describe('parsers, on what apt and ldd print', () => {
  test('madison rows, versions by upstream prefix, Depends groups', () => {
    const rows = parseMadison(
      'qemu-system-arm | 1:10.0.2+ds-2+deb13u1~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main amd64 Packages\n' +
        'qemu-system-arm | 1:7.2+dfsg-7+deb12u18+b3 | http://deb.debian.org/debian bookworm/main amd64 Packages\n',
    );
    expect(rows.map((r) => [r.version, r.suite])).toEqual([
      ['1:10.0.2+ds-2+deb13u1~bpo12+1', 'bookworm-backports'],
      ['1:7.2+dfsg-7+deb12u18+b3', 'bookworm'],
    ]);
    expect(['10.0.2', '10.0', '10', '1:10.0.2+ds-2+deb13u1~bpo12+1'].map((r) => versionMatches(r, rows[0]!.version))).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(['10.0.20', '10.1', '7.2'].map((r) => versionMatches(r, rows[0]!.version))).toEqual([false, false, false]);
    expect(parseDepends('libaio1 (>= 0.3.93), qemu-kvm | qemu-system, libc6:amd64 (>= 2.34), debconf (>= 0.5) | debconf-2.0')).toEqual([
      [{ name: 'libaio1', op: '>=', version: '0.3.93' }],
      [{ name: 'qemu-kvm' }, { name: 'qemu-system' }],
      [{ name: 'libc6', op: '>=', version: '2.34' }],
      [{ name: 'debconf', op: '>=', version: '0.5' }, { name: 'debconf-2.0' }],
    ]);
    expect(() => parseComponentVersions(['qemu:10.0'])).toThrow(/"qemu:10.0" is not component=version/);
    expect(parseComponentVersions(['qemu=10.0.2,libvirt=11.3.0'])).toEqual({ qemu: '10.0.2', libvirt: '11.3.0' });
  });

  test('ldd: a library not found, a symbol version not found', () => {
    const text = [
      '\tlinux-vdso.so.1 (0x00007ffd)',
      '\tlibfoo.so.3 => not found',
      "/opt/b/root/usr/bin/virsh: /lib/x86_64-linux-gnu/libvirt.so.0: version `LIBVIRT_11.2.0' not found (required by /opt/b/root/usr/bin/virsh)",
      '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)',
    ].join('\n');
    expect(parseLddMissing(text)).toEqual(['libfoo.so.3', 'LIBVIRT_11.2.0 (required by virsh)']);
  });

  test('a wrapper quotes a prefix that is hostile to the shell', async () => {
    const dir = await mkdtemp(join(tmpdir(), "labrig-wrap '$(touch x)"));
    try {
      const w = join(dir, 'w');
      await writeFile(
        w,
        wrapperScript({
          binary: '/bin/echo',
          libDirs: [join(dir, "lib'; exit 7; '")],
          env: { LIBVIRT_DRIVER_DIR: `${dir}/"$HOME"` },
          leadingArgs: ['-L', `${dir}/share`],
        }),
      );
      await chmod(w, 0o755);
      const r = await execa(w, ['--version', 'a b'], { reject: false });
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe(`-L ${dir}/share --version a b`);
      expect(await readdir(dir)).toEqual(['w']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

test.describe('a candidate from bookworm-backports', () => {
  test.describe.configure({ mode: 'serial', timeout: 15 * 60_000 });
  const dpkgList = async () =>
    (await execa('dpkg', ['-l', 'qemu-system-arm', 'libvirt-daemon', 'libvirt-clients'], { reject: false })).stdout;
  let before = '';
  let buildDir = '';

  test('fetch: QEMU 10.0 and libvirt 11.3 run from the build; the runner keeps its own', async () => {
    before = await dpkgList();
    const { build } = await fetchComponents({ versions: { qemu: '10.0.2', libvirt: '11.3.0' } });
    buildDir = build.dir;
    expect(build.dir.startsWith(componentsCacheDir())).toBe(true);
    expect(build.components.qemu?.version).toMatch(/^1:10\.0\.2\+ds-.*bpo12/);
    const qemu = await execa(join(build.dir, 'bin', 'qemu-system-aarch64'), ['--version']);
    expect(qemu.stdout).toMatch(/^QEMU emulator version 10\.0\.2 /);
    expect((await execa(join(build.dir, 'bin', 'virsh'), ['--version'])).stdout.trim()).toBe('11.3.0');
    expect(build.binaries.find((b) => b.name === 'qemu-system-aarch64')?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.parse(await readFile(join(build.dir, 'build.json'), 'utf8')).packages.length).toBeGreaterThanOrEqual(12);
    expect(await dpkgList()).toBe(before);
  });

  test('a second fetch is the cached build', async () => {
    const t0 = performance.now();
    const { build, cached } = await fetchComponents({ versions: { qemu: '10.0.2', libvirt: '11.3.0' } });
    expect(cached).toBe(true);
    expect(build.dir).toBe(buildDir);
    expect(performance.now() - t0).toBeLessThan(30_000);
  });

  test('a version the suite does not have: one line naming the component and what exists', async () => {
    const e = await fetchComponents({ versions: { qemu: '9.9' } }).catch((x: Error) => x);
    expect((e as Error).message).toMatch(
      /^\[lab:config\] components: qemu 9\.9 is not in bookworm-backports; qemu-system-arm has 1:10\.0\.2\+ds\S+ \(bookworm-backports\)/,
    );
    expect((e as Error).message.split('\n')).toHaveLength(1);
  });

  test('a libvirt version the suite does not have: one line naming libvirt and what exists', async () => {
    const e = await fetchComponents({ versions: { qemu: '10.0.2', libvirt: '99.0' } }).catch((x: Error) => x);
    expect((e as Error).message).toMatch(
      /^\[lab:config\] components: libvirt 99\.0 is not in bookworm-backports; libvirt-daemon has 11\.3\.0-\S+ \(bookworm-backports\)/,
    );
    expect((e as Error).message.split('\n')).toHaveLength(1);
  });

  test('a build whose virsh finds only the system libvirt: one line naming libvirt and the missing symbols', async () => {
    const copy = await mkdtemp(join(tmpdir(), 'labrig-broken-build-'));
    try {
      await cp(join(buildDir, 'root'), join(copy, 'root'), { recursive: true, verbatimSymlinks: true });
      const libs = join(copy, 'root/usr/lib/x86_64-linux-gnu');
      for (const n of (await readdir(libs)).filter((n) => n.startsWith('libvirt.so'))) await rm(join(libs, n));
      const e = await verifyBuild(copy).catch((x: Error) => x);
      expect((e as Error).message).toMatch(
        /^\[lab:config\] components: libvirt build \S+: \S+ does not run on this host: missing (LIBVIRT_[\d.]+ \(required by \S+\)|libvirt\.so\.0)/,
      );
      expect(await dpkgList()).toBe(before);
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });
});
