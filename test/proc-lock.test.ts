/** acquireLock: the PID lock file that serialises lab bring-up and the tests' QEMU slot. */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { acquireLock } from '../drivers/proc.js';

let dir: string;
test.beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'labrig-lock-'));
});
test.afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a lock held by a running process is waited on, then refused naming its PID', async () => {
  const holder = spawn('sleep', ['30']);
  try {
    const path = join(dir, 'slot.lock');
    await writeFile(path, `${holder.pid}\n`);
    await expect(acquireLock(path, { timeoutMs: 600, what: 'the slot' })).rejects.toThrow(
      new RegExp(`\\[lab:lab-timeout\\] the slot: lock .* still held by PID ${holder.pid}`),
    );
  } finally {
    holder.kill();
  }
});

test('a lock whose owner is gone is taken over, and released by its new owner', async () => {
  const path = join(dir, 'slot.lock');
  await writeFile(path, '999999999\n');
  const release = await acquireLock(path, { timeoutMs: 2_000, what: 'the slot' });
  expect((await readFile(path, 'utf8')).trim()).toBe(String(process.pid));
  await release();
  await expect(readFile(path)).rejects.toThrow(/ENOENT/);
});

test('an empty lock file is being written: waited on while fresh, taken over once older than 5 s (flock(1) leaves one)', async () => {
  const path = join(dir, 'slot.lock');
  await writeFile(path, '');
  await expect(acquireLock(path, { timeoutMs: 600, what: 'the slot' })).rejects.toThrow(/still held by PID \?/);
  const old = new Date(Date.now() - 10_000);
  await utimes(path, old, old);
  const release = await acquireLock(path, { timeoutMs: 2_000, what: 'the slot' });
  expect((await readFile(path, 'utf8')).trim()).toBe(String(process.pid));
  await release();
});
