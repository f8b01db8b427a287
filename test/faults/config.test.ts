/**
 * Fault rows: hostile or broken input from the file system. A malformed lab config is refused
 * naming the field; an emulated lab run directory someone else planted (another owner, a mode
 * that lets others write, a symbolic link, a swappable parent) is refused before anything in it
 * is read or run; a lab file that does not parse (state.json, quarantine.json, an attempt
 * record, a cached image manifest) is a lab failure naming the file.
 */

import { chmod, chown, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import { LabError } from '../../drivers/errors.js';
import { cachedImage } from '../../images/cache.js';
import { loadLab } from '../../targets/config.js';
import { emulatedLab, labStatus, labUp } from '../../targets/emulated/lab.js';
import { ensureRunDir, readState, runDirOf } from '../../targets/emulated/state.js';
import { readQuarantine } from '../../targets/quarantine.js';
import { readAttempt } from '../../targets/retry-policy.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const NOBODY = 65534;
const key = `SHA256:${'x'.repeat(43)}`;
let work = '';

async function labrig(args: string[], env: Record<string, string>) {
  return execa(process.execPath, [join(repoRoot, 'bin', 'labrig.mjs'), ...args], { cwd: repoRoot, env, reject: false, timeout: 120_000 });
}

/** The error `body` throws (sync or async), or undefined. */
async function thrown(body: () => unknown): Promise<unknown> {
  try {
    await body();
  } catch (e) {
    return e;
  }
  return undefined;
}

function expectLabSetup(e: unknown, ...fragments: string[]): void {
  expect(e).toBeInstanceOf(LabError);
  expect((e as LabError).kind).toBe('lab-setup');
  for (const f of fragments) expect((e as Error).message).toContain(f);
}

/** A run dir as `lab up` leaves it, with a client key pair and a state.json whose startArgv runs a command. */
async function plantRunDir(dir: string): Promise<void> {
  await mkdir(join(dir, 'emu-arm64'), { recursive: true });
  await writeFile(
    join(dir, 'emu-arm64', 'id_ed25519'),
    '-----BEGIN OPENSSH PRIVATE KEY-----\nplanted\n-----END OPENSSH PRIVATE KEY-----\n',
  );
  await writeFile(join(dir, 'emu-arm64', 'id_ed25519.pub'), 'ssh-ed25519 AAAAplanted attacker\n');
  const host = {
    kind: 'qemu',
    name: 'emu-mini',
    pid: process.pid,
    startArgv: ['/bin/sh', '-c', 'touch /tmp/pwned'],
    qmpSocket: 'x',
    labQmpSocket: 'y',
  };
  await writeFile(join(dir, 'state.json'), JSON.stringify({ version: 1, runDir: dir, hosts: { 'emu-mini': host } }));
}

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'labrig-fault-config-'));
});

test.afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

const malformed: Array<[string, Record<string, unknown>, Record<string, unknown>, string]> = [
  [
    'console baud misspelt',
    { console: { kind: 'serial', path: '/dev/ttyS0', buad: 115200 } },
    {},
    'hosts[0].console: Unrecognized key: "buad"',
  ],
  [
    'console telnet misspelt',
    { console: { kind: 'tcp', address: 'ser2net', port: 7001, telent: true } },
    {},
    'hosts[0].console: Unrecognized key: "telent"',
  ],
  [
    'lease TTL below the heartbeat',
    {},
    { lease: { ttlMs: 10_000, heartbeatMs: 20_000 } },
    'lease.ttlMs: must be more than lease.heartbeatMs (20000)',
  ],
  ['lease path relative', {}, { lease: { path: 'labrig.lease' } }, 'lease.path: an absolute path on the host'],
  ['keepalive zero', { ssh: { address: '127.0.0.1', identityFile: '/k', hostKey: key, keepaliveMs: 0 } }, {}, 'hosts[0].ssh.keepaliveMs:'],
  [
    'a password where secretEnv wants a name',
    { power: { kind: 'command', on: ['a'], off: ['b'], status: ['c'], secretEnv: ['s3cr3t pass'] } },
    {},
    'hosts[0].power.secretEnv[0]: an environment variable NAME',
  ],
];

for (const [what, hostOver, labOver, path] of malformed) {
  test(`a lab config file with ${what} is refused naming ${path.split(':')[0]}`, async () => {
    const file = join(work, `${what.replace(/\W+/g, '-')}.config.mjs`);
    const lab = {
      name: 'bad',
      hosts: [
        {
          name: 'h1',
          role: 'local',
          ssh: { address: '127.0.0.1', identityFile: '/k', hostKey: key },
          expect: { arch: 'x86_64' },
          ...hostOver,
        },
      ],
      ...labOver,
    };
    await writeFile(file, `export const lab = ${JSON.stringify(lab)};\n`);
    const e = await thrown(() => loadLab(file));
    expect(e).toBeInstanceOf(LabError);
    expect((e as LabError).kind).toBe('config');
    expect((e as Error).message).toContain(`${file} is not valid`);
    expect((e as Error).message).toContain(path);
  });
}

test('labrig doctor on a config with a console typo: exit 1, the file and the field named', async () => {
  const file = join(work, 'typo.config.mjs');
  const lab = {
    name: 'bad',
    hosts: [
      {
        name: 'h1',
        role: 'local',
        ssh: { address: '127.0.0.1', identityFile: '/k', hostKey: key },
        expect: { arch: 'x86_64' },
        console: { kind: 'serial', path: '/dev/ttyS0', buad: 9600 },
      },
    ],
  };
  await writeFile(file, `export const lab = ${JSON.stringify(lab)};\n`);
  const r = await labrig(['doctor'], { LABRIG_CONFIG: file });
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toContain(`[lab:config] ${file} is not valid`);
  expect(r.stderr).toContain('hosts[0].console: Unrecognized key: "buad"');
});

test('the default run dir is private and not a predictable /tmp path', () => {
  const saved = process.env.LABRIG_RUN_DIR;
  delete process.env.LABRIG_RUN_DIR;
  try {
    expect(runDirOf()).toBe(join(homedir(), '.cache', 'labrig', 'run'));
  } finally {
    if (saved !== undefined) process.env.LABRIG_RUN_DIR = saved;
  }
  expect(runDirOf(join(work, 'explicit'))).toBe(join(work, 'explicit'));
});

test('a new run dir is made 0700; one of ours that others can read is tightened to 0700', async () => {
  const fresh = join(work, 'fresh', 'run');
  ensureRunDir(fresh);
  expect((await stat(fresh)).mode & 0o777).toBe(0o700);
  const loose = join(work, 'loose');
  await mkdir(loose, { mode: 0o755 });
  await chmod(loose, 0o755);
  ensureRunDir(loose);
  expect((await stat(loose)).mode & 0o777).toBe(0o700);
});

test('a run dir another user owns, with a planted key pair and state.json: refused, nothing of it read or run', async () => {
  const planted = join(work, 'planted-owner');
  await plantRunDir(planted);
  await chmod(planted, 0o700);
  await chown(planted, NOBODY, NOBODY);
  const why = `it is owned by uid ${NOBODY}, not by us (uid ${process.getuid!()})`;
  expectLabSetup(await thrown(() => readState(planted)), `refusing the emulated lab run directory ${planted}`, why);
  expectLabSetup(await thrown(() => emulatedLab({ runDir: planted })), why);
  expectLabSetup(await thrown(() => labStatus({ runDir: planted })), why);
  // lab up refuses before it locks, builds or starts anything.
  const t0 = Date.now();
  expectLabSetup(await thrown(() => labUp({ runDir: planted, hosts: ['emu-mini'] })), why);
  expect(Date.now() - t0).toBeLessThan(5000);
  expect(await readdir(planted)).toEqual(['emu-arm64', 'state.json']);

  const r = await labrig(['lab', 'status'], { LABRIG_RUN_DIR: planted });
  expect(r.exitCode).toBe(3);
  expect(r.stderr).toContain(`[lab:lab-setup] refusing the emulated lab run directory ${planted}: ${why}`);
});

test('a run dir others can write, a symbolic link, or one under a swappable parent: refused', async () => {
  const open = join(work, 'planted-mode');
  await plantRunDir(open);
  await chmod(open, 0o777);
  expectLabSetup(await thrown(() => readState(open)), 'its mode 0777 lets anyone write in it');
  await chmod(open, 0o770);
  expectLabSetup(await thrown(() => ensureRunDir(open)), 'its mode 0770 lets its group write in it');

  const link = join(work, 'planted-link');
  await symlink(open, link);
  expectLabSetup(await thrown(() => readState(link)), 'it is a symbolic link');

  const parent = join(work, 'world-writable');
  await mkdir(join(parent, 'run'), { recursive: true, mode: 0o700 });
  await chmod(parent, 0o777);
  expectLabSetup(await thrown(() => ensureRunDir(join(parent, 'run'))), `its parent ${parent} is writable by others and not sticky`);
  expectLabSetup(await thrown(() => ensureRunDir(join(parent, 'not-yet'))), `its parent ${parent} is writable by others and not sticky`);
  expect(await readdir(parent)).toEqual(['run']);
});

test("a state.json in our run dir that is someone else's, or not JSON: refused, the file named", async () => {
  const dir = join(work, 'ours');
  ensureRunDir(dir);
  await writeFile(join(dir, 'state.json'), '{"version":1,"runDir":');
  expectLabSetup(await thrown(() => readState(dir)), `${join(dir, 'state.json')} is not valid JSON`);
  expectLabSetup(await thrown(() => labStatus({ runDir: dir })), `${join(dir, 'state.json')} is not valid JSON`);
  await writeFile(join(dir, 'state.json'), JSON.stringify({ version: 1, runDir: dir, hosts: {} }));
  await chown(join(dir, 'state.json'), NOBODY, NOBODY);
  expectLabSetup(await thrown(() => readState(dir)), `refusing ${join(dir, 'state.json')}: not a regular file of ours`);
});

test('quarantine.json, an attempt record or a cached image manifest that does not parse: a lab failure naming the file', async () => {
  const quarantine = join(work, 'quarantine.json');
  await writeFile(quarantine, '{"emu-mini": "ssh: refused",');
  expectLabSetup(await thrown(() => readQuarantine(quarantine)), `quarantine file ${quarantine} is not valid JSON`);
  await writeFile(quarantine, '{"emu-mini": 3}');
  expectLabSetup(await thrown(() => readQuarantine(quarantine)), `quarantine file ${quarantine} is not a map of host → reason`);
  await writeFile(quarantine, '{"emu-mini": "ssh: refused"}');
  expect(readQuarantine(quarantine)).toEqual({ 'emu-mini': 'ssh: refused' });

  const attempt = join(work, 'attempt.json');
  await writeFile(attempt, '{"retry":0,"lab":fal');
  expectLabSetup(await thrown(() => readAttempt(attempt)), `attempt record ${attempt} is not valid JSON`);
  await writeFile(attempt, '{"retry":0}');
  expectLabSetup(await thrown(() => readAttempt(attempt)), `attempt record ${attempt} is not an attempt record`);
  expect(await readAttempt(join(work, 'no-such-attempt.json'))).toBeUndefined();

  const saved = process.env.LABRIG_CACHE;
  process.env.LABRIG_CACHE = join(work, 'cache');
  try {
    const image = join(work, 'cache', 'images', 'broken-0123');
    await mkdir(image, { recursive: true });
    await writeFile(join(image, 'manifest.json'), '{"name":');
    const e = await thrown(() =>
      cachedImage(
        'broken',
        '0123',
        () => undefined,
        async () => {
          throw new Error('not reached');
        },
      ),
    );
    expectLabSetup(e, `cached image manifest ${join(image, 'manifest.json')} is unreadable`);
  } finally {
    if (saved === undefined) delete process.env.LABRIG_CACHE;
    else process.env.LABRIG_CACHE = saved;
  }
});
