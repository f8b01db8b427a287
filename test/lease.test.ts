/**
 * The host lease: its decisions on recorded host answers (pure), then on a real sshd the
 * lease's life — waiting for a holder, a holder whose connection died, a reboot after which
 * the lease is someone else's (lost, loudly), a connection drop outside any reboot (taken
 * again), a release that kills nothing — and the lease around what doctor types into a
 * console and what the main job installs.
 */

import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { LabError } from '../drivers/errors.js';
import { type Recorder, silentRecorder } from '../drivers/recorder.js';
import { SshSession } from '../drivers/ssh.js';
import { applyLabComponents } from '../targets/components.js';
import { doctorHost } from '../targets/doctor.js';
import { Host } from '../targets/host.js';
import { acquireLease, type LeaseOptions } from '../targets/lease.js';
import { decideAcquire, decideReclaim, type LeaseState, parseState, printable } from '../targets/lease-protocol.js';
import { hostSchema, labSchema } from '../targets/schema.js';
import { alive, connectionOf, simulateReboot, spawnWithPid } from './helpers/reboot.js';
import { testSshd } from './helpers/sshd.js';

test.describe.configure({ mode: 'serial', timeout: 240_000 });

// ---- decisions on what a host answers (pure) ----

const N = 'f00d';
const answer = (o: { state: string; holder?: string; heartbeat?: string; reserved?: string; log?: string }) =>
  `\n${N} state\n${o.state}\n${N} holder\n${o.holder ?? ''}\n${N} heartbeat\n${o.heartbeat ?? ''}\n${N} reserved\n${o.reserved ?? ''}\n${N} log\n${o.log ?? ''}\n${N} ask\n`;
const rec = (runId: string, token: string, pid = 42) => JSON.stringify({ holder: `root@r pid ${pid}`, runId, token, since: 1000, pid });
const state = (o: Parameters<typeof answer>[0]): LeaseState => parseState(answer(o), N)!;

test('what a host answers is parsed as data, framed by the nonce; a forged frame is just text', () => {
  const s = state({
    state: 'held 1100',
    holder: `{"holder":"x\\n${N} ask","runId":"r","since":1,"pid":7}\nbad ${N} state\nfree 1`,
    heartbeat: '1090',
  });
  expect(s).toMatchObject({ free: false, now: 1100, heartbeat: 1090, holder: undefined });
  expect(s.holderText).toContain('bad');
  expect(parseState(answer({ state: 'held 1' }).replace(`${N} ask`, 'other ask'), N)).toBeUndefined();
  expect(decideAcquire(s)).toMatchObject({
    action: 'wait',
    heartbeatAgeS: 10,
    why: expect.stringMatching(/^held by an unknown holder \(holder file: ".*"\), heartbeat 10 s ago$/),
  });
  expect(printable('a\nb\u001b[2Jc\u0000', 50)).toBe('a?b?[2Jc?');
  expect(printable('x'.repeat(300)).length).toBe(161);
});

test('acquire: a reservation of someone away on a reboot is honoured until its deadline', () => {
  const reserved = `T1 1200 ${rec('run-A', 'T1')}`;
  expect(decideAcquire(state({ state: 'free 1100', reserved }))).toMatchObject({
    action: 'wait',
    why: expect.stringContaining('reserved by root@r pid 42 (run run-A) across a reboot or kexec until'),
  });
  expect(decideAcquire(state({ state: 'free 1300', reserved }))).toEqual({
    action: 'take',
    notes: [expect.stringMatching(/^the reservation of root@r pid 42 \(run run-A\) expired at /)],
  });
  expect(decideAcquire(state({ state: 'free 1300', heartbeat: '$(reboot)' }))).toEqual({ action: 'take', notes: [] });
});

test('reclaim after a transition: ours only if nobody else held, reserved, took or broke it meanwhile', () => {
  const log = [`t acquired ${rec('run-A', 'T1')}`, `t reserved-until-9 ${rec('run-A', 'T1')}`].join('\n');
  expect(decideReclaim(state({ state: 'free 1', log }), 'T1')).toEqual({ action: 'take', lost: undefined });
  expect(decideReclaim(state({ state: 'free 1', reserved: `T1 9 ${rec('run-A', 'T1')}` }), 'T1')).toEqual({
    action: 'take',
    lost: undefined,
  });
  expect(decideReclaim(state({ state: 'held 1', holder: rec('run-A', 'T1', 77) }), 'T1')).toEqual({ action: 'end-own', pid: 77 });
  expect(decideReclaim(state({ state: 'held 1', holder: rec('run-B', 'T2') }), 'T1')).toEqual({
    action: 'lost',
    why: 'held by root@r pid 42 (run run-B)',
  });
  const window = `${log}\nt acquired ${rec('run-B', 'T2')}\nt released ${rec('run-B', 'T2')}`;
  expect(decideReclaim(state({ state: 'free 1', log: window }), 'T1')).toEqual({
    action: 'take',
    lost: 'the lease log shows it acquired by root@r pid 42 (run run-B)',
  });
  expect(decideReclaim(state({ state: 'free 1', reserved: `T2 9 ${rec('run-B', 'T2')}` }), 'T1')).toMatchObject({
    action: 'take',
    lost: 'reserved by root@r pid 42 (run run-B)',
  });
  expect(decideReclaim(state({ state: 'free 1', log: `${log}\nt broken by someone: stale` }), 'T1')).toMatchObject({
    action: 'lost',
    why: expect.stringContaining('broken by another runner'),
  });
});

// ---- on a real sshd ----

let env: Awaited<ReturnType<typeof testSshd>>;
let root: string;
const sessions: SshSession[] = [];
const session = (name: string) => {
  const s = new SshSession(name, env.config);
  sessions.push(s);
  return s;
};
let n = 0;
async function place(): Promise<{ lockDir: string; persistDir: string; path: string; reservePath: string }> {
  const dir = join(root, `lease-${++n}`);
  await mkdir(join(dir, 'persist'), { recursive: true });
  return {
    lockDir: join(dir, 'lock'),
    persistDir: join(dir, 'persist'),
    path: join(dir, 'lock', `lease-${process.pid}-${n}`),
    reservePath: join(dir, 'persist', 'reserved'),
  };
}
type Place = Awaited<ReturnType<typeof place>>;
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
const localHost = (name: string, over: object = {}) =>
  new Host(hostSchema.parse({ name, role: 'local', ssh: env.config, expect: { arch: 'x86_64' }, ...over }), { logDir: root });
const refusal = async (p: Place, runId: string) =>
  String(
    await acquireLease(session(`runner-${runId}`), opts(p, runId)).then(
      (l) => l.release().then(() => 'acquired'),
      (e: Error) => e.message,
    ),
  );

test.beforeAll(async () => {
  env = await testSshd();
  root = await mkdtemp(join(tmpdir(), 'labrig-lease-'));
});
test.afterAll(async () => {
  sessions.forEach((s) => s.close());
  await env?.cleanup();
  if (root) await rm(root, { recursive: true, force: true });
});

test('a run id that is not one is a config error before anything reaches a host', async () => {
  const p = await place();
  for (const bad of ['$(touch /tmp/x)', '%s%s%n', '../../etc', '', 'a b'])
    await expect(acquireLease(new SshSession('never-connected', env.config), opts(p, bad))).rejects.toThrow(
      /^\[lab:config\] run id ".*" is not a run id: /,
    );
});

test('a second holder waits for the first; a runner killed while holding leaves the lease free at once', async () => {
  const p = await place();
  const first = await acquireLease(session('runner-a'), opts(p, 'run-A'));
  const waiting = acquireLease(session('runner-b'), opts(p, 'run-B', { waitMs: 60_000 }));
  await new Promise((r) => setTimeout(r, 1500));
  await first.release();
  const second = await waiting;
  expect(second.holder.runId).toBe('run-B');
  await second.release();
  // Runner C, a process of its own, is killed while it holds the lease: its connection dies with it.
  const c = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, 'helpers', 'lease-runner.ts'),
      JSON.stringify(opts(p, 'run-C')),
      JSON.stringify(env.config),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const held = await new Promise<string>((r) => c.stdout.once('data', (d: Buffer) => r(d.toString())));
  expect(held).toMatch(/^held \d+/);
  c.kill('SIGKILL');
  const t0 = Date.now();
  const fourth = await acquireLease(session('runner-d'), opts(p, 'run-D', { waitMs: 20_000 }));
  expect(fourth.holder.runId).toBe('run-D');
  expect(Date.now() - t0, 'free at once, not after the TTL').toBeLessThan(20_000);
  await fourth.release();
  expect(await leaseLog(p)).toMatch(
    /acquired .*run-A[\s\S]*released .*run-A[\s\S]*acquired .*run-B[\s\S]*released .*run-B[\s\S]*acquired .*run-C[\s\S]*dropped .*run-C[\s\S]*acquired .*run-D[\s\S]*released .*run-D/,
  );
});

test('a lease another run took while the host was away fails the test [lab:lease-lost], and the host refuses commands', async () => {
  const p = await place();
  const host = localHost('lost-host');
  const lease = await acquireLease(host, opts(p, 'run-A'));
  await host.announceTransition(30_000);
  // The reboot also lost the reservation (a host without persistent storage): B takes the lease.
  await simulateReboot({ holderPid: lease.holder.pid, sshdPid: env.sshd.pid, wipe: [p.lockDir, p.persistDir] });
  const b = await acquireLease(session('runner-b'), opts(p, 'run-B'));
  const err = await host.waitForReturn('old-boot', 60_000).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(LabError);
  expect((err as Error).message).toMatch(
    /^\[lab:lease-lost\] host lost-host: the lease at \S+ is not ours any more: held by \S+@\S+ pid \d+ \(run run-B\)$/,
  );
  await expect(host.run('true')).rejects.toThrow(/^\[lab:lease-lost\]/);
  await lease.release();
  await host.close();
  expect(await refusal(p, 'run-C')).toMatch(/held by .*\(run run-B\)/);
  await b.release();
});

test('a lease taken and given back by another run while the host was away: [lab:lease-lost], then ours again', async () => {
  const p = await place();
  const host = localHost('window-host');
  const lease = await acquireLease(host, opts(p, 'run-A'));
  await host.announceTransition(30_000);
  await simulateReboot({ holderPid: lease.holder.pid, sshdPid: env.sshd.pid, wipe: [p.lockDir, p.persistDir] });
  await (await acquireLease(session('runner-b'), opts(p, 'run-B'))).release();
  const err = await host.waitForReturn('old-boot', 60_000).catch((e: Error) => e);
  expect(String(err)).toMatch(
    /\[lab:lease-lost\] host window-host: the lease at \S+ was not ours while the host was away: the lease log shows it acquired by .*\(run run-B\) \(taken again now\)/,
  );
  expect(lease.lost).toBeUndefined();
  expect((await host.run('echo usable')).stdout).toBe('usable\n');
  expect(await refusal(p, 'run-C')).toMatch(/held by .*\(run run-A\)/);
  await host.close();
  await lease.release();
});

test('a connection drop outside any reboot: the lease is taken again before the next command, still ours', async () => {
  const p = await place();
  const host = localHost('drop-host');
  const lines: string[] = [];
  const lease = await acquireLease(host, opts(p, 'run-A', { recorder: logged(lines) }));
  const { token, pid } = lease.holder;
  process.kill(await connectionOf(pid, env.sshd.pid), 'SIGKILL');
  await expect.poll(() => lines.join('\n'), { timeout: 20_000 }).toMatch(/holder's connection closed/);
  expect((await host.run('echo next-command')).stdout).toBe('next-command\n');
  expect(lease.holder).toMatchObject({ token, runId: 'run-A' });
  expect(lease.holder.pid).not.toBe(pid);
  expect(lines.join('\n')).toMatch(/holder's connection closed; taking the lease again[\s\S]*taken again, still ours/);
  expect(await leaseLog(p)).toMatch(new RegExp(`reclaimed .*"token":"${token}"`));
  expect(await refusal(p, 'run-C')).toMatch(/held by .*\(run run-A\)/);
  await host.close();
  await lease.release();
});

test("release never kills a process that is not provably ours: not the old holder's pid after a reboot, not one the holder file names", async () => {
  const p = await place();
  const host = localHost('release-host');
  const lease = await acquireLease(host, opts(p, 'run-A'));
  await host.announceTransition(30_000);
  await simulateReboot({ holderPid: lease.holder.pid, sshdPid: env.sshd.pid, wipe: [p.lockDir] });
  // After the reboot the old holder's pid belongs to someone else: here, an unrelated process.
  const other = await spawnWithPid(lease.holder.pid);
  try {
    await mkdir(p.lockDir, { recursive: true });
    await writeFile(p.path, `${JSON.stringify({ ...lease.holder, pid: other.pid })}\n`);
    await host.close();
    await lease.release();
    expect(await alive(other.pid!)).toBe(true);
    await expect(readFile(p.reservePath)).rejects.toThrow(/ENOENT/); // our reservation did not outlive us
    expect(await leaseLog(p)).toMatch(/reclaimed .*run-A[\s\S]*released .*run-A/);
  } finally {
    other.kill('SIGKILL');
  }
});

test('a transition announced but never made (the reboot command failed): commands go on, release withdraws the reservation', async () => {
  const p = await place();
  const host = localHost('stayed-host');
  const lease = await acquireLease(host, opts(p, 'run-A'));
  await host.announceTransition(30_000);
  expect(await readFile(p.reservePath, 'utf8')).toMatch(/^\S+ \d+ \{/);
  expect((await host.run('echo still-here')).stdout).toBe('still-here\n');
  await host.close();
  await lease.release();
  await expect(readFile(p.reservePath)).rejects.toThrow(/ENOENT/);
  expect(await leaseLog(p)).toMatch(/reserved-until-\d+ .*run-A[\s\S]*released .*run-A/);
  expect(await refusal(p, 'run-C')).toBe('acquired');
});

test('doctor types into a console only holding its lease: refused naming the holder, done when free', async () => {
  const p = await place();
  const typed = join(root, 'typed-into-console');
  const lab = labSchema.parse({
    name: 'doctor-lease',
    lease: { path: p.path, waitMs: 0, ttlMs: 60_000, heartbeatMs: 1000 },
    hosts: [
      {
        name: 'console-host',
        role: 'local',
        ssh: env.config,
        expect: { arch: 'x86_64' },
        console: { kind: 'command', argv: ['sh', '-c', `while IFS= read -r l; do echo typed >> ${typed}; echo 'login:'; done`] },
      },
    ],
  });
  const b = await acquireLease(session('runner-b'), opts(p, 'run-B', { reservePath: undefined }));
  const refused = await doctorHost(lab.hosts[0]!, lab, root);
  expect(refused.find((c) => c.check === 'lease')).toMatchObject({ ok: true, detail: expect.stringMatching(/^held by .*\(run run-B\)/) });
  expect(refused.find((c) => c.check === 'console')).toMatchObject({
    ok: false,
    detail: expect.stringMatching(/^not typed into without the host's lease: \[lab:lease-held\] .*\(run run-B\)/),
  });
  await expect(readFile(typed)).rejects.toThrow(/ENOENT/);
  await b.release();
  const checks = await doctorHost(lab.hosts[0]!, lab, root);
  expect(checks.filter((c) => !c.ok)).toEqual([]);
  expect(await readFile(typed, 'utf8')).toBe('typed\n');
  expect(await leaseLog(p)).toMatch(/released .*"runId":"run-B"[\s\S]* acquired .*"runId":"(?!run-B)[^"]+"[\s\S]* released /);
});

test('applying components takes the lease: refused naming the holder while another run holds the host', async () => {
  const p = await place();
  const build = join(root, 'qemu-build');
  await mkdir(build, { recursive: true });
  await symlink('/usr/bin/qemu-system-aarch64', join(build, 'qemu-system-aarch64'));
  const lab = labSchema.parse({
    name: 'components-lease',
    lease: { path: p.path, waitMs: 0, ttlMs: 60_000, heartbeatMs: 1000 },
    hosts: [{ name: 'apt-host', role: 'local', ssh: env.config, expect: { arch: 'x86_64' }, components: { qemuDir: build } }],
  });
  const b = await acquireLease(session('runner-b'), opts(p, 'run-B', { reservePath: undefined }));
  const held = await applyLabComponents(lab, root, () => undefined);
  expect(held.failed['apt-host']).toMatch(/^\[lab:lease-held\] host apt-host: the lease at \S+ is held by .*\(run run-B\)/);
  await b.release();
  const free = await applyLabComponents(lab, root, () => undefined);
  expect(free.failed).toEqual({});
  expect(await leaseLog(p)).toMatch(/released .*"runId":"run-B"[\s\S]* acquired .*"runId":"(?!run-B)[^"]+"[\s\S]* released /);
});
