/**
 * Lease faults a lab meets, each provoked for real on a real sshd (this machine's processes
 * stand in for the host's): a lease held by another run, a stale one, a reboot in the middle
 * of a test with a second runner trying to take the host meanwhile, and a holder file planted
 * by a hostile local user. Last, one real reboot of an emulated host (emu-mini, QEMU).
 */

import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { LabError } from '../../drivers/errors.js';
import { type Recorder, silentRecorder } from '../../drivers/recorder.js';
import { SshSession } from '../../drivers/ssh.js';
import { parseLab } from '../../targets/config.js';
import { emulatedLab, labDown, labUp } from '../../targets/emulated/lab.js';
import { Host } from '../../targets/host.js';
import { acquireLease, type LeaseOptions, readLease } from '../../targets/lease.js';
import { hostSchema, type Lab } from '../../targets/schema.js';
import { takeQemuSlot } from '../helpers/qemu-slot.js';
import { alive, simulateReboot } from '../helpers/reboot.js';
import { testSshd } from '../helpers/sshd.js';

test.describe.configure({ mode: 'serial', timeout: 240_000 });

let env: Awaited<ReturnType<typeof testSshd>>;
let root: string;
const sessions: SshSession[] = [];
const session = (name: string) => {
  const s = new SshSession(name, env.config);
  sessions.push(s);
  return s;
};

interface Place {
  lockDir: string;
  path: string;
  reservePath: string;
}
let n = 0;
async function place(): Promise<Place> {
  const dir = join(root, `lease-${++n}`);
  await mkdir(join(dir, 'persist'), { recursive: true });
  return {
    lockDir: join(dir, 'lock'),
    path: join(dir, 'lock', 'labrig.lease'),
    reservePath: join(dir, 'persist', 'labrig.lease.reserved'),
  };
}
const opts = (p: Place, runId: string, over: Partial<LeaseOptions> = {}): LeaseOptions => ({
  path: p.path,
  reservePath: p.reservePath,
  runId,
  ttlMs: 60_000,
  heartbeatMs: 1000,
  waitMs: 0,
  recorder: silentRecorder,
  ...over,
});
const logged = (lines: string[]): Recorder => ({ ...silentRecorder, log: (l) => lines.push(l) });
const leaseLog = (p: Place) => readFile(`${p.path}.log`, 'utf8').catch(() => '');
const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

test.beforeAll(async () => {
  env = await testSshd();
  root = await mkdtemp(join(tmpdir(), 'labrig-lease-faults-'));
});
test.afterAll(async () => {
  sessions.forEach((s) => s.close());
  await env?.cleanup();
  if (root) await rm(root, { recursive: true, force: true });
});

test('lease held by another run → [lab:lease-held] naming the holder, after waiting waitMs', async () => {
  const p = await place();
  const a = await acquireLease(session('runner-a'), opts(p, 'run-A'));
  const t0 = Date.now();
  const err = await acquireLease(session('runner-b'), opts(p, 'run-B', { waitMs: 3000 })).catch((e: unknown) => e);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(3000);
  expect(err).toBeInstanceOf(LabError);
  expect((err as LabError).kind).toBe('lease-held');
  expect((err as Error).message).toMatch(
    new RegExp(
      `^\\[lab:lease-held\\] host runner-b: the lease at ${p.path} is held by \\S+@\\S+ pid ${process.pid} \\(run run-A\\) since \\S+Z, heartbeat \\d+ s ago; waited 3000 ms$`,
    ),
  );
  await a.release();
  const log = await leaseLog(p);
  expect(log).toMatch(/ acquired .*"runId":"run-A"[\s\S]* released .*"runId":"run-A"/);
  expect(log).not.toContain('"runId":"run-B"');
});

test('stale lease (holder hung past the TTL) → broken, logged on both sides; the old holder finds it lost', async () => {
  const p = await place();
  const a = await acquireLease(session('runner-a'), opts(p, 'run-A', { heartbeatMs: 500 }));
  // A hung holder: it stops, so its heartbeat stops while it still holds the flock.
  process.kill(a.holder.pid, 'SIGSTOP');
  const lines: string[] = [];
  const b = await acquireLease(session('runner-b'), opts(p, 'run-B', { ttlMs: 2000, waitMs: 30_000, recorder: logged(lines) }));
  expect(b.holder.runId).toBe('run-B');
  expect(lines.join('\n')).toMatch(/breaking stale lease of \S+@\S+ pid \d+ \(run run-A\): heartbeat \d+ s old > TTL 2 s/);
  expect(await leaseLog(p)).toMatch(
    / broken by .*\(run run-B\): breaking stale lease of .*\(run run-A\)[\s\S]* acquired .*"runId":"run-B"/,
  );
  expect(await alive(a.holder.pid)).toBe(false);
  // A's next command: the lease is not A's any more, and A does not take it back.
  await expect(a.check()).rejects.toThrow(/^\[lab:lease-lost\] host runner-a: the lease at \S+ is not ours any more: /);
  await a.release();
  const c = await acquireLease(session('runner-c'), opts(p, 'run-C')).catch((e: Error) => e);
  expect(String(c)).toMatch(/\[lab:lease-held\] .*held by .*\(run run-B\)/);
  await b.release();
});

test('lease across a simulated reboot → still ours; a competing acquire in the window and after is refused', async () => {
  const p = await place();
  const host = new Host(hostSchema.parse({ name: 'rebooter', role: 'local', ssh: env.config, expect: { arch: 'x86_64' } }), {
    logDir: root,
  });
  const lines: string[] = [];
  const lease = await acquireLease(host, opts(p, 'run-A', { recorder: logged(lines) }));
  const before = { ...lease.holder };
  try {
    await host.announceTransition(30_000);
    expect((await readFile(p.reservePath, 'utf8')).startsWith(`${before.token} `)).toBe(true);
    await simulateReboot({ holderPid: before.pid, sshdPid: env.sshd.pid, wipe: [p.lockDir] });

    const inWindow = await acquireLease(session('runner-b'), opts(p, 'run-B')).catch((e: Error) => e);
    expect(String(inWindow)).toMatch(
      /\[lab:lease-held\] host runner-b: the lease at \S+ is reserved by \S+@\S+ pid \d+ \(run run-A\) across a reboot or kexec until \S+Z; waited 0 ms/,
    );

    // The local boot_id cannot change: a stale previous id stands for the old boot.
    await host.waitForReturn('boot-before-the-simulated-reboot', 60_000);
    expect(lease.lost).toBeUndefined();
    expect(lease.holder.token).toBe(before.token);
    expect(lease.holder.pid).not.toBe(before.pid);
    expect(lines.join('\n')).toMatch(/taken again, still ours/);
    const log = await leaseLog(p);
    expect(log).toMatch(new RegExp(`^\\S+ reclaimed .*"token":"${before.token}"`));
    expect(log).not.toContain('run-B');
    expect(await exists(p.reservePath)).toBe(false);

    const after = await acquireLease(session('runner-b'), opts(p, 'run-B')).catch((e: Error) => e);
    expect(String(after)).toMatch(/\[lab:lease-held\] .*held by .*\(run run-A\)/);
    expect((await host.run('echo still-usable')).stdout).toBe('still-usable\n');
  } finally {
    await host.close();
    await lease.release();
    host.ssh.close();
  }
  expect(await leaseLog(p)).toMatch(/ released .*"runId":"run-A"/);
});

test('hostile holder, heartbeat, reservation and log files → nothing they say executes', async () => {
  const p = await place();
  const pwned = (i: number) => join(root, `pwned-${i}`);
  const noneRan = async () => {
    for (let i = 1; i <= 9; i++) expect(await exists(pwned(i)), `payload ${i} ran`).toBe(false);
  };
  const holderText = `$(touch ${pwned(1)})"; touch ${pwned(2)}; "`;
  const runText = `\`touch ${pwned(3)}\`'; touch ${pwned(4)}; '`;

  // 1. A holder that hung, its holder file rewritten by a local user around its real pid: the
  //    break goes ahead (that pid holds the lock) and logs the hostile text as text.
  const a = await acquireLease(session('runner-a'), opts(p, 'run-A'));
  process.kill(a.holder.pid, 'SIGSTOP');
  await writeFile(p.path, `${JSON.stringify({ holder: holderText, runId: runText, since: 0, pid: a.holder.pid })}\n`);
  await writeFile(`${p.path}.log`, `2026-01-01T00:00:00Z acquired $(touch ${pwned(5)})\n`, { flag: 'a' });
  const lines: string[] = [];
  const b = await acquireLease(session('runner-b'), opts(p, 'run-B', { ttlMs: 2000, waitMs: 30_000, recorder: logged(lines) }));
  expect(lines.join('\n')).toContain(`breaking stale lease of ${holderText} (run ${runText})`);
  expect(await leaseLog(p)).toContain(`breaking stale lease of ${holderText} (run ${runText})`);
  await b.release();
  await a.release();
  await noneRan();

  // 2. The lock held by a process that is no holder, a holder file whose pid is a command, a
  //    heartbeat that is one: nothing is killed, the refusal quotes the file as text, on one line.
  const squatter = await session('squatter').openCommand(`exec 9>>'${p.path}.lock'; flock 9; echo $$; exec sleep 600`);
  const squatterPid = Number(await new Promise<string>((r) => squatter.stdout.once('data', (d: Buffer) => r(d.toString()))));
  await writeFile(p.path, `{"holder":"x","runId":"y","since":0,"pid":"1; touch ${pwned(6)}"}\n$(touch ${pwned(7)})`);
  await writeFile(`${p.path}.heartbeat`, `0 $(touch ${pwned(8)})`);
  const refused = await acquireLease(session('runner-c'), opts(p, 'run-C', { ttlMs: 1000, waitMs: 2000 })).catch((e: Error) => e);
  expect(String(refused)).toMatch(
    /\[lab:lease-held\] .*held by an unknown holder \(holder file: ".*touch .*pwned-6.*"\), heartbeat \? s ago; waited 2000 ms$/,
  );
  expect(String(refused).split('\n')).toHaveLength(1);
  expect(await readLease(session('doctor'), p)).toMatch(/^held by an unknown holder/);
  expect(await alive(squatterPid)).toBe(true);
  process.kill(squatterPid, 'SIGKILL');
  await squatter.close();

  // 3. A hostile, expired reservation on a free lease: taken; the note quotes it as data.
  await writeFile(p.reservePath, `$(touch\${IFS}${pwned(9)}) 1 {"holder":${JSON.stringify(holderText)},"runId":"r","since":0,"pid":1}\n`);
  const notes: string[] = [];
  const d = await acquireLease(session('runner-d'), opts(p, 'run-D', { recorder: logged(notes) }));
  expect(notes.join('\n')).toContain(`the reservation of ${holderText} (run r) expired`);
  expect(await exists(p.reservePath)).toBe(false);
  await d.release();
  await noneRan();
});

test.describe('on the emulated lab', () => {
  let runDir: string | undefined;
  let releaseSlot: (() => Promise<void>) | undefined;
  let lab: Lab;

  test.beforeAll(async () => {
    test.setTimeout(20 * 60_000);
    releaseSlot = await takeQemuSlot('faults/lease.test');
    runDir = await mkdtemp(join(tmpdir(), 'labrig-lab-test-'));
    await labUp({ runDir, hosts: ['emu-mini'], ports: { 'emu-mini': 30000 + Math.floor(Math.random() * 10000) } });
    lab = parseLab(emulatedLab({ runDir }));
  });
  test.afterAll(async () => {
    if (runDir) {
      await labDown({ runDir }).catch(() => undefined);
      await rm(runDir, { recursive: true, force: true });
    }
    await releaseSlot?.();
  });

  test('a real power-cycle reboot clears /var/lock: the lease is taken again at once, still ours; a second runner is refused', async () => {
    test.setTimeout(10 * 60_000);
    const config = lab.hosts.find((h) => h.name === 'emu-mini')!;
    const host = new Host(config, { logDir: join(runDir!, 'logs') });
    const lines: string[] = [];
    const o = { ...lab.lease, runId: 'faults-reboot', heartbeatMs: 1000, waitMs: 0, recorder: logged(lines) };
    const lease = await acquireLease(host, o);
    const { token } = lease.holder;
    try {
      const back = await host.reboot('power', 180_000);
      expect(back.ms).toBeGreaterThan(0);
      expect(lease.lost).toBeUndefined();
      expect(lease.holder.token).toBe(token);
      expect(lines.join('\n')).toMatch(/reserved across the transition[\s\S]*taken again, still ours/);
      // The boot emptied the tmpfs: the new log starts with our reclaim, the acquire is gone.
      const log = (await host.run(`cat ${lab.lease.path}.log`)).stdout;
      expect(log).toMatch(new RegExp(`^\\S+ reclaimed .*"token":"${token}"`));
      expect(log).not.toMatch(/ acquired /);
      const other = new Host(config, { logDir: join(runDir!, 'logs') });
      const refused = await acquireLease(other, { ...o, runId: 'other-runner' }).catch((e: Error) => e);
      expect(String(refused)).toMatch(/\[lab:lease-held\] host emu-mini: the lease at \S+ is held by .*\(run faults-reboot\)/);
    } finally {
      await host.close();
      await lease.release();
    }
  });
});
