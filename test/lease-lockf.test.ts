/**
 * The lease where there is no flock(1): FreeBSD's base system has lockf(1) instead, and the
 * holder runs as lockf's command. FreeBSD cannot run here, so lockf is a TEST DOUBLE on a real
 * sshd: a shim that takes `lockf -k -s -t 0 <file> <command…>` and runs GNU flock(1)'s command
 * mode with the contract lockf(1) documents (the lock held while the command runs, exit 75 =
 * EX_TEMPFAIL when another process holds it). The holder chooses it because the sshd sets
 * LABRIG_LEASE_LOCK=lockf; everything else (sshd, shell, processes, signals) is real.
 */

import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { type Recorder, silentRecorder } from '../drivers/recorder.js';
import { SshSession } from '../drivers/ssh.js';
import { acquireLease, type LeaseOptions } from '../targets/lease.js';
import { alive } from './helpers/reboot.js';
import { testSshd } from './helpers/sshd.js';

test.describe.configure({ mode: 'serial', timeout: 120_000 });

const SHIM = `#!/bin/sh
# Test double of FreeBSD lockf(1), only for: lockf -k -s -t 0 <file> <command...>
[ "$1 $2 $3 $4" = "-k -s -t 0" ] || { echo "lockf shim: unexpected options: $*" >&2; exit 64; }
f=$5; shift 5
exec /usr/bin/flock -n -E 75 "$f" "$@"
`;

let root: string;
let withLockf: Awaited<ReturnType<typeof testSshd>>;
let withNeither: Awaited<ReturnType<typeof testSshd>>;
const sessions: SshSession[] = [];
const session = (env: typeof withLockf, name: string) => {
  const s = new SshSession(name, env.config);
  sessions.push(s);
  return s;
};
let n = 0;
const place = async () => {
  const dir = join(root, `lease-${++n}`);
  await mkdir(join(dir, 'persist'), { recursive: true });
  return { path: join(dir, 'lock', 'labrig.lease'), reservePath: join(dir, 'persist', 'labrig.lease.reserved') };
};
const opts = (p: { path: string; reservePath: string }, runId: string, over: Partial<LeaseOptions> = {}): LeaseOptions => ({
  ...p,
  runId,
  ttlMs: 60_000,
  heartbeatMs: 1000,
  waitMs: 0,
  recorder: silentRecorder,
  ...over,
});
const logged = (lines: string[]): Recorder => ({ ...silentRecorder, log: (l) => lines.push(l) });
const parentArgv = async (pid: number) => {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  return (await readFile(`/proc/${ppid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
};

test.beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'labrig-lease-lockf-'));
  const bin = join(root, 'bin');
  await mkdir(bin);
  await writeFile(join(bin, 'lockf'), SHIM);
  await chmod(join(bin, 'lockf'), 0o755);
  withLockf = await testSshd([`SetEnv PATH=${bin}:/usr/local/bin:/usr/bin:/bin LABRIG_LEASE_LOCK=lockf`]);
  // lockf asked for, none on PATH: the holder must say so, not hang or pass
  withNeither = await testSshd(['SetEnv PATH=/usr/local/bin:/usr/bin:/bin LABRIG_LEASE_LOCK=lockf']);
});
test.afterAll(async () => {
  sessions.forEach((s) => s.close());
  await withLockf?.cleanup();
  await withNeither?.cleanup();
  if (root) await rm(root, { recursive: true, force: true });
});

test('lockf holds the lease while the holder runs: a second run is refused naming the holder, then takes it once released', async () => {
  const p = await place();
  const a = await acquireLease(session(withLockf, 'runner-a'), opts(p, 'run-A'));
  // the holder is lockf's command: its parent is the lock tool holding <path>.lock
  expect((await parentArgv(a.holder.pid)).slice(0, 5)).toEqual(['/usr/bin/flock', '-n', '-E', '75', `${p.path}.lock`]);
  const refused = await acquireLease(session(withLockf, 'runner-b'), opts(p, 'run-B')).catch((e: Error) => e);
  expect(String(refused)).toMatch(
    new RegExp(`\\[lab:lease-held\\] host runner-b: the lease at ${p.path} is held by \\S+@\\S+ pid \\d+ \\(run run-A\\)`),
  );
  await a.release();
  expect(await alive(a.holder.pid)).toBe(false);
  const b = await acquireLease(session(withLockf, 'runner-b2'), opts(p, 'run-B'));
  expect(b.holder.runId).toBe('run-B');
  await b.release();
  expect(await readFile(`${p.path}.log`, 'utf8')).toMatch(
    / acquired .*"runId":"run-A"[\s\S]* released .*"runId":"run-A"[\s\S]* acquired .*"runId":"run-B"[\s\S]* released .*"runId":"run-B"/,
  );
});

test('a connection that dies frees the lockf lease at once; a hung holder is broken past the TTL, its lockf parent checked', async () => {
  const p = await place();
  // Runner A, a process of its own, is killed while it holds the lease: its connection dies with it.
  const runner = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, 'helpers', 'lease-runner.ts'),
      JSON.stringify({ ...opts(p, 'run-A'), recorder: undefined }),
      JSON.stringify(withLockf.config),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const held = await new Promise<string>((r) => runner.stdout.once('data', (d: Buffer) => r(d.toString())));
  const a = { holder: { pid: Number(/^held (\d+)/.exec(held)?.[1]) } };
  expect(await alive(a.holder.pid)).toBe(true);
  runner.kill('SIGKILL');
  const t0 = Date.now();
  const b = await acquireLease(session(withLockf, 'runner-b'), opts(p, 'run-B', { waitMs: 20_000, heartbeatMs: 500 }));
  expect(Date.now() - t0, 'free once the connection closed, not after the TTL').toBeLessThan(20_000);
  expect(await alive(a.holder.pid)).toBe(false);

  process.kill(b.holder.pid, 'SIGSTOP');
  const lines: string[] = [];
  const c = await acquireLease(session(withLockf, 'runner-c'), opts(p, 'run-C', { ttlMs: 2000, waitMs: 30_000, recorder: logged(lines) }));
  expect(c.holder.runId).toBe('run-C');
  expect(lines.join('\n')).toMatch(/breaking stale lease of \S+@\S+ pid \d+ \(run run-B\): heartbeat \d+ s old > TTL 2 s/);
  expect(await alive(b.holder.pid)).toBe(false);
  await b.release();
  await c.release();
  expect(await readFile(`${p.path}.log`, 'utf8')).toMatch(
    / dropped .*"runId":"run-A"[\s\S]* broken by .*\(run run-C\)[\s\S]* acquired .*"runId":"run-C"/,
  );
});

test('a host with no lock tool: one lab-setup line saying so', async () => {
  const p = await place();
  const err = await acquireLease(session(withNeither, 'runner-x'), opts(p, 'run-X')).catch((e: Error) => e);
  expect(String(err)).toMatch(
    /\[lab:lab-setup\] .*cannot read the lease at \S+: labrig-lease: this host has neither flock\(1\) nor lockf\(1\) to hold \S+\.lock/,
  );
});
