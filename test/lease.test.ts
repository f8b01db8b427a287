import { expect, test } from '@playwright/test';
import { LabError } from '../drivers/errors.js';
import { silentRecorder, type Recorder } from '../drivers/recorder.js';
import { SshSession } from '../drivers/ssh.js';
import { acquireLease } from '../targets/lease.js';
import { testSshd } from './helpers/sshd.js';

test.describe.configure({ mode: 'serial' });

let env: Awaited<ReturnType<typeof testSshd>>;
const sessions: SshSession[] = [];
const session = (name: string) => {
  const s = new SshSession(name, env.config);
  sessions.push(s);
  return s;
};
const opts = (path: string, runId: string, over: Partial<{ ttlMs: number; heartbeatMs: number; waitMs: number; recorder: Recorder }> = {}) => ({
  path,
  runId,
  ttlMs: 60_000,
  heartbeatMs: 1000,
  waitMs: 0,
  recorder: silentRecorder,
  ...over,
});

test.beforeAll(async () => {
  env = await testSshd();
});
test.afterAll(async () => {
  sessions.forEach((s) => s.close());
  await env?.cleanup();
});

test('a second holder fails naming the first, then gets the lease once it is released', async () => {
  const path = `/tmp/labrig-lease-${process.pid}-a`;
  const first = await acquireLease(session('runner-a'), opts(path, 'run-A'));
  const err = await acquireLease(session('runner-b'), opts(path, 'run-B')).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(LabError);
  expect((err as LabError).kind).toBe('lease-held');
  expect((err as Error).message).toContain('run-A');
  const waiting = acquireLease(session('runner-b'), opts(path, 'run-B', { waitMs: 20_000 }));
  await new Promise((r) => setTimeout(r, 1500));
  await first.release();
  const second = await waiting;
  expect(second.holder.runId).toBe('run-B');
  await second.release();
  const log = (await session('reader').exec(`cat ${path}.log`)).stdout;
  expect(log).toMatch(/acquired .*run-A[^]*released .*run-A[^]*acquired .*run-B[^]*released .*run-B/);
});

test('a lease whose holder died with its connection is free at once', async () => {
  const path = `/tmp/labrig-lease-${process.pid}-b`;
  const a = session('runner-a');
  await acquireLease(a, opts(path, 'run-A'));
  a.close();
  const b = await acquireLease(session('runner-b'), opts(path, 'run-B', { waitMs: 10_000 }));
  expect(b.holder.runId).toBe('run-B');
  await b.release();
});

test('a stale lease past its TTL is broken, and that is logged', async () => {
  const path = `/tmp/labrig-lease-${process.pid}-c`;
  const a = await acquireLease(session('runner-a'), opts(path, 'run-A'));
  // A hung holder: its process stops, so its heartbeat stops while it still holds the flock.
  await session('admin').exec(`kill -STOP ${a.holder.pid}`);
  const lines: string[] = [];
  const b = await acquireLease(session('runner-b'), opts(path, 'run-B', { ttlMs: 3000, waitMs: 30_000, recorder: { ...silentRecorder, log: (l) => lines.push(l) } }));
  expect(b.holder.runId).toBe('run-B');
  expect(lines.join('\n')).toMatch(/breaking stale lease of .*run run-A.*heartbeat \d+ s old > TTL 3 s/);
  expect((await session('reader').exec(`cat ${path}.log`)).stdout).toMatch(/broken by .*run-A/);
  await b.release();
});
