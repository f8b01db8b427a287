/**
 * `labrig run` as a lab engineer runs it against their own lab: the config kept outside this
 * checkout, the output folder one that does not exist yet, and an exit code that says what
 * happened — 0 all passed, 1 a product failure, 2 a bad config or usage, 3 a lab failure (here:
 * every host quarantined, so nothing was tested). The host is a real local sshd; the suite is
 * host-facts (role `local`).
 */

import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import type { SshConfig } from '../drivers/ssh-options.js';
import { freePort } from './helpers/free-port.js';
import { testSshd } from './helpers/sshd.js';

test.describe.configure({ mode: 'serial' });

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
let work: string;
let ssh: SshConfig;
let cleanup: (() => Promise<void>) | undefined;

test.beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'labrig-run-codes-'));
  const s = await testSshd();
  ssh = s.config;
  cleanup = s.cleanup;
});

test.afterAll(async () => {
  await cleanup?.();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A lab config in its own folder (no package.json, no import of labrig), as a lab repository keeps it. */
async function labConfig(name: string, host: Record<string, unknown>): Promise<string> {
  const file = join(work, name, 'lab.config.ts');
  await execa('mkdir', ['-p', join(work, name)]);
  const lab = { name, lease: { path: join(work, name, 'labrig.lease') }, labRetries: 0, hosts: [host] };
  await writeFile(file, `// a lab repository's own config\nexport const lab = ${JSON.stringify(lab, null, 2)};\n`);
  return file;
}

const localHost = (extra: Record<string, unknown> = {}) => ({
  name: 'local-sshd',
  role: ['local'],
  ssh: { address: ssh.address, port: ssh.port, user: ssh.user, identityFile: ssh.identityFile, hostKey: ssh.hostKey },
  expect: { arch: process.arch === 'arm64' ? 'aarch64' : 'x86_64' },
  ...extra,
});

async function run(config: string, name: string, args: string[] = []) {
  const out = join(work, name, 'nested', 'out');
  const r = await execa(process.execPath, [join(repoRoot, 'bin/labrig.mjs'), 'run', ...args], {
    cwd: work,
    reject: false,
    all: true,
    timeout: 5 * 60_000,
    env: {
      LABRIG_CONFIG: config,
      LABRIG_OUT_DIR: out,
      LABRIG_RUNS_DIR: join(work, name, 'runs'),
      LABRIG_HISTORY: join(work, name, 'history.jsonl'),
    },
  });
  return { ...r, out };
}

test('a healthy host that passes: exit 0, output in the folder named, run archived', async () => {
  test.setTimeout(5 * 60_000);
  const r = await run(await labConfig('pass', localHost()), 'pass');
  expect(r.exitCode, r.all).toBe(0);
  expect(r.all).toMatch(/verdict: {2}exit 0/);
  for (const f of ['lab.json', 'junit.xml', 'findings.json', 'manifest.json', 'allure-report/index.html'])
    expect(existsSync(join(r.out, f)), f).toBe(true);
  const runs = await readdir(join(work, 'pass', 'runs'));
  expect(runs).toHaveLength(1);
  const manifest = JSON.parse(await readFile(join(r.out, 'manifest.json'), 'utf8')) as { runId: string };
  expect(runs[0]).toBe(manifest.runId);
});

test('a product failure: exit 1', async () => {
  test.setTimeout(5 * 60_000);
  // Declared a CPU frequency this host's dmidecode cannot confirm: the facts test fails on the product.
  const r = await run(
    await labConfig('product', localHost({ expect: { arch: process.arch === 'arm64' ? 'aarch64' : 'x86_64', cpuMhz: 1 } })),
    'product',
  );
  expect(r.exitCode, r.all).toBe(1);
  expect(r.all).toMatch(/verdict: {2}exit 1: 1 product failure/);
  const junit = await readFile(join(r.out, 'junit.xml'), 'utf8');
  expect(junit).toMatch(/<testcase name="\[local-sshd\] [^"]*CPU frequency/);
  expect(junit).toMatch(/<failure /);
});

test('every host quarantined (unreachable): exit 3, nothing tested', async () => {
  test.setTimeout(5 * 60_000);
  const port = await freePort();
  const r = await run(
    await labConfig(
      'quarantined',
      localHost({ ssh: { address: '127.0.0.1', port, hostKey: ssh.hostKey, identityFile: ssh.identityFile, connectTimeoutMs: 2000 } }),
    ),
    'quarantined',
  );
  expect(r.exitCode, r.all).toBe(3);
  expect(r.all).toMatch(/quarantined local-sshd/);
  expect(r.all).toMatch(/verdict: {2}exit 3: quarantined: local-sshd/);
});

test('a config that does not validate: exit 2 naming the field, nothing run', async () => {
  const file = await labConfig('bad', { ...localHost(), ssh: { address: '127.0.0.1' } });
  const r = await run(file, 'bad');
  expect(r.exitCode, r.all).toBe(2);
  expect(r.all).toMatch(/hosts\[0\]\.ssh\.hostKey/);
  expect(existsSync(join(r.out, 'allure-results'))).toBe(false);
});

test('a project that is not a host of the lab: exit 2 naming the hosts', async () => {
  const r = await run(await labConfig('usage', localHost()), 'usage', ['--project=no-such-host']);
  expect(r.exitCode, r.all).toBe(2);
  expect(r.all).toMatch(/no host no-such-host in lab usage; its hosts: local-sshd/);
});
