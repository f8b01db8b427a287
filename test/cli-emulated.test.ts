/**
 * The everyday commands against the emulated lab's smallest real host (emu-mini: QEMU/TCG,
 * busybox, dropbear), driven as a user would: power through QMP proven by a new boot_id,
 * ssh, a reservation and a state kept by busybox's tools, doctor honouring them, and a
 * console that will not take a leased host.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import { silentRecorder } from '../drivers/recorder.js';
import { parseLab } from '../targets/config.js';
import { emulatedLab, labDown, labUp } from '../targets/emulated/lab.js';
import { Host } from '../targets/host.js';
import { acquireLease } from '../targets/lease.js';
import type { Lab } from '../targets/schema.js';
import { takeQemuSlot } from './helpers/qemu-slot.js';

test.describe.configure({ mode: 'serial', timeout: 600_000 });

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
let runDir: string;
let release: (() => Promise<void>) | undefined;
let lab: Lab;
let host: Host;

async function labrig(args: string[], user = 'alice') {
  const r = await execa('node', ['bin/labrig.mjs', ...args], {
    cwd: repoRoot,
    reject: false,
    input: '',
    env: { LABRIG_CONFIG: join(repoRoot, 'lab.config.ts'), LABRIG_RUN_DIR: runDir, LABRIG_USER: user },
  });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

test.beforeAll(async () => {
  test.setTimeout(20 * 60_000);
  release = await takeQemuSlot('cli-emulated.test');
  runDir = await mkdtemp(join(tmpdir(), 'labrig-cli-lab-'));
  const port = 30000 + Math.floor(Math.random() * 10000);
  await labUp({ runDir, hosts: ['emu-mini'], ports: { 'emu-mini': port }, access: { 'emu-mini': 'pty' } });
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

test('power status and cycle through QMP: the host comes back with a new boot_id, read with labrig ssh', async () => {
  expect(await labrig(['power', 'status', 'emu-mini'])).toMatchObject({ code: 0, stdout: 'emu-mini: on' });
  const before = await labrig(['ssh', 'emu-mini', 'cat', '/proc/sys/kernel/random/boot_id']);
  expect(before.code).toBe(0);
  expect(before.stdout).toMatch(/^[0-9a-f-]{36}$/);
  const cycle = await labrig(['power', 'cycle', 'emu-mini']);
  expect(cycle.stdout).toMatch(/^emu-mini: power cycle done \(qmp, /);
  await host.waitForReturn(before.stdout, 240_000);
  const after = await labrig(['ssh', 'emu-mini', 'cat', '/proc/sys/kernel/random/boot_id']);
  expect(after.code).toBe(0);
  expect(after.stdout).toMatch(/^[0-9a-f-]{36}$/);
  expect(after.stdout).not.toBe(before.stdout);
});

test('a reservation and a state on busybox: doctor fails the host for everyone but the holder, until released', async () => {
  const lock = await labrig(['lock', 'emu-mini', '--reason', 'bisecting on emu-mini']);
  expect(lock.code).toBe(0);
  type Check = { host: string; check: string; ok: boolean; detail: string };
  const [asBob, refused, state] = await Promise.all([
    labrig(['doctor', '--json', 'emu-mini'], 'bob'),
    labrig(['unlock', 'emu-mini'], 'bob'),
    labrig(['state', 'emu-mini', 'maintenance', '--reason', 'new NIC'], 'carol'),
  ]);
  const lockCheck = (JSON.parse(asBob.stdout) as Check[]).find((c) => c.check === 'lock');
  expect(lockCheck).toMatchObject({
    ok: false,
    detail: expect.stringMatching(new RegExp(`^reserved by alice@${hostname()} since \\S+Z: bisecting on emu-mini$`)),
  });
  expect(asBob.code).toBe(3);
  expect(refused.code).toBe(3);
  expect(refused.stderr).toContain(`emu-mini is reserved by alice@${hostname()}`);
  expect(state.code).toBe(0);

  const who = await labrig(['who', '--json']);
  expect(JSON.parse(who.stdout)).toEqual([
    expect.objectContaining({
      host: 'emu-mini',
      reservation: expect.objectContaining({ reason: 'bisecting on emu-mini' }),
      state: expect.objectContaining({ state: 'maintenance', reason: 'new NIC' }),
    }),
  ]);
  const asAlice = JSON.parse((await labrig(['doctor', '--json', 'emu-mini'])).stdout) as Check[];
  expect(
    asAlice.find((c) => c.check === 'lock'),
    JSON.stringify(asAlice),
  ).toMatchObject({ ok: true });
  expect(asAlice.find((c) => c.check === 'state')).toMatchObject({
    ok: false,
    detail: expect.stringMatching(/^maintenance since .*: new NIC$/),
  });

  const [unlock, good] = await Promise.all([labrig(['unlock', 'emu-mini']), labrig(['state', 'emu-mini', 'good'], 'carol')]);
  expect(unlock.code).toBe(0);
  expect(good.code).toBe(0);
  const log = await host.read(`${lab.hostStateDir}/log`);
  expect(log).toMatch(/ lock \{"holder":"alice@/);
  expect(log).toMatch(/ state \{"state":"maintenance"/);
  expect(log).toMatch(/ unlock \{"holder":"alice@/);
});

test('console refuses a host a run has leased, naming the run', async () => {
  const lease = await acquireLease(host.ssh, { ...lab.lease, runId: 'nightly-7', waitMs: 0, recorder: silentRecorder });
  try {
    const r = await labrig(['console', 'emu-mini']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^labrig console: \[lab:lease-held\] host emu-mini: .*held by \S+ pid \d+ \(run nightly-7\)/);
  } finally {
    await lease.release();
  }
});
