/**
 * The QMP client against a real QEMU 7.2 (`-S`, no guest: it sits paused in prelaunch),
 * plus the framing on its own in 1-byte chunks.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { Qmp, QmpError, QmpFramer } from '../drivers/qmp.js';
import { takeQemuSlot } from './helpers/qemu-slot.js';

test.describe.configure({ mode: 'serial' });

test('framing: messages split anywhere, CRLF or LF, several per chunk', () => {
  const wire =
    '{"QMP": {"version": {}, "capabilities": []}}\r\n{"return": {}, "id": "a"}\r\n{"event": "RESET", "data": {"guest": false}}\n';
  const framer = new QmpFramer();
  const got = [...wire].flatMap((ch) => framer.push(ch));
  expect(got.map((m) => Object.keys(m)[0])).toEqual(['QMP', 'return', 'event']);
  expect(new QmpFramer().push(wire)).toEqual(got);
});

let dir: string;
let qemu: ChildProcess;
let releaseSlot: () => Promise<void>;
const socket = () => join(dir, 'qmp.sock');

test.beforeAll(async () => {
  // Our QEMU tests share a 2-core machine: one QEMU at a time, across test files.
  releaseSlot = await takeQemuSlot('qmp.test');
  dir = await mkdtemp(join(tmpdir(), 'labrig-qmp-'));
  qemu = spawn(
    'qemu-system-x86_64',
    ['-S', '-display', 'none', '-nodefaults', '-accel', 'tcg', '-qmp', `unix:${socket()},server=on,wait=off`],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 15_000;
  for (;;) {
    const q = await Qmp.connect(socket(), { timeoutMs: 2000 }).catch(() => undefined);
    if (q) {
      await q.close();
      break;
    }
    if (Date.now() > deadline || qemu.exitCode !== null) throw new Error(`QEMU gave no QMP socket at ${socket()} within 15 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
});

test.afterAll(async () => {
  if (qemu && qemu.exitCode === null) {
    const exited = new Promise((r) => qemu.once('exit', r));
    qemu.kill('SIGKILL');
    await exited;
  }
  if (dir) await rm(dir, { recursive: true, force: true });
  await releaseSlot?.();
});

test('greeting, capabilities, and a paused machine in prelaunch', async () => {
  const qmp = await Qmp.connect(socket());
  try {
    expect(qmp.greeting.version.qemu.major).toBeGreaterThanOrEqual(7);
    const status = await qmp.execute<{ status: string; running: boolean }>('query-status');
    expect(status).toMatchObject({ status: 'prelaunch', running: false });
  } finally {
    await qmp.close();
  }
});

test('answers are matched by id when many commands are in flight', async () => {
  const qmp = await Qmp.connect(socket());
  try {
    const calls = Array.from({ length: 30 }, (_, i) =>
      i % 2
        ? qmp.execute<{ status: string }>('query-status').then((r) => r.status)
        : qmp.execute<{ qemu: { major: number } }>('query-version').then((r) => `v${r.qemu.major}`),
    );
    const results = await Promise.all(calls);
    results.forEach((r, i) => expect(r).toBe(i % 2 ? 'prelaunch' : `v${qmp.greeting.version.qemu.major}`));
  } finally {
    await qmp.close();
  }
});

test('QMP errors carry class and desc', async () => {
  const qmp = await Qmp.connect(socket());
  try {
    const e1 = await qmp.execute('no-such-command').catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(QmpError);
    expect((e1 as QmpError).qmpClass).toBe('CommandNotFound');
    const e2 = await qmp.execute('device_del', { id: 'nothing-here' }).catch((e: unknown) => e);
    expect((e2 as QmpError).qmpClass).toBe('DeviceNotFound');
    expect((e2 as QmpError).desc).toContain('nothing-here');
    // the connection is still usable after errors
    expect(await qmp.execute<{ status: string }>('query-status')).toMatchObject({ status: 'prelaunch' });
  } finally {
    await qmp.close();
  }
});

test('HMP: text answers, and errors hidden in a success are thrown', async () => {
  const qmp = await Qmp.connect(socket());
  try {
    expect(await qmp.hmp('info status')).toMatch(/VM status: paused \(prelaunch\)/);
    await expect(qmp.hmp('frobnicate')).rejects.toThrow(/unknown command/);
    // no writable disk can take a snapshot: QEMU says "Error: …" inside a QMP success
    await expect(qmp.hmp('savevm labrig-test')).rejects.toThrow(/HmpError.*Error:/s);
  } finally {
    await qmp.close();
  }
});

test('events: kept in order, awaitable even when they arrive before the wait', async () => {
  const qmp = await Qmp.connect(socket());
  try {
    await qmp.execute('cont');
    await qmp.execute('stop');
    await qmp.execute('system_reset');
    // all three already arrived (or are arriving): each wait takes the next unconsumed one
    expect((await qmp.waitEvent('RESUME', { timeoutMs: 5000 })).event).toBe('RESUME');
    expect((await qmp.waitEvent('STOP', { timeoutMs: 5000 })).event).toBe('STOP');
    const reset = await qmp.waitEvent('RESET', { timeoutMs: 5000 });
    expect(reset.data).toMatchObject({ guest: false, reason: 'host-qmp-system-reset' });
    expect(reset.timestamp.seconds).toBeGreaterThan(0);
    await expect(qmp.waitEvent('RESET', { timeoutMs: 300 })).rejects.toThrow(
      /\[lab:lab-timeout\].*no RESET event within 300 ms.*events seen: RESUME, STOP, RESET/s,
    );
  } finally {
    await qmp.close();
  }
});

test('works over any connected Duplex (as a socket forwarded over SSH would be)', async () => {
  const stream = createConnection({ path: socket() });
  await new Promise((resolve, reject) => stream.once('connect', resolve).once('error', reject));
  const qmp = await Qmp.connect(stream, { name: 'forwarded' });
  try {
    expect(await qmp.execute<{ status: string }>('query-status')).toHaveProperty('status');
  } finally {
    await qmp.close();
  }
  expect(stream.destroyed).toBe(true);
});

test('quit: QEMU closes the connection; pending and later commands fail clearly', async () => {
  const qmp = await Qmp.connect(socket());
  const exited = new Promise<number | null>((r) => qemu.once('exit', (code) => r(code)));
  await qmp.execute('quit');
  await qmp.closed();
  expect(qmp.isClosed).toBe(true);
  await expect(qmp.execute('query-status')).rejects.toThrow(/\[lab:unreachable\] QMP .*(connection closed|ECONNRESET)/);
  expect(await exited).toBe(0);
});
