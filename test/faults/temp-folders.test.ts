/**
 * Fault rows: nothing accumulates, and what holds keys is ours alone. `labrig doctor` removes
 * its temporary log folder (checked on a real sshd host with a command console); an image build
 * leaves no `.tmp`/`.work` folder whether it succeeds or fails, and the next build sweeps those a
 * killed build left; images and initramfs archives (which carry guest host private keys) are
 * readable by us only.
 */

import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import { LabError } from '../../drivers/errors.js';
import { cachedImage } from '../../images/cache.js';
import { CONSOLE_AND_NULL, writeInitramfs } from '../../images/cpio.js';
import { parseLab } from '../../targets/config.js';
import { doctor } from '../../targets/doctor.js';
import { testSshd } from '../helpers/sshd.js';

let work = '';

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'labrig-fault-temp-'));
});

test.afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Runs `body` with os.tmpdir() pointing at a fresh folder of its own, and returns what is left in it. */
async function leftIn(name: string, body: () => Promise<void>): Promise<string[]> {
  const dir = join(work, name);
  await mkdir(dir, { recursive: true });
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  try {
    await body();
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
  return readdir(dir);
}

test('doctor removes its temporary log folder; given a log folder, it keeps the logs there', async () => {
  test.setTimeout(120_000);
  const { config: ssh, cleanup } = await testSshd();
  try {
    const lab = parseLab({
      name: 'temp',
      lease: { path: join(work, 'lock', 'labrig.lease') },
      hosts: [
        {
          name: 'doc-host',
          role: 'local',
          ssh,
          console: { kind: 'command', argv: ['sh', '-c', 'echo ready; exec cat'] },
          expect: { arch: process.arch === 'x64' ? 'x86_64' : 'aarch64' },
        },
      ],
    });
    let checks: Awaited<ReturnType<typeof doctor>> = [];
    expect(await leftIn('doctor-tmp', async () => void (checks = await doctor(lab)))).toEqual([]);
    expect(checks.map((c) => [c.check, c.ok])).toEqual(
      expect.arrayContaining([
        ['ssh', true],
        ['console', true],
      ]),
    );

    const kept = join(work, 'doctor-logs');
    expect(await leftIn('doctor-tmp-2', async () => void (checks = await doctor(lab, undefined, kept)))).toEqual([]);
    expect(await readdir(kept)).toContain('doc-host-console.log');
  } finally {
    await cleanup();
  }
});

test('an image build leaves no .tmp or .work folder, built or failed, and sweeps those a killed build left', async () => {
  const saved = process.env.LABRIG_CACHE;
  process.env.LABRIG_CACHE = join(work, 'cache');
  try {
    const images = join(work, 'cache', 'images');
    // A build that was killed: its process is gone, its folders are not. And one that is still running.
    const dead = (await execa('sh', ['-c', 'echo $$'])).stdout.trim();
    const alive = String(process.ppid);
    await mkdir(join(images, `old-0000.tmp-${dead}`), { recursive: true });
    await mkdir(join(images, `old-0000.work-${dead}`), { recursive: true });
    await mkdir(join(images, `other-1111.work-${alive}`), { recursive: true });

    const failure = await cachedImage(
      'failing',
      'aaaa',
      () => undefined,
      async (tmp, workDir) => {
        await writeFile(join(tmp, 'half-built'), 'x');
        await writeFile(join(workDir, 'unpacked'), 'x');
        throw new Error('dpkg-deb: archive truncated');
      },
    ).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(LabError);
    expect((failure as Error).message).toContain('[lab:lab-setup] building image failing failed: dpkg-deb: archive truncated');
    expect((await readdir(images)).sort()).toEqual([`other-1111.work-${alive}`]);

    const built = await cachedImage(
      'fine',
      'bbbb',
      () => undefined,
      async (tmp, workDir) => {
        await writeFile(join(workDir, 'scratch'), 'x');
        await writeFile(join(tmp, 'hostkey'), 'private\n', { mode: 0o600 });
        return {
          name: 'fine',
          recipeVersion: 1,
          packages: [],
          kernelVersion: 'k',
          files: { hostKey: 'hostkey' },
          hostKey: { publicKey: 'ssh-ed25519 AAAA', fingerprint: 'SHA256:x' },
        };
      },
    );
    expect((await readdir(images)).sort()).toEqual(['fine-bbbb', `other-1111.work-${alive}`]);
    expect((await stat(images)).mode & 0o777).toBe(0o700);
    expect((await stat(built.dir)).mode & 0o777).toBe(0o700);
  } finally {
    if (saved === undefined) delete process.env.LABRIG_CACHE;
    else process.env.LABRIG_CACHE = saved;
  }
});

test('an initramfs is written 0600: it may carry a guest host private key', async () => {
  const root = join(work, 'rootfs');
  await mkdir(join(root, 'etc', 'dropbear'), { recursive: true });
  await writeFile(join(root, 'etc', 'dropbear', 'dropbear_ed25519_host_key'), 'private key bytes', { mode: 0o600 });
  const out = join(work, 'initrd.img');
  const bytes = await writeInitramfs(root, CONSOLE_AND_NULL, out);
  expect(bytes).toBeGreaterThan(0);
  expect((await stat(out)).mode & 0o777).toBe(0o600);
});
