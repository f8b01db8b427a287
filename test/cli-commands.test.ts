/**
 * A lab engineer's everyday commands, driven as a user would: `node bin/labrig.mjs …` with
 * LABRIG_CONFIG naming a lab whose hosts are a real local sshd (this machine, so the host's
 * files are readable here), power through real scripts, and a console that is a real command.
 * Two engineers are told apart by LABRIG_USER.
 */

import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import { silentRecorder } from '../drivers/recorder.js';
import { SshSession } from '../drivers/ssh.js';
import { acquireLease } from '../targets/lease.js';
import { lockHost, parseMarks, unlockHost } from '../targets/reservation.js';
import { freePort } from './helpers/free-port.js';
import { openPeer, startPtyProgram } from './helpers/pty.js';
import { testSshd } from './helpers/sshd.js';

// every step starts the CLI afresh (≈1.5 s on a quiet machine, 10 s when six sessions share its two cores)
test.describe.configure({ mode: 'serial', timeout: 360_000 });

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const me = (user: string) => `${user}@${hostname()}`;
let env: Awaited<ReturnType<typeof testSshd>>;
let dir: string;
let configFile: string;
const stateDir = () => join(dir, 'hoststate');
const leasePath = () => join(dir, 'lease');
const KNOWN = 'box, nopower, brokenpdu, gone, impostor';

async function labrig(args: string[], opts: { user?: string; input?: string; env?: Record<string, string> } = {}) {
  const r = await execa('node', ['bin/labrig.mjs', ...args], {
    cwd: repoRoot,
    reject: false,
    input: opts.input ?? '',
    env: { LABRIG_CONFIG: configFile, LABRIG_USER: opts.user ?? 'alice', ...opts.env },
  });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

const fileText = (path: string) => readFile(path, 'utf8').catch(() => undefined);

test.beforeAll(async () => {
  env = await testSshd();
  dir = await mkdtemp(join(tmpdir(), 'labrig-cli-'));
  configFile = join(dir, 'lab.config.mjs');
  await writeFile(join(dir, 'power'), 'off\n');
  const ssh = { ...env.config };
  const power = (name: string) => ['sh', '-c', `echo ${name} > ${dir}/power; echo ${name} >> ${dir}/power.log`];
  const host = (name: string, extra: object) => ({ name, role: 'local', ssh, expect: { arch: 'x86_64' }, ...extra });
  const lab = {
    name: 'cli-test',
    lease: { path: leasePath(), heartbeatMs: 1000 },
    hostStateDir: stateDir(),
    hosts: [
      host('box', {
        // answers every line with a prompt, as a getty would: doctor's console check sees it at once
        console: { kind: 'command', argv: ['sh', '-c', 'while read -r line; do echo "box# $line"; done'] },
        power: { kind: 'command', on: power('on'), off: power('off'), status: ['cat', join(dir, 'power')], minOffMs: 0 },
      }),
      host('nopower', {}),
      host('brokenpdu', {
        power: { kind: 'command', on: ['sh', '-c', 'echo PDU outlet 7 does not answer >&2; exit 1'], off: ['false'], status: ['false'] },
      }),
      host('gone', { ssh: { ...ssh, port: await freePort(), connectTimeoutMs: 2000 } }),
      host('impostor', { ssh: { ...ssh, hostKey: `SHA256:${'A'.repeat(43)}` } }),
    ],
  };
  await writeFile(configFile, `export const lab = ${JSON.stringify(lab, null, 2)};\n`);
});

test.afterAll(async () => {
  await env?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('--version names the package version and the git revision', async () => {
  const r = await labrig(['--version']);
  const rev = (await execa('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: repoRoot })).stdout.trim();
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(new RegExp(`^labrig 0\\.\\d+\\.\\d+ \\(${rev}(-dirty)?\\)$`));
});

test('an unknown host is a usage error (exit 2) listing the known hosts, for every command, and nothing is written', async () => {
  const cases = [
    ['power', 'on', 'nope'],
    ['ssh', 'nope', 'true'],
    ['lock', 'nope', '--reason', 'x'],
    ['unlock', 'nope'],
    ['state', 'nope', 'retired'],
    ['who', 'box', 'nope'],
    ['doctor', 'nope'],
    ['console', 'nope'],
  ];
  const results = await Promise.all(cases.map((args) => labrig(args)));
  for (const [i, args] of cases.entries()) {
    const r = results[i]!;
    expect(r.code, args.join(' ')).toBe(2);
    expect(r.stderr.trim().split('\n'), args.join(' ')).toEqual([`labrig ${args[0]}: no host "nope" in lab cli-test (hosts: ${KNOWN})`]);
  }
  expect(await stat(stateDir()).catch(() => 'absent')).toBe('absent');
  expect(await fileText(join(dir, 'power.log'))).toBeUndefined();
});

test('bad arguments are usage errors (exit 2): a power action, a state, lock without a reason', async () => {
  const cases = [
    ['power', 'toggle', 'box'],
    ['state', 'box', 'broken'],
    ['lock', 'box'],
    ['lock', 'box', '--reason', ' '],
    ['state', 'box', '--reason', 'why'],
    ['frobnicate'],
  ];
  const results = await Promise.all(cases.map((args) => labrig(args)));
  for (const [i, args] of cases.entries()) {
    const r = results[i]!;
    expect(r.code, args.join(' ')).toBe(2);
    expect(r.stderr.split('\n')[0], args.join(' ')).toMatch(/^(error: |labrig (lock|state): )/);
  }
  expect(await stat(stateDir()).catch(() => 'absent')).toBe('absent');
});

test('power: status, on, off and cycle through the configured command, in that order', async () => {
  expect(await labrig(['power', 'status', 'box'])).toMatchObject({ code: 0, stdout: 'box: off' });
  expect((await labrig(['power', 'on', 'box'])).stdout).toMatch(/^box: power on done \(command, [\d.]+ s\)$/);
  expect(await labrig(['power', 'status', 'box'])).toMatchObject({ code: 0, stdout: 'box: on' });
  expect((await labrig(['power', 'cycle', 'box'])).code).toBe(0);
  expect((await labrig(['power', 'off', 'box'])).code).toBe(0);
  expect(await fileText(join(dir, 'power.log'))).toBe('on\noff\non\noff\n');
});

test('power: a host without power and a failing power tool are lab failures (exit 3), one line each', async () => {
  const none = await labrig(['power', 'cycle', 'nopower']);
  expect(none.code).toBe(3);
  expect(none.stderr.trim().split('\n')).toEqual([
    'labrig power: [lab:lab-setup] host nopower has no power controller in the lab config (hosts.nopower.power)',
  ]);
  const broken = await labrig(['power', 'on', 'brokenpdu']);
  expect(broken.code).toBe(3);
  expect(broken.stderr.trim().split('\n')).toHaveLength(1);
  expect(broken.stderr).toContain('[lab:runner-tool] host brokenpdu: power on command failed (exit 1)');
  expect(broken.stderr).toContain('PDU outlet 7 does not answer');
  const unknown = await labrig(['power', 'status', 'brokenpdu']);
  expect(unknown).toMatchObject({ code: 3, stdout: 'brokenpdu: unknown' });
});

test("ssh with a command: its stdout, its stderr and its exit code; options after the host are the command's; stdin forwarded", async () => {
  const r = await labrig(['ssh', 'box', 'echo out; echo err >&2; exit 7']);
  expect(r).toMatchObject({ code: 7, stdout: 'out', stderr: 'err' });
  expect(await labrig(['ssh', 'box', 'ls', '-d', '/'])).toMatchObject({ code: 0, stdout: '/' });
  const target = join(dir, 'from-stdin');
  expect((await labrig(['ssh', 'box', `cat > ${target}`], { input: 'carried "as is" $(not run)\n' })).code).toBe(0);
  expect(await fileText(target)).toBe('carried "as is" $(not run)\n');
});

test('ssh refuses a host whose key is not the pinned one, and an unreachable host is a lab failure', async () => {
  const impostor = await labrig(['ssh', 'impostor', 'touch', join(dir, 'impostor-ran')]);
  expect(impostor.code).toBe(3);
  expect(impostor.stderr).toMatch(
    /^labrig ssh: \[lab:host-key\] host impostor: host key SHA256:\S+ does not match the pinned SHA256:A{43}; refusing to connect$/,
  );
  expect(await stat(join(dir, 'impostor-ran')).catch(() => 'absent')).toBe('absent');
  const gone = await labrig(['ssh', 'gone', 'true']);
  expect(gone.code).toBe(3);
  expect(gone.stderr).toMatch(/^labrig ssh: \[lab:unreachable\] host gone: cannot connect to 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
});

test('ssh without a command: a login shell on a pty sized like the terminal, its exit status ours', async () => {
  const script = join(dir, 'interactive.sh');
  const exitFile = join(dir, 'interactive.exit');
  await writeFile(script, `cd ${repoRoot}\nLABRIG_CONFIG=${configFile} TERM=xterm node bin/labrig.mjs ssh box\necho $? > ${exitFile}\n`);
  const pty = await startPtyProgram(`sh ${script}`);
  const peer = await openPeer(pty.path);
  try {
    // typed before the remote shell reads its terminal, a line can be lost: ask until it answers
    for (let i = 0; ; i++) {
      await peer.write('echo ready-$((6*7))\r');
      const ready = await peer.waitFor('ready-42', 3000).then(
        () => true,
        () => false,
      );
      if (ready) break;
      if (i === 10) throw new Error(`no shell answered on the pty: ${peer.received().toString('utf8').slice(-300)}`);
    }
    await peer.write('stty size; tty; echo "TERM=$TERM"\r');
    await peer.waitFor('TERM=xterm', 20_000);
    const seen = peer.received().toString('utf8');
    expect(seen).toMatch(/\/dev\/pts\/\d+/);
    expect(seen).toMatch(/\b24 80\b/);
    await peer.write('exit 5\r');
    const deadline = Date.now() + 15_000;
    while (!(await fileText(exitFile)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await fileText(exitFile)).toBe('5\n');
  } finally {
    await peer.close();
    await pty.stop();
  }
});

test('lock, who, unlock: a reservation on the host that another engineer cannot take or release without --force', async () => {
  const reason = `bisecting PCIe; don't touch "it" $(reboot)`;
  const lock = await labrig(['lock', 'box', '--reason', reason]);
  expect(lock.code).toBe(0);
  expect(lock.stdout).toMatch(
    new RegExp(
      `^box: reserved by ${me('alice')} since \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ: bisecting PCIe; don't touch "it" \\$\\(reboot\\)$`,
    ),
  );
  const record = await fileText(join(stateDir(), 'reservation'));
  expect(JSON.parse(record!)).toMatchObject({ holder: me('alice'), reason });

  const bob = await labrig(['lock', 'box', '--reason', 'nightly'], { user: 'bob' });
  expect(bob.code).toBe(3);
  expect(bob.stderr.trim().split('\n')).toEqual([
    `labrig lock: [lab:lease-held] box is reserved by ${me('alice')} since ${JSON.parse(record!).since}: ${reason}`,
  ]);
  expect(await fileText(join(stateDir(), 'reservation'))).toBe(record);

  const [who, whoJson] = await Promise.all([labrig(['who'], { user: 'bob' }), labrig(['who', '--json', 'box', 'nopower'])]);
  expect(who.stdout).toMatch(
    new RegExp(`^box +reserved by ${me('alice')} since \\S+Z: bisecting PCIe.*; state good \\(never set\\)$`, 'm'),
  );
  expect(who.stdout).toMatch(/^gone +cannot tell: \[lab:unreachable\]/m);
  expect(who.code).toBe(3);
  expect(whoJson.code).toBe(0);
  expect((JSON.parse(whoJson.stdout) as object[])[0]).toMatchObject({ host: 'box', reservation: { holder: me('alice'), reason } });

  const refused = await labrig(['unlock', 'box'], { user: 'bob' });
  expect(refused.code).toBe(3);
  expect(refused.stderr.trim().split('\n')).toHaveLength(1);
  expect(refused.stderr).toContain(`box is reserved by ${me('alice')}`);
  expect(refused.stderr).toContain('--force');
  expect(await fileText(join(stateDir(), 'reservation'))).toBe(record);

  const forced = await labrig(['unlock', 'box', '--force'], { user: 'bob' });
  expect(forced.code).toBe(0);
  expect(forced.stderr).toContain(`--force: released the reservation of ${me('alice')}`);
  expect(await fileText(join(stateDir(), 'reservation'))).toBeUndefined();
  const log = (await fileText(join(stateDir(), 'log')))!;
  expect(log).toMatch(
    new RegExp(`Z lock \\{"holder":"${me('alice')}"[^\\n]*\\n[^\\n]*Z force-unlock by ${me('bob')} of \\{"holder":"${me('alice')}"`),
  );

  const again = await labrig(['unlock', 'box']);
  expect(again).toMatchObject({ code: 0, stderr: 'labrig unlock: box was not reserved; nothing changed' });
});

test("locking again renews your own reservation with the new reason; every change is in the host's log", async () => {
  const ssh = new SshSession('box', env.config);
  try {
    expect(await lockHost(ssh, stateDir(), me('alice'), 'first')).toMatchObject({ taken: true, renewed: false });
    const renewed = await lockHost(ssh, stateDir(), me('alice'), 'second');
    expect(renewed).toMatchObject({ taken: true, renewed: true, reservation: { reason: 'second' } });
    expect(await unlockHost(ssh, stateDir(), me('alice'), false)).toMatchObject({ released: { reason: 'second' } });
  } finally {
    ssh.close();
  }
  expect(await fileText(join(stateDir(), 'log'))).toMatch(/Z lock .*"first"\}\n.*Z renew .*"second"\}\n.*Z unlock .*"second"\}\n$/);
});

test('doctor fails a host reserved by someone else (the nightly quarantines it with that reason), not its holder; --json', async () => {
  expect((await labrig(['lock', 'box', '--reason', 'firmware update'])).code).toBe(0);
  type Check = { host: string; check: string; ok: boolean; detail: string };
  const [asBob, text, alice] = await Promise.all([
    labrig(['doctor', '--json', 'box'], { user: 'bob' }),
    labrig(['doctor', 'box'], { user: 'bob' }),
    labrig(['doctor', '--json', 'box']),
  ]);
  expect(asBob.code).toBe(3);
  const lockCheck = (JSON.parse(asBob.stdout) as Check[]).find((c) => c.check === 'lock');
  expect(lockCheck).toMatchObject({ host: 'box', ok: false });
  expect(lockCheck!.detail).toMatch(new RegExp(`^reserved by ${me('alice')} since \\S+Z: firmware update$`));
  expect(text.stdout).toMatch(new RegExp(`^FAIL box +lock +reserved by ${me('alice')} since \\S+: firmware update$`, 'm'));
  const asAlice = JSON.parse(alice.stdout) as Check[];
  expect(asAlice.find((c) => c.check === 'lock')).toMatchObject({ ok: true });
  expect((await labrig(['unlock', 'box'])).code).toBe(0);
});

test('state: maintenance survives until set back, and doctor fails the host naming the state', async () => {
  expect(await labrig(['state', 'box'])).toMatchObject({ code: 0, stdout: 'box: good (never set)' });
  const set = await labrig(['state', 'box', 'maintenance', '--reason', 'PSU swap'], { user: 'carol' });
  expect(set.code).toBe(0);
  expect(set.stdout).toMatch(new RegExp(`^box: maintenance since \\S+Z \\(set by ${me('carol')}\\): PSU swap$`));
  expect((await labrig(['state', 'box'])).stdout).toBe(set.stdout);
  const checks = JSON.parse((await labrig(['doctor', '--json', 'box'])).stdout) as { check: string; ok: boolean; detail: string }[];
  expect(checks.find((c) => c.check === 'state')).toMatchObject({
    ok: false,
    detail: expect.stringMatching(/^maintenance since .*: PSU swap$/),
  });
  expect((await labrig(['state', 'box', 'good', '--reason', 'new PSU'])).code).toBe(0);
  const after = JSON.parse((await labrig(['doctor', '--json', 'box'])).stdout) as { check: string; ok: boolean }[];
  expect(after.find((c) => c.check === 'state')).toMatchObject({ ok: true });
  expect(await fileText(join(stateDir(), 'log'))).toMatch(
    /state \{"state":"maintenance".*"PSU swap"\}\n.*state \{"state":"good".*"new PSU"\}\n$/,
  );
});

test('console takes the lease: refused naming the run that holds it, attached once it is free, and released', async () => {
  const ssh = new SshSession('nightly', env.config);
  const lease = await acquireLease(ssh, {
    path: leasePath(),
    runId: 'nightly-42',
    ttlMs: 60_000,
    heartbeatMs: 1000,
    waitMs: 0,
    recorder: silentRecorder,
  });
  try {
    const refused = await labrig(['console', 'box']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/^labrig console: \[lab:lease-held\] host box: .*held by \S+ pid \d+ \(run nightly-42\) since /);
  } finally {
    await lease.release();
    ssh.close();
  }
  const attached = await labrig(['console', 'box']);
  expect(attached.code).toBe(0);
  expect(attached.stderr).toContain('labrig: attached to box');
  expect(await fileText(`${leasePath()}.log`)).toMatch(/acquired .*"runId":"labrig-console".*\n.*released .*"runId":"labrig-console"/);
});

test('two engineers locking at the same moment: exactly one gets the reservation', async () => {
  const dirRace = join(dir, 'race');
  const sessions = ['a', 'b', 'c', 'd'].map((n) => new SshSession(n, env.config));
  try {
    const results = await Promise.all(sessions.map((s, i) => lockHost(s, dirRace, `eng${i}@x`, 'race')));
    expect(results.filter((r) => r.taken)).toHaveLength(1);
  } finally {
    sessions.forEach((s) => s.close());
  }
});

test('a reservation file that is not ours is read as reserved, never as free', async () => {
  const marks = parseMarks('@@reservation present\nrm -rf /\n@@state absent\n', '/var/lib/labrig');
  expect(marks.reservation).toEqual({ unreadable: '/var/lib/labrig/reservation is not a labrig record: "rm -rf /"' });
  await writeFile(join(stateDir(), 'reservation'), 'garbage');
  const lock = await labrig(['lock', 'box', '--reason', 'x']);
  expect(lock.code).toBe(3);
  expect(lock.stderr).toContain('box is reserved, but');
  const checks = JSON.parse((await labrig(['doctor', '--json', 'box'])).stdout) as { check: string; ok: boolean }[];
  expect(checks.find((c) => c.check === 'lock')).toMatchObject({ ok: false });
  expect((await labrig(['unlock', 'box', '--force'])).code).toBe(0);
});

test('lab status --json and lab with an unknown host, on a private run dir (nothing started)', async () => {
  const runDir = join(dir, 'run');
  const status = await labrig(['lab', 'status', '--json'], { env: { LABRIG_RUN_DIR: runDir } });
  expect(status.code).toBe(3);
  const rows = JSON.parse(status.stdout) as { name: string; state: string }[];
  expect(rows.map((r) => r.name)).toContain('emu-mini');
  expect(rows.every((r) => r.state === 'down')).toBe(true);
  const up = await labrig(['lab', 'up', 'emu-nope'], { env: { LABRIG_RUN_DIR: runDir } });
  expect(up.code).toBe(2);
  expect(up.stderr).toBe('labrig lab up: no emulated host "emu-nope" (hosts: emu-arm64, emu-mini, emu-xen, emu-x86-pmem)');
  expect(await stat(runDir).catch(() => 'absent')).toBe('absent');
});
