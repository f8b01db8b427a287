/**
 * What a crashed run left is swept by the next run's health check, and only that. On emu-arm64
 * (this machine over a real sshd, with the lab's own libvirtd), real leftovers of an earlier run
 * are planted — a libvirt domain named with another run's tag, a QEMU started with such a
 * `-name`, a tmpfs mounted under the harness's state folder — beside look-alikes that are not
 * provably ours: a domain without the run tag, this run's own domain, a QEMU without the prefix,
 * another program carrying the name on its command line, a mount outside our folders.
 * `doctor` runs; the leftovers are gone and named, the look-alikes are untouched.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { runLocal } from '../../drivers/local.js';
import { parseLab } from '../../targets/config.js';
import { doctor } from '../../targets/doctor.js';
import { emulatedLab, labDown, labUp } from '../../targets/emulated/lab.js';
import { runTag } from '../../targets/harness-name.js';
import type { Lab } from '../../targets/schema.js';
import { takeQemuSlot } from '../helpers/qemu-slot.js';
import { alive } from '../helpers/reboot.js';

test.describe.configure({ mode: 'serial' });

let runDir: string | undefined;
let releaseSlot: (() => Promise<void>) | undefined;
let lab: Lab;
const started: ChildProcess[] = [];
const mounted: string[] = [];
const domains: string[] = [];
const current = `sweep-test-${process.pid}`;
const earlier = runTag('2026-12-01T02-00-00-000Z-0badc0de');

const virsh = (...args: string[]) => runLocal(['virsh', '-q', '-c', 'qemu:///system', ...args], { check: false });
const domainXml = (name: string) =>
  `<domain type='qemu'><name>${name}</name><memory unit='MiB'>32</memory><os><type arch='x86_64' machine='pc'>hvm</type></os></domain>`;

async function defineDomain(name: string): Promise<void> {
  const file = join(runDir!, `${name}.xml`);
  await writeFile(file, domainXml(name));
  const r = await virsh('define', file);
  expect(r.code, r.stderr).toBe(0);
  domains.push(name);
}

function startProcess(argv: string[]): ChildProcess {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
  child.on('error', () => undefined);
  started.push(child);
  return child;
}

async function mountTmpfs(at: string): Promise<void> {
  await mkdir(at, { recursive: true });
  await runLocal(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'labrig-sweep-test', at]);
  mounted.push(at);
}

const isMounted = async (at: string) => (await readFile('/proc/self/mounts', 'utf8')).split('\n').some((l) => l.split(' ')[1] === at);

test.beforeAll(async () => {
  test.setTimeout(20 * 60_000);
  releaseSlot = await takeQemuSlot('faults/sweep.test');
  runDir = await mkdtemp(join(tmpdir(), 'labrig-lab-test-'));
  await labUp({ runDir, hosts: ['emu-arm64'], ports: { 'emu-arm64': 30000 + Math.floor(Math.random() * 10000) } });
  const parsed = parseLab(emulatedLab({ runDir }));
  // Private state folder and lease: nothing another test uses on this machine.
  lab = {
    ...parsed,
    hostStateDir: join(runDir, 'state'),
    lease: { ...parsed.lease, path: join(runDir, 'lock', 'labrig.lease'), waitMs: 0 },
  };
});

test.afterAll(async () => {
  for (const at of mounted.reverse()) if (await isMounted(at)) await runLocal(['umount', at], { check: false });
  for (const name of domains) if ((await virsh('domstate', name)).code === 0) await virsh('undefine', name);
  for (const child of started) if (child.pid && (await alive(child.pid))) child.kill('SIGKILL');
  if (runDir) {
    await labDown({ runDir }).catch(() => undefined);
    await rm(runDir, { recursive: true, force: true });
  }
  await releaseSlot?.();
});

test('the health check removes and names what an earlier run left, and leaves every look-alike alone', async () => {
  test.setTimeout(5 * 60_000);
  const leftDomain = `labrig-pcie-15-${earlier}-9f0e1d`;
  const lookAlikes = ['labrig-pcie-15-9f0e1d', `labrig-pcie-16-${runTag(current)}-111111`, `xlabrig-pcie-15-${earlier}-9f0e1d`];
  for (const name of [leftDomain, ...lookAlikes]) await defineDomain(name);
  const leftQemuName = `labrig-guest-devdax-${earlier}-00ff00`;
  const qemuArgs = ['-machine', 'none', '-S', '-nodefaults', '-display', 'none', '-monitor', 'none', '-serial', 'none'];
  const leftQemu = startProcess(['qemu-system-x86_64', '-name', leftQemuName, ...qemuArgs]);
  const unprefixedQemu = startProcess(['qemu-system-x86_64', '-name', `guest-devdax-${earlier}-00ff00`, ...qemuArgs]);
  const notQemu = startProcess(['sh', '-c', 'sleep 600; :', 'sh', '-name', leftQemuName]);
  const leftMount = join(lab.hostStateDir, 'leftover-mnt');
  const otherMount = join(runDir!, 'not-ours-mnt');
  await mountTmpfs(leftMount);
  await mountTmpfs(otherMount);
  await expect
    .poll(async () => (await readFile(`/proc/${leftQemu.pid}/cmdline`, 'utf8').catch(() => '')).includes(leftQemuName))
    .toBe(true);

  const saved = process.env.LABRIG_RUN_ID;
  process.env.LABRIG_RUN_ID = current;
  const checks = await doctor(lab, ['emu-arm64'], join(runDir!, 'logs'), { sweep: true }).finally(() => {
    if (saved === undefined) delete process.env.LABRIG_RUN_ID;
    else process.env.LABRIG_RUN_ID = saved;
  });
  const sweep = checks.find((c) => c.check === 'sweep');
  expect(checks.find((c) => c.check === 'lease')).toMatchObject({ ok: true });
  expect(sweep, JSON.stringify(checks, null, 2)).toMatchObject({ host: 'emu-arm64', ok: true });
  // Each leftover is named, with the run it came from.
  expect(sweep!.removed).toEqual([
    `libvirt domain ${leftDomain} (run ${earlier})`,
    `qemu process ${leftQemu.pid} ${leftQemuName} (run ${earlier})`,
    `mount ${leftMount}`,
  ]);
  expect(sweep!.detail).toBe(`removed what earlier runs left: ${sweep!.removed!.join(', ')}`);

  // Gone: the domain, the QEMU, the mount.
  expect((await virsh('domstate', leftDomain)).code).not.toBe(0);
  expect(await alive(leftQemu.pid!)).toBe(false);
  expect(await isMounted(leftMount)).toBe(false);
  // Untouched: everything not provably ours.
  for (const name of lookAlikes) expect((await virsh('domstate', name)).stdout.trim(), name).toBe('shut off');
  expect(await alive(unprefixedQemu.pid!)).toBe(true);
  expect(await alive(notQemu.pid!)).toBe(true);
  expect(await isMounted(otherMount)).toBe(true);
});
