/**
 * emu-mini reached as the default lab reaches it: behind ipmi_sim on 127.0.0.2. `lab up`
 * powers it on through `ipmitool chassis power on`; its console is IPMI Serial-over-LAN;
 * a power cycle through ipmitool brings SSH back with a new boot_id; `lab down` stops QEMU
 * and the BMC by PID.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { isOurProcess } from '../drivers/proc.js';
import { parseLab } from '../targets/config.js';
import { vmPid } from '../targets/emulated/access.js';
import type { VmHostRecord } from '../targets/emulated/hosts.js';
import { emulatedLab, labDown, labStatus, labUp } from '../targets/emulated/lab.js';
import { readState } from '../targets/emulated/state.js';
import { Host } from '../targets/host.js';
import type { HostConfig } from '../targets/schema.js';
import { takeQemuSlot } from './helpers/qemu-slot.js';

test.describe.configure({ mode: 'serial' });

let runDir: string;
let release: (() => Promise<void>) | undefined;
let config: HostConfig;
let host: Host;
const record = () => readState(runDir)!.hosts['emu-mini'] as VmHostRecord;

test.beforeAll(async () => {
  test.setTimeout(20 * 60_000);
  release = await takeQemuSlot('emu-mini-bmc.test');
  runDir = await mkdtemp(join(tmpdir(), 'labrig-lab-test-'));
  await labUp({ runDir, hosts: ['emu-mini'], ports: { 'emu-mini': 31000 + Math.floor(Math.random() * 9000) } });
  config = parseLab(emulatedLab({ runDir })).hosts.find((h) => h.name === 'emu-mini')!;
  host = new Host(config, { logDir: join(runDir, 'logs') });
});

test.afterAll(async () => {
  await host?.close();
  if (runDir) {
    await labDown({ runDir }).catch(() => undefined);
    await rm(runDir, { recursive: true, force: true });
  }
  await release?.();
});

test('the lab config reaches emu-mini through its BMC on 127.0.0.2: ipmi power, SOL console, SSH', async () => {
  expect(config.ssh.address).toBe('127.0.0.2');
  expect(config.power).toMatchObject({ kind: 'ipmi', address: '127.0.0.2', passwordEnv: 'LABRIG_EMU_BMC_PASSWORD' });
  expect(config.console).toMatchObject({ kind: 'ipmi-sol', address: '127.0.0.2' });
  expect(JSON.stringify(config)).not.toContain(process.env.LABRIG_EMU_BMC_PASSWORD!);
  expect(await host.power!.status()).toBe('on');
  expect((await host.run('uname -m')).stdout).toBe('x86_64\n');
  expect((await labStatus({ runDir })).find((s) => s.name === 'emu-mini')).toMatchObject({
    state: 'up',
    detail: expect.stringContaining('BMC (ipmi_sim'),
  });
});

test('SOL console shell: 100 commands, exit codes right', async () => {
  test.setTimeout(10 * 60_000);
  const shell = await host.consoleShell(180_000);
  for (let i = 0; i < 100; i++) {
    const r = await shell.run(`echo value-${i}; (exit ${i % 5})`, { timeoutMs: 60_000 });
    expect(r.code, `command ${i}`).toBe(i % 5);
    expect(r.stdout, `command ${i}`).toContain(`value-${i}`);
  }
});

test('power off and on through ipmitool: QEMU stops, starts again, SSH comes back with a new boot_id', async () => {
  test.setTimeout(10 * 60_000);
  const before = record();
  const oldQemu = vmPid(before);
  const bootId = await host.bootId();
  await host.close();
  await host.power!.off();
  expect(await host.power!.status()).toBe('off');
  await expect.poll(() => isOurProcess(oldQemu, before.qmpSocket), { timeout: 30_000 }).toBe(false);
  await host.power!.on();
  const back = await host.waitForReturn(bootId, 300_000);
  expect(back.bootId).not.toBe(bootId);
  const newQemu = vmPid(record());
  expect(newQemu).not.toBe(oldQemu);
  expect(isOurProcess(newQemu, before.qmpSocket)).toBe(true);
});

test('lab down stops QEMU and ipmi_sim by PID', async () => {
  const r = record();
  const qemu = vmPid(r);
  await host.close();
  await labDown({ runDir });
  expect(isOurProcess(qemu, r.qmpSocket)).toBe(false);
  expect(isOurProcess(r.bmc!.pid, r.bmc!.configFile)).toBe(false);
});
