/**
 * A host that does not come back after a reboot: its console decides whose failure it is.
 * Provoked for real on emu-mini (QEMU/TCG, Debian kernel, serial console on a pty):
 *  - the kernel under test starts booting and then hangs: the guest reboots, its new kernel
 *    prints its banner on the console, and the VM is frozen right there (QMP `stop`) — a
 *    kernel that printed `Linux version …` and then nothing → [product:did-not-boot];
 *  - nothing at all on the console since the transition: the VM is frozen before the host
 *    is sent away → [lab:did-not-return].
 * emu-mini has no kexec (busybox, one kernel), so a reboot is the transition here; kexecInto
 * ends in the same waitForReturn. After each case the VM runs on and the host is usable again.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { LabError, ProductError } from '../../drivers/errors.js';
import { Qmp } from '../../drivers/qmp.js';
import { parseLab } from '../../targets/config.js';
import { emulatedLab, labDown, labUp } from '../../targets/emulated/lab.js';
import { Host } from '../../targets/host.js';
import type { HostConfig } from '../../targets/schema.js';
import { takeQemuSlot } from '../helpers/qemu-slot.js';

test.describe.configure({ mode: 'serial' });

let runDir: string | undefined;
let releaseSlot: (() => Promise<void>) | undefined;
let config: HostConfig;
let host: Host;

async function qmp(command: 'stop' | 'cont'): Promise<void> {
  if (config.power?.kind !== 'qmp') throw new Error('emu-mini has no QMP power');
  const q = await Qmp.connect(config.power.socket, { timeoutMs: 10_000 });
  try {
    await q.execute(command);
  } finally {
    await q.close();
  }
}

/** The VM runs on; the host answers again (a new boot_id, or the old one after a pause). */
async function usableAgain(): Promise<void> {
  await qmp('cont');
  host.broken = undefined;
  await expect
    .poll(async () => (await host.exec('echo back', { timeoutMs: 20_000 }).catch(() => undefined))?.stdout, {
      timeout: 180_000,
      intervals: [1000],
    })
    .toBe('back\n');
}

test.beforeAll(async () => {
  test.setTimeout(20 * 60_000);
  releaseSlot = await takeQemuSlot('faults/return.test');
  runDir = await mkdtemp(join(tmpdir(), 'labrig-lab-test-'));
  // The QMP power (stop/cont) is what freezes the VM: emu-mini on its pty and QMP, not behind its BMC.
  await labUp({
    runDir,
    hosts: ['emu-mini'],
    ports: { 'emu-mini': 30000 + Math.floor(Math.random() * 10000) },
    access: { 'emu-mini': 'pty' },
  });
  config = parseLab(emulatedLab({ runDir })).hosts.find((h) => h.name === 'emu-mini')!;
  host = new Host(config, { logDir: join(runDir, 'logs') });
});

test.afterAll(async () => {
  await host?.close();
  if (runDir) {
    await labDown({ runDir }).catch(() => undefined);
    await rm(runDir, { recursive: true, force: true });
  }
  await releaseSlot?.();
});

test('the new kernel prints its banner and hangs: [product:did-not-boot], the banner named as the evidence', async () => {
  test.setTimeout(8 * 60_000);
  const console = await host.console();
  const from = console.received;
  const returning = host.reboot('os', 45_000).catch((e: unknown) => e);
  // The reboot's new kernel announces itself; freeze it right there, as a kernel that hangs would.
  await console.expect(/Linux version \S+/, { from, timeoutMs: 120_000, what: 'the new kernel banner after the reboot' });
  await qmp('stop');
  const failed = await returning;
  expect(failed).toBeInstanceOf(ProductError);
  expect((failed as ProductError).kind).toBe('did-not-boot');
  const text = String(failed);
  expect(text).toMatch(
    /^ProductError: \[product:did-not-boot\] host emu-mini: no SSH with a new boot_id within 45000 ms; console shows 'Linux version 6\.1\.0-\d+-amd64 …'/,
  );
  expect(text).toMatch(/then nothing for \d+ s: the kernel started booting and never answered SSH/);
  expect(text).toContain(`full log: ${console.logPath}`);
  // The tail attached is what followed the transition: the new kernel's own boot output, its printk clock at 0 again.
  expect(text).toMatch(/last lines:\n(.*\n)* {4}\| \[ +0\.\d{6}\] /);
  expect(host.broken).toMatch(/^did not boot within 45000 ms/);
  await usableAgain();
});

test('nothing on the console since the transition: [lab:did-not-return], the silence named as the evidence', async () => {
  test.setTimeout(8 * 60_000);
  const before = await host.bootId();
  await host.console();
  await host.announceTransition(30_000);
  // Frozen before it could go anywhere: not one byte follows on the console.
  await qmp('stop');
  const failed = await host.waitForReturn(before, 30_000).catch((e: unknown) => e);
  expect(failed).toBeInstanceOf(LabError);
  expect((failed as LabError).kind).toBe('did-not-return');
  expect(String(failed)).toMatch(
    /^LabError: \[lab:did-not-return\] host emu-mini: no SSH with a new boot_id within 30000 ms; console silent since the transition \(nothing for \d+ s\)/,
  );
  await usableAgain();
  expect(await host.bootId()).toBe(before);
});
