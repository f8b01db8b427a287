/**
 * The core drivers against a real emulated host (emu-mini: QEMU/TCG, Debian kernel, busybox,
 * dropbear): the console shell logs in on the real serial line and keeps 100 commands straight
 * while the kernel writes to the same console; the SSH shell, the lease and doctor work on it;
 * a power cycle is proven by a new boot_id.
 */

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { silentRecorder } from '../drivers/recorder.js';
import { parseLab } from '../targets/config.js';
import { doctor } from '../targets/doctor.js';
import type { VmHostRecord } from '../targets/emulated/hosts.js';
import { emulatedLab, labDown, labUp } from '../targets/emulated/lab.js';
import { readState } from '../targets/emulated/state.js';
import { Host } from '../targets/host.js';
import { acquireLease } from '../targets/lease.js';
import type { Lab } from '../targets/schema.js';
import { takeQemuSlot } from './helpers/qemu-slot.js';

test.describe.configure({ mode: 'serial' });

let runDir: string;
let release: (() => Promise<void>) | undefined;
let lab: Lab;
let host: Host;

test.beforeAll(async () => {
  test.setTimeout(20 * 60_000);
  release = await takeQemuSlot('emu-mini-host.test');
  runDir = await mkdtemp(join(tmpdir(), 'labrig-lab-test-'));
  const port = 30000 + Math.floor(Math.random() * 10000);
  await labUp({
    runDir,
    hosts: ['emu-arm64', 'emu-mini'],
    ports: { 'emu-arm64': port, 'emu-mini': port + 1 },
    access: { 'emu-mini': 'pty' },
  });
  lab = parseLab(emulatedLab({ runDir }));
  host = new Host(lab.hosts.find((h) => h.name === 'emu-mini')!, { logDir: join(runDir, 'logs') });
});

test.afterAll(async () => {
  await host?.close();
  if (runDir) {
    await labDown({ runDir }).catch(() => undefined);
    await rm(runDir, { recursive: true, force: true });
  }
  await release?.();
});

test('console shell: login on the serial line, 100 commands while the kernel writes to it, no byte lost', async () => {
  test.setTimeout(5 * 60_000);
  const console = await host.console();
  const shell = await host.consoleShell(120_000);
  // The kernel writes to the console at the same time: EMERG lines pass `dmesg -n 1`.
  await host.run('(i=0; while [ $i -lt 400 ]; do echo "<0>labrig-noise $i" > /dev/kmsg; i=$((i+1)); sleep 0.05; done) >/dev/null 2>&1 &');
  for (let i = 0; i < 100; i++) {
    const r = await shell.run(`echo value-${i}; (exit ${i % 5})`, { timeoutMs: 30_000 });
    expect(r.code, `command ${i}`).toBe(i % 5);
    expect(r.stdout, `command ${i}`).toContain(`value-${i}`);
  }
  expect(console.text(0)).toMatch(/labrig-noise \d+/);
  // Everything the console read is, byte for byte, the tail of QEMU's own record of the line.
  const record = readState(runDir)!.hosts['emu-mini'] as VmHostRecord;
  await new Promise((r) => setTimeout(r, 300));
  const ours = await readFile(console.logPath);
  const qemus = await readFile(record.consoleLog);
  expect(ours.length).toBeGreaterThan(1000);
  expect(qemus.includes(ours), "the capture file is a contiguous part of QEMU's chardev log").toBe(true);
});

test('SSH shell and exec on dropbear: output, exit codes, a timeout kills only its command', async () => {
  expect(await host.run('echo out; echo err >&2; exit 3')).toMatchObject({ stdout: 'out\n', stderr: 'err\n', code: 3 });
  const err = await host.run('sleep 60', { timeoutMs: 1000 }).catch((e: Error) => e);
  expect(String(err)).toContain('[lab:lab-timeout]');
  const underTest = await host.run('sleep 60', { timeoutMs: 1000, hangIsProduct: true }).catch((e: Error) => e);
  expect(String(underTest)).toContain('[product:timeout]');
  expect((await host.run('echo alive')).stdout).toBe('alive\n');
  expect((await host.exec('uname -m')).stdout).toBe('x86_64\n');
  const facts = await host.facts();
  expect(facts).toMatchObject({ arch: 'x86_64', kvmDevice: false });
  expect(facts.bootId).toMatch(/^[0-9a-f-]{36}$/);
  expect(facts.cpus).toBeGreaterThan(0);
  expect(facts.memTotalKiB).toBeGreaterThan(0);
  expect(facts.kernel).toMatch(/^6\.1\.0-\d+-amd64$/);
});

test('the lease works on a busybox host', async () => {
  const o = { path: '/var/lock/labrig.lease', runId: 'test-run', ttlMs: 60_000, heartbeatMs: 1000, waitMs: 0, recorder: silentRecorder };
  const lease = await acquireLease(host.ssh, o);
  const second = await acquireLease(new Host(host.config, { logDir: join(runDir, 'logs') }).ssh, { ...o, runId: 'other' }).catch(
    (e: Error) => e,
  );
  expect(String(second)).toContain('[lab:lease-held]');
  expect(String(second)).toContain('test-run');
  await lease.release();
});

test('doctor passes on every host of the lab', async () => {
  test.setTimeout(3 * 60_000);
  await host.close(); // doctor opens the console itself
  const checks = await doctor(lab);
  expect(checks.filter((c) => !c.ok)).toEqual([]);
  expect(checks.map((c) => `${c.host}:${c.check}`)).toEqual(
    expect.arrayContaining([
      'emu-arm64:ssh',
      'emu-arm64:facts',
      'emu-mini:ssh',
      'emu-mini:console',
      'emu-mini:power',
      'emu-mini:lease',
      'emu-mini:facts',
    ]),
  );
});

test('a power cycle is proven by a new boot_id, seen by waitForReturn', async () => {
  test.setTimeout(5 * 60_000);
  const before = await host.bootId();
  await host.console();
  const back = await host.reboot('power', 180_000);
  expect(back.bootId).not.toBe(before);
  expect((await host.run('echo back')).stdout).toBe('back\n');
});
