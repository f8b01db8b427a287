/**
 * `labrig images` as a lab engineer uses it on a Debian runner: an unknown image is refused
 * naming the known ones; the probe guest is built (or found) and a second build is a cache hit in
 * the same place; `images list` shows it with its size; with no names, the images the lab config
 * needs; and a config whose guest images are paths that do not exist fails doctor with one line
 * per field, before any test.
 */
import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import { doctorHost } from '../targets/doctor.js';
import { labSchema } from '../targets/schema.js';
import { testSshd } from './helpers/sshd.js';

// a cold build of the probe guest fetches 60 MB of arm64 packages; the CLI starts afresh each step
test.describe.configure({ mode: 'serial', timeout: 20 * 60_000 });

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const KNOWN = 'armhf-guest, aarch64-probe-guest, emu-mini, emu-xen, emu-x86-pmem';
let dir: string;

interface BuildRecord {
  name: string;
  dir: string;
  cached: boolean;
  files: Record<string, string>;
}

async function labrig(args: string[], env: Record<string, string> = {}) {
  const r = await execa(process.execPath, ['bin/labrig.mjs', ...args], { cwd: repoRoot, reject: false, env });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** A lab config for the runner only: its hosts are never reached by `images build`. */
async function labFile(name: string, hosts: object[]): Promise<string> {
  const file = join(dir, `${name}.json`);
  const ssh = { address: '127.0.0.1', identityFile: '/nonexistent', hostKey: `SHA256:${'A'.repeat(43)}` };
  await writeFile(file, JSON.stringify({ name, hosts: hosts.map((h) => ({ ssh, expect: { arch: 'aarch64' }, ...h })) }));
  return file;
}

test.beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'labrig-images-cli-'));
});
test.afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('an unknown image: exit 2, one line naming the known images, nothing built', async () => {
  const r = await labrig(['images', 'build', 'aarch64-probe-guest', 'armhf-gust']);
  expect(r.code).toBe(2);
  expect(r.stderr).toBe(`labrig images build: no image "armhf-gust" (images: ${KNOWN})`);
  expect(r.stdout).toBe('');
});

test("a runner without Debian's build tools: exit 3, one line naming each tool and its package, before any build", async () => {
  const bin = join(dir, 'node-only');
  await mkdir(bin);
  await symlink(process.execPath, join(bin, 'node'));
  const r = await labrig(['images', 'build', 'emu-mini'], { PATH: bin });
  expect(r.code).toBe(3);
  expect(r.stderr).toBe(
    "labrig images build: [lab:lab-setup] images are built with Debian's tools; this runner lacks apt-get (apt), apt-cache (apt), dpkg (dpkg), mke2fs (e2fsprogs), xz (xz-utils), ssh-keygen (openssh-client): apt-get install apt dpkg e2fsprogs xz-utils openssh-client",
  );
});

test('the probe guest built twice: the second is a cache hit in the same place, and says so', async () => {
  const first = await labrig(['images', 'build', 'aarch64-probe-guest', '--json']);
  expect(first.code, first.stderr).toBe(0);
  const [built] = JSON.parse(first.stdout) as BuildRecord[];
  expect(built).toMatchObject({ name: 'aarch64-probe-guest', files: { kernel: expect.any(String), initrd: expect.any(String) } });
  for (const file of Object.values(built!.files)) expect((await stat(file)).size).toBeGreaterThan(0);

  const again = await labrig(['images', 'build', 'aarch64-probe-guest']);
  expect(again.code, again.stderr).toBe(0);
  expect(again.stdout.split('\n')).toEqual([
    expect.stringMatching(new RegExp(`^aarch64-probe-guest ${built!.dir} \\(cached, \\d+\\.\\d s\\)$`)),
    `  kernel: ${built!.files.kernel}`,
    `  initrd: ${built!.files.initrd}`,
  ]);
  expect(again.stderr).toContain(`using cached image ${built!.dir}`);
  expect(again.stderr).not.toContain('building image');
});

test('images list: every known image, the probe guest cached with its path and size', async () => {
  const r = await labrig(['images', 'list', '--json']);
  expect(r.code, r.stderr).toBe(0);
  const rows = JSON.parse(r.stdout) as Array<{ name: string; state: string; dir?: string; sizeBytes?: number }>;
  expect([...new Set(rows.map((row) => row.name))].join(', ')).toBe(KNOWN);
  const probe = rows.find((row) => row.name === 'aarch64-probe-guest' && row.state === 'cached')!;
  // its size on disk, as du counts it
  const du = await execa('du', ['-s', '--block-size=1', probe.dir!]);
  expect(probe.sizeBytes).toBe(Number(du.stdout.split('\t')[0]));

  const text = await labrig(['images', 'list']);
  expect(text.stdout).toMatch(
    new RegExp(`^aarch64-probe-guest +cached +\\d+\\.\\d MB  \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d  ${probe.dir}$`, 'm'),
  );
});

test('no names: the images the lab config needs, and none when its guests are its own paths', async () => {
  const needs = await labFile('needs-probe', [
    { name: 'kunpeng', role: 'arm64-kunpeng' },
    // a prepared guest is the lab's own: nothing to build for it
    {
      name: 'mp30',
      role: 'arm64-armhf',
      suites: {
        armhfKernelUpgrade: {
          vm: 'g',
          restartLibvirtd: 'true',
          guest: { kind: 'prepared', disk: '/d', installKernel: '/k', installInitrd: '/i', installCommand: 'x', upgradeCommand: 'y' },
        },
      },
    },
  ]);
  const r = await labrig(['images', 'build', '--json'], { LABRIG_CONFIG: needs });
  expect(r.code, r.stderr).toBe(0);
  expect((JSON.parse(r.stdout) as BuildRecord[]).map((b) => [b.name, b.cached])).toEqual([['aarch64-probe-guest', true]]);
  expect(r.stderr).toContain('labrig: lab needs-probe needs aarch64-probe-guest\n');

  const own = await labFile('own-guests', [
    { name: 'kunpeng', role: 'arm64-kunpeng', suites: { pcieRootPorts: { guest: { kernel: '/k', initrd: '/i' } } } },
  ]);
  const none = await labrig(['images', 'build', '--json'], { LABRIG_CONFIG: own });
  expect(none.code, none.stderr).toBe(0);
  expect(JSON.parse(none.stdout)).toEqual([]);
  expect(none.stderr).toContain('lab own-guests needs no image that labrig builds');
});

test('guest images named by paths that do not exist: doctor fails the host with one line per field', async () => {
  const env = await testSshd();
  try {
    const present = join(dir, 'ramdisk.img');
    await writeFile(present, 'ramdisk');
    const lab = labSchema.parse({
      name: 'missing-images',
      hosts: [
        {
          name: 'xen-box',
          role: ['x86-xen', 'arm64-kunpeng'],
          ssh: env.config,
          expect: { arch: 'x86_64' },
          suites: {
            pcieRootPorts: { guest: { kernel: join(dir, 'no-probe-vmlinuz'), initrd: present } },
            xen: {
              dom0Mem: '512M',
              dom0MaxVcpus: 1,
              console: 'com1',
              pvGuest: { kernel: '/srv/xen/no-such-vmlinuz', ramdisk: present },
              hvmGuest: { disk: "/srv/it's not there.img", readyPattern: 'login:' },
            },
          },
        },
      ],
    });
    const checks = (await doctorHost(lab.hosts[0]!, lab, dir)).filter((c) => c.check === 'images');
    expect(checks.map((c) => [c.ok, c.detail])).toEqual([
      [
        false,
        `hosts[0].suites.pcieRootPorts.guest.kernel: ${join(dir, 'no-probe-vmlinuz')} does not exist or is not readable on the runner (the probe guest; without \`guest\`, the suite boots the one \`labrig images build aarch64-probe-guest\` builds)`,
      ],
      [
        false,
        'hosts[0].suites.xen.pvGuest.kernel: /srv/xen/no-such-vmlinuz does not exist or is not readable on the host (the PV guest kernel)',
      ],
      [
        false,
        "hosts[0].suites.xen.hvmGuest.disk: /srv/it's not there.img does not exist or is not readable on the host (the HVM guest disk)",
      ],
    ]);

    await writeFile(join(dir, 'no-probe-vmlinuz'), 'kernel');
    const fixed = labSchema.parse({
      ...lab,
      hosts: [
        {
          ...lab.hosts[0]!,
          suites: { ...lab.hosts[0]!.suites, xen: { ...lab.hosts[0]!.suites.xen!, pvGuest: { kernel: present }, hvmGuest: undefined } },
        },
      ],
    });
    expect((await doctorHost(fixed.hosts[0]!, fixed, dir)).filter((c) => c.check === 'images')).toEqual([
      { host: 'xen-box', check: 'images', ok: true, detail: 'guest images present on the host: xen.pvGuest.kernel' },
    ]);
  } finally {
    await env.cleanup();
  }
});
