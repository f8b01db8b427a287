/**
 * The console log's timestamped sidecar: every line of the raw log, in order, each with a
 * wall-clock stamp and the seconds since the console opened; the raw log stays byte-exact.
 */

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { expect, test } from '@playwright/test';
import { Console } from '../drivers/console.js';
import { timestampedLogPath } from '../drivers/console-timestamps.js';

test('each console line gets a stamp; a line split across chunks gets one; the raw log is untouched', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'labrig-stamps-'));
  try {
    const logPath = join(dir, 'host-console.log');
    const stream = new PassThrough();
    const console = Console.fromStreams(stream, undefined, { name: 'host', logPath });
    stream.write('U-Boot 2023\r\nStarting ker');
    await new Promise((r) => setTimeout(r, 300));
    stream.write('nel ...\n\x1b[0mlogin: ');
    await console.expect(/login: /, { timeoutMs: 5000, what: 'the login prompt' });
    await console.close();

    expect(await readFile(logPath, 'utf8')).toBe('U-Boot 2023\r\nStarting kernel ...\n\x1b[0mlogin: ');
    const stamped = (await readFile(timestampedLogPath(logPath), 'utf8')).split('\n').filter(Boolean);
    const stamp = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) \+(\d+\.\d{3}) (.*)$/s;
    expect(stamped.map((l) => stamp.exec(l)?.[3])).toEqual(['U-Boot 2023\r', 'Starting kernel ...', '\x1b[0mlogin: ']);
    const offsets = stamped.map((l) => Number(stamp.exec(l)![2]));
    // The second line began before the pause, the third after it.
    expect(offsets[2]! - offsets[1]!).toBeGreaterThanOrEqual(0.25);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
