/**
 * labrig dossier: an archived run made the real way (test/fixtures/runs/) packed into one
 * .tar.gz through the CLI, verified, tampered with by unpacking and repacking with the system
 * tar, and refused when a secret of the lab config shows up in what would leave the lab.
 */

import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { appendFile, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip, gzipSync } from 'node:zlib';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import type { Headers } from 'tar-stream';
import * as tarStream from 'tar-stream';
import { buildDossier } from '../reports/dossier.js';
import { findSecrets } from '../reports/dossier-secrets.js';
import { dossierManifestSchema, verifyDossier } from '../reports/dossier-verify.js';
import { findExternalLoadsInHtml } from '../reports/external.js';
import { DEFAULT_TAR_LIMITS, readTarGz } from '../reports/tar.js';
import { redactor } from '../targets/recorders.js';
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

/** Another night's findings and manifest beside `like` (what compare and trend read of a kept run), `days` from it. */
async function keepNight(like: string, runId: string, days: number, n: { qemu: string; wallS: number }): Promise<void> {
  const dir = join(like, '..', runId);
  await mkdir(dir, { recursive: true });
  const manifest = JSON.parse(await readFile(join(like, 'manifest.json'), 'utf8')) as {
    runId: string;
    createdAt: string;
    hosts: Record<string, { facts: Record<string, unknown> }>;
  };
  manifest.runId = runId;
  manifest.createdAt = new Date(Date.parse(manifest.createdAt) + days * 86_400_000).toISOString();
  manifest.hosts['emu-arm64']!.facts.qemu = n.qemu;
  const findings = (JSON.parse(await readFile(join(like, 'findings.json'), 'utf8')) as { key: string; value: unknown }[]).map((f) =>
    f.key === 'wall_s_newest' ? { ...f, value: n.wallS } : f.key === 'qemu' ? { ...f, value: n.qemu } : f,
  );
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
  await writeFile(join(dir, 'findings.json'), JSON.stringify(findings));
}

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  test.setTimeout(180_000);
  work = await mkdtemp(join(tmpdir(), 'labrig-dossier-'));
  runDir = await makeRun(work, 'run-d', {
    qemu: '8.2.1',
    kernel: '6.1.0-27-arm64',
    ceiling: 'none-below-28',
    wallS: 131,
    boot: 'ok',
    ssh: 'ok',
  });
  // The night before (an older QEMU) and the night after, kept beside it: the dossier's trend runs up to run-d, no further.
  await keepNight(runDir, 'run-c', -1, { qemu: '7.2.0', wallS: 118 });
  await keepNight(runDir, 'run-e', +1, { qemu: '8.2.1', wallS: 140 });
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
  expect(names).toEqual([
    'findings.json',
    'lab.json',
    'logs/emu-arm64-console.log',
    'manifest.json',
    'report.html',
    'run-manifest.json',
    'trends.html',
  ]);
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
  const embedded = new Map(
    [...html.matchAll(/d\("([^"]+)","([A-Za-z0-9+/=]*)"\)/g)].map((m) => [m[1]!, Buffer.from(m[2]!, 'base64').toString('utf8')]),
  );
  const testResults = [...embedded]
    .filter(([path]) => path.startsWith('data/test-results/'))
    .map(([, body]) => body)
    .join('\n');
  for (const name of ['root port ceiling on newest', 'guest boots to init', 'host answers over ssh']) expect(testResults).toContain(name);
  expect(
    [...embedded].some(([path, body]) => path.startsWith('data/attachments/') && body.includes('probe: none-below-28 root ports')),
  ).toBe(true);
});

test('the trend charts: in the dossier and inside its report, the kept runs up to this one', async () => {
  const entries = await readTarGz(archive);
  const page = entries.find((e) => e.name === 'trends.html')!.data.toString('utf8');
  expect(findExternalLoadsInHtml(page, 'trends.html')).toEqual([]);
  const start = page.indexOf('<figure data-series="pcie-root-ports/emu-arm64/wall_s_newest">');
  const chart = page.slice(start, page.indexOf('</figure>', start));
  expect([...chart.matchAll(/data-run="([^"]+)" data-value="([^"]+)"/g)].map((m) => [m[1], Number(m[2])])).toEqual([
    ['run-c', 118],
    ['run-d', 131],
  ]);
  expect(chart).toContain('qemu 7.2.0 → 8.2.1');
  // The report embeds the same page as a global attachment (singleFile: every data file inlined).
  const html = entries.find((e) => e.name === 'report.html')!.data.toString('utf8');
  const embedded = [...html.matchAll(/d\("([^"]+)","([A-Za-z0-9+/=]*)"\)/g)].map(
    (m) => [m[1]!, Buffer.from(m[2]!, 'base64').toString('utf8')] as const,
  );
  const globals = JSON.parse(embedded.find(([path]) => path === 'widgets/globals.json')![1]) as {
    attachments: { id: string; name: string; ext: string }[];
  };
  const attached = globals.attachments.find((a) => a.name === 'trends.html')!;
  expect(embedded.find(([path]) => path === `data/attachments/${attached.id}${attached.ext}`)?.[1]).toBe(page);
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

test('a secret in a raw log is masked in the dossier; one in the report evidence, or a private key in lab.json: no dossier, the value never printed', async () => {
  const password = 'ipmi-Secret-4711';
  const env = { LABRIG_FIXTURE_IPMI_PASSWORD: password };
  const leaky = join(work, 'leaky-run');
  await cp(runDir, leaky, { recursive: true });
  await appendFile(join(leaky, 'logs', 'emu-arm64-console.log'), `ipmitool -P ${password} chassis status\n`);
  const masked = join(work, 'masked.tar.gz');
  await buildDossier({ run: leaky, out: masked, env });
  const log = (await readTarGz(masked)).find((e) => e.name === 'logs/emu-arm64-console.log')!.data.toString();
  expect(log).toContain('ipmitool -P *** chassis status');
  expect(log).not.toContain(password);
  // The run's own log is evidence as recorded: only what leaves is masked.
  expect(await readFile(join(leaky, 'logs', 'emu-arm64-console.log'), 'utf8')).toContain(password);

  // In an Allure attachment the report embeds, JSON-escaped: the report cannot be masked after the fact.
  const results = join(leaky, 'allure-results-merged');
  const attachment = (await readdir(results)).find((n) => n.endsWith('-attachment.txt') || n.endsWith('-attachment.log'))!;
  await appendFile(join(results, attachment), JSON.stringify({ said: `the BMC password is "${password}"` }));
  const out = join(work, 'leaky.tar.gz');
  const failure = await buildDossier({ run: leaky, out, env }).then(
    () => null,
    (e: Error) => e.message,
  );
  expect(failure).toContain(`report.html (from ${attachment}): the value of $LABRIG_FIXTURE_IPMI_PASSWORD`);
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

test('the secret scan finds a password with " < & é however it was written, and only that password', () => {
  const password = 'pa"ss<w&rd-é-ß';
  const secrets = [{ name: 'BMC_PASSWORD', needles: [password] }];
  const xml = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
  const written: Array<[string, string]> = [
    ['raw', `login ${password} ok`],
    ['JSON', JSON.stringify({ message: `login ${password}` })],
    [
      'JSON with \\u escapes',
      JSON.stringify({ m: password }).replace(
        /[\u0080-\uffff]/g,
        (c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`,
      ),
    ],
    ['JSON in a JSON string', JSON.stringify({ body: JSON.stringify({ m: password }) })],
    ['XML attribute', `<failure message="${xml(password)}"/>`],
    ['XML numeric references', '<s>pa&#34;ss&#x3C;w&#38;rd-&#233;-&#xdf;</s>'],
    ['UTF-8 bytes read as latin1', Buffer.from(`x ${password} y`, 'utf8').toString('latin1')],
  ];
  for (const [how, text] of written) {
    expect(
      findSecrets(text, 'f', secrets).map((h) => h.what),
      how,
    ).toEqual(['the value of $BMC_PASSWORD']);
    expect(redactor([password])(text), how).not.toMatch(/pa.{0,12}ss.{0,12}w.{0,12}rd/);
  }
  for (const near of ['pa"ss<w&rd-e-ß', 'pa"ss<w&rd-é', password.toUpperCase()])
    expect(findSecrets(`x ${near} y`, 'f', secrets), near).toEqual([]);
  expect(redactor([password])(`login ${password} ok`)).toBe('login *** ok');
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

/** A .tar.gz written member by member with tar-stream, as a hostile sender could write it. */
async function packTarGz(
  path: string,
  members: Array<{ header: Headers; body?: string | Buffer }>,
  patch?: (tar: Buffer) => void,
): Promise<void> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise((r) => pack.on('end', r));
  for (const m of members) await new Promise<void>((res, rej) => pack.entry(m.header, m.body ?? '', (e) => (e ? rej(e) : res())));
  pack.finalize();
  await ended;
  const tar = Buffer.concat(chunks);
  patch?.(tar);
  await writeFile(path, gzipSync(tar));
}

function manifestFor(files: Record<string, string | Buffer>): string {
  const entries = Object.entries(files).map(([name, body]) => [
    name,
    { sha256: createHash('sha256').update(body).digest('hex'), bytes: Buffer.from(body).length },
  ]);
  return JSON.stringify({
    dossier: 1,
    runId: 'hostile',
    gitRevision: null,
    createdAt: new Date(0).toISOString(),
    versions: {},
    files: Object.fromEntries(entries),
  });
}

test('verify refuses absolute paths, "..", links, devices and fifos, naming each, and reads no byte of them', async () => {
  const path = join(work, 'hostile.tar.gz');
  const good = 'real evidence\n';
  await packTarGz(path, [
    { header: { name: 'manifest.json' }, body: manifestFor({ 'a.txt': good }) },
    { header: { name: 'a.txt' }, body: good },
    { header: { name: '/etc/cron.d/labrig' }, body: '* * * * * root sh\n' },
    { header: { name: '../outside.txt' }, body: 'x' },
    { header: { name: 'logs/../../up.txt' }, body: 'x' },
    { header: { name: 'link', type: 'symlink', linkname: '/root/.ssh/authorized_keys' } },
    { header: { name: 'hard', type: 'link', linkname: 'a.txt' } },
    { header: { name: 'dev/console', type: 'character-device', devmajor: 5, devminor: 1 } },
    { header: { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0 } },
    { header: { name: 'pipe', type: 'fifo' } },
  ]);
  const v = await verifyDossier(path);
  expect(v.ok).toBe(false);
  expect(v.checked).toBe(1);
  expect(v.problems.map((p) => [p.problem, p.file])).toEqual([
    ['unsafe path', '/etc/cron.d/labrig'],
    ['unsafe path', '../outside.txt'],
    ['unsafe path', 'logs/../../up.txt'],
    ['not a regular file', 'link'],
    ['not a regular file', 'hard'],
    ['not a regular file', 'dev/console'],
    ['not a regular file', 'dev/sda'],
    ['not a regular file', 'pipe'],
  ]);
  expect(v.problems.find((p) => p.file === 'link')!.detail).toBe('a symlink to /root/.ssh/authorized_keys');
  const cli = await labrig('dossier', '--verify', path);
  expect(cli.exitCode).toBe(1);
  expect(cli.stdout).toMatch(/^unsafe path +\/etc\/cron\.d\/labrig +\(an absolute path; never unpack this archive\)$/m);
});

test('a size written in base-256 (GNU tar, members over 8 GiB) is read as the size; a negative one is refused', async () => {
  const body = Buffer.alloc(3000, 0x61);
  const manifest = manifestFor({ 'big.bin': body });
  // The second header (big.bin) gets its size field rewritten in base-256, checksum recomputed.
  const toBase256 = (size: number) => (tar: Buffer) => {
    const at = 512 + Math.ceil(Buffer.byteLength(manifest) / 512) * 512;
    const field = tar.subarray(at + 124, at + 136);
    field.fill(0);
    if (size >= 0) field[0] = 0x80;
    else field.fill(0xff);
    let n = Math.abs(size) - (size < 0 ? 1 : 0);
    for (let i = 11; i > 0; i--, n = Math.floor(n / 256)) field[i] = size < 0 ? 0xff - (n & 0xff) : n & 0xff;
    tar.fill(0x20, at + 148, at + 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += tar[at + i]!;
    tar.write(`${sum.toString(8).padStart(6, '0')}\0 `, at + 148, 'ascii');
  };
  const path = join(work, 'base256.tar.gz');
  await packTarGz(
    path,
    [
      { header: { name: 'manifest.json' }, body: manifest },
      { header: { name: 'big.bin' }, body },
    ],
    toBase256(body.length),
  );
  const v = await verifyDossier(path);
  expect(v.problems).toEqual([]);
  expect(v).toMatchObject({ ok: true, checked: 1 });

  const negative = join(work, 'negative.tar.gz');
  await packTarGz(
    negative,
    [
      { header: { name: 'manifest.json' }, body: manifest },
      { header: { name: 'big.bin' }, body },
    ],
    toBase256(-5),
  );
  await expect(verifyDossier(negative)).rejects.toThrow(/is not a readable \.tar\.gz: member "big\.bin" has size -\d+/);
});

test('verify is bounded: total unpacked bytes, and a pax record that never yields a member', async () => {
  const body = Buffer.alloc(20_000, 0x62);
  const path = join(work, 'capped.tar.gz');
  await packTarGz(path, [
    { header: { name: 'manifest.json' }, body: manifestFor({ 'b.bin': body }) },
    { header: { name: 'b.bin' }, body },
  ]);
  expect((await verifyDossier(path)).ok).toBe(true);
  await expect(verifyDossier(path, { ...DEFAULT_TAR_LIMITS, maxBytes: 8192 })).rejects.toThrow(
    /unpacks to more than 8192 bytes \(the cap\)/,
  );

  const pax = join(work, 'pax.tar.gz');
  await packTarGz(pax, [{ header: { name: 'manifest.json', pax: { comment: 'x'.repeat(200_000) } }, body: manifestFor({}) }]);
  await expect(verifyDossier(pax, { ...DEFAULT_TAR_LIMITS, maxHeaderBytes: 64 * 1024 })).rejects.toThrow(
    /without a member \(an oversized pax or long-name record/,
  );
  expect((await verifyDossier(pax)).ok).toBe(true);
});

test('verify streams: a 256 MiB member is checked without holding it in memory', async () => {
  test.setTimeout(180_000);
  const size = 256 * 2 ** 20;
  const chunk = Buffer.alloc(2 ** 20);
  const sha = createHash('sha256');
  for (let i = 0; i < size / chunk.length; i++) sha.update(chunk);
  const manifest = JSON.stringify({
    dossier: 1,
    runId: 'big',
    gitRevision: null,
    createdAt: new Date(0).toISOString(),
    versions: {},
    files: { 'logs/huge.log': { sha256: sha.digest('hex'), bytes: size } },
  });
  const path = join(work, 'huge.tar.gz');
  const pack = tarStream.pack();
  const written = pipeline(pack, createGzip({ level: 1 }), createWriteStream(path));
  await new Promise<void>((res, rej) => pack.entry({ name: 'manifest.json' }, manifest, (e) => (e ? rej(e) : res())));
  const entry = pack.entry({ name: 'logs/huge.log', size }, (e) => e && console.error(e));
  for (let i = 0; i < size / chunk.length; i++) if (!entry.write(chunk)) await new Promise((r) => entry.once('drain', r));
  entry.end();
  pack.finalize();
  await written;

  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const v = await verifyDossier(path).finally(() => clearInterval(sampler));
  expect(v).toMatchObject({ ok: true, checked: 1 });
  // A whole-archive gunzip would add the 256 MiB at once.
  expect(peak - before).toBeLessThan(96 * 2 ** 20);
});
