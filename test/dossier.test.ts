/**
 * labrig dossier: an archived run made the real way (test/fixtures/runs/) packed into one
 * .tar.gz through the CLI, verified, tampered with by unpacking and repacking with the system
 * tar, and refused when a secret of the lab config shows up in what would leave the lab.
 */
import { test, expect } from '@playwright/test';
import { appendFile, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { buildDossier } from '../reports/dossier.js';
import { dossierManifestSchema } from '../reports/dossier-verify.js';
import { findExternalLoadsInHtml } from '../reports/external.js';
import { readTarGz } from '../reports/tar.js';
import { makeRun } from './fixtures/runs/make-run.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
let work = '';
let runDir = '';
let archive = '';

async function labrig(...args: string[]) {
  return execa(process.execPath, [join(repoRoot, 'bin', 'labrig.mjs'), ...args], { cwd: repoRoot, reject: false, timeout: 120_000 });
}

async function sh(cmd: string, args: string[]): Promise<void> {
  await execa(cmd, args, { timeout: 60_000 });
}

/** Unpacks, lets `change` alter the tree, and repacks under a new name, as anyone holding the archive could. */
async function tampered(name: string, change: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(work, `unpacked-${name}`);
  await mkdir(dir, { recursive: true });
  await sh('tar', ['-xzf', archive, '-C', dir]);
  await change(dir);
  const out = join(work, `${name}.tar.gz`);
  await sh('tar', ['-czf', out, '-C', dir, '.']);
  return out;
}

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  test.setTimeout(180_000);
  work = await mkdtemp(join(tmpdir(), 'labrig-dossier-'));
  runDir = await makeRun(work, 'run-d', { qemu: '8.2.1', kernel: '6.1.0-27-arm64', ceiling: 'none-below-28', wallS: 131, boot: 'ok', ssh: 'ok' });
  archive = join(work, 'dossier-run-d.tar.gz');
});

test.afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

test('a fresh dossier holds the run and verifies', async () => {
  const made = await labrig('dossier', runDir, '--out', archive);
  expect(made.exitCode, made.stderr).toBe(0);
  expect(made.stdout).toMatch(/manifest sha256: [0-9a-f]{64}/);

  const entries = await readTarGz(archive);
  const names = entries.map((e) => e.name).sort();
  expect(names).toEqual(['findings.json', 'lab.json', 'logs/emu-arm64-console.log', 'manifest.json', 'report.html', 'run-manifest.json']);
  const manifest = dossierManifestSchema.parse(JSON.parse(entries.find((e) => e.name === 'manifest.json')!.data.toString('utf8')));
  expect(Object.keys(manifest.files).sort()).toEqual(names.filter((n) => n !== 'manifest.json'));
  expect(manifest).toMatchObject({ runId: 'run-d', gitRevision: 'rev-run-d', versions: { 'emu-arm64': { qemu: '8.2.1', xen: null } } });
  // The files are the run's own, byte for byte.
  for (const name of ['findings.json', 'lab.json']) {
    expect(entries.find((e) => e.name === name)!.data.equals(await readFile(join(runDir, name))), name).toBe(true);
  }
  expect(entries.find((e) => e.name === 'logs/emu-arm64-console.log')!.data.toString()).toContain('probe: none-below-28 root ports');

  const verified = await labrig('dossier', '--verify', archive);
  expect(verified.exitCode, verified.stdout + verified.stderr).toBe(0);
  expect(verified.stdout).toContain('ok: ');
  expect(verified.stdout).toContain(made.stdout.match(/manifest sha256: ([0-9a-f]{64})/)![1]!);
});

test('the report is one file that loads nothing from outside and carries the run', async () => {
  const html = (await readTarGz(archive)).find((e) => e.name === 'report.html')!.data.toString('utf8');
  expect(html).not.toContain('googletagmanager');
  expect(html).not.toContain('gtag(');
  expect(html.match(/\b(?:src|href)\s*=\s*["']?(?:https?:)?\/\/[^"'\s>]*/gi) ?? []).toEqual([]);
  expect(findExternalLoadsInHtml(html, 'report.html')).toEqual([]);
  // singleFile mode inlines every data file as d("<path>", "<base64>"): the tests and their evidence are in the page.
  const embedded = new Map([...html.matchAll(/d\("([^"]+)","([A-Za-z0-9+/=]*)"\)/g)].map((m) => [m[1]!, Buffer.from(m[2]!, 'base64').toString('utf8')]));
  const testResults = [...embedded].filter(([path]) => path.startsWith('data/test-results/')).map(([, body]) => body).join('\n');
  for (const name of ['root port ceiling on newest', 'guest boots to init', 'host answers over ssh']) expect(testResults).toContain(name);
  expect([...embedded].some(([path, body]) => path.startsWith('data/attachments/') && body.includes('probe: none-below-28 root ports'))).toBe(true);
});

test('one byte changed in one file: verify fails naming that file, and only it', async () => {
  const flipped = await tampered('flipped', async (dir) => {
    const path = join(dir, 'logs', 'emu-arm64-console.log');
    const bytes = await readFile(path);
    bytes[3] = bytes[3]! ^ 0x01;
    await writeFile(path, bytes);
  });
  const r = await labrig('dossier', '--verify', flipped);
  expect(r.exitCode).toBe(1);
  const problems = r.stdout.trim().split('\n').slice(0, -1);
  expect(problems).toHaveLength(1);
  expect(problems[0]).toMatch(/^differs +logs\/emu-arm64-console\.log +\(sha256 [0-9a-f]{64}, manifest says [0-9a-f]{64}\)$/);
  expect(r.stdout).toContain('FAILED');
});

test('a file taken out and one slipped in: verify names both', async () => {
  const swapped = await tampered('swapped', async (dir) => {
    await rm(join(dir, 'lab.json'));
    await writeFile(join(dir, 'logs', 'note.txt'), 'added later\n');
  });
  const r = await labrig('dossier', '--verify', swapped);
  expect(r.exitCode).toBe(1);
  expect(r.stdout).toMatch(/^missing +lab\.json$/m);
  expect(r.stdout).toMatch(/^extra +logs\/note\.txt/m);
  expect(r.stdout).not.toMatch(/differs/);
});

test('a secret of the lab config in a log, or a private key in lab.json: no dossier, the value never printed', async () => {
  const password = 'ipmi-Secret-4711';
  const leaky = join(work, 'leaky-run');
  await cp(runDir, leaky, { recursive: true });
  await appendFile(join(leaky, 'logs', 'emu-arm64-console.log'), `ipmitool -P ${password} chassis status\n`);
  const out = join(work, 'leaky.tar.gz');
  const env = { LABRIG_FIXTURE_IPMI_PASSWORD: password };
  const failure = await buildDossier({ run: leaky, out, env }).then(() => null, (e: Error) => e.message);
  expect(failure).toContain('logs/emu-arm64-console.log: the value of $LABRIG_FIXTURE_IPMI_PASSWORD');
  expect(failure).not.toContain(password);
  expect(await stat(out).catch(() => null)).toBeNull();
  // Without the value in the environment there is nothing to look for: the same run packs.
  await buildDossier({ run: leaky, out, env: {} });
  await rm(out);

  const keyed = join(work, 'keyed-run');
  await cp(runDir, keyed, { recursive: true });
  const lab = JSON.parse(await readFile(join(keyed, 'lab.json'), 'utf8')) as { hosts: { ssh: Record<string, unknown> }[] };
  lab.hosts[0]!.ssh.identityFile = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----';
  await writeFile(join(keyed, 'lab.json'), JSON.stringify(lab, null, 2));
  await expect(buildDossier({ run: keyed, out, env: {} })).rejects.toThrow(/lab\.json: a private key/);
  expect((await readdir(work)).filter((n) => n.startsWith('leaky.tar.gz'))).toEqual([]);
});

test('the verifier reads what GNU tar writes for long names, gnu and pax formats alike', async () => {
  const dir = join(work, 'long');
  const longName = `logs/${'very-long-host-name-'.repeat(8)}console.log`;
  await mkdir(join(dir, 'logs'), { recursive: true });
  await writeFile(join(dir, longName), 'x\n');
  for (const format of ['gnu', 'posix']) {
    const out = join(work, `long-${format}.tar.gz`);
    await sh('tar', ['-czf', out, `--format=${format}`, '-C', dir, longName]);
    expect((await readTarGz(out)).map((e) => [e.name, e.type, e.data.toString()])).toEqual([[longName, 'file', 'x\n']]);
  }
});
