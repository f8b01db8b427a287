/**
 * Fault: secrets everywhere a run writes. Through the real lab fixtures on a real sshd, a test
 * fails quoting three secrets of the lab — a `command` power's and console's (named by
 * `secretEnv`) and the console login password — in its error (and the console tail the error
 * carries), on the console (raw log and slice), on stdout and stderr, and in JSON, XML and text
 * attachments it makes itself; the product retry is refused and carries that evidence along.
 * The secrets hold `"`, `'`, `\`, `<`, `>`, `&` and non-ASCII letters, so every writer escapes
 * them its own way. The grep here is independent of the code under test: each secret's bytes
 * as raw UTF-8, JSON (plain, \u-escaped, nested) and XML/HTML would write them.
 */

import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import { archiveRun } from '../../cli/archive.js';
import { buildDossier } from '../../reports/dossier.js';
import { finalizeReport } from '../../reports/finalize.js';
import { redactRunOutput } from '../../reports/redact.js';
import { readTarGz } from '../../reports/tar.js';
import { FAULT_HOST, type FaultRun, runFaultProject } from '../fixtures/faults/run.js';
import { testSshd } from '../helpers/sshd.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const SECRETS = { LABRIG_FAULT_BMC: 'Bmc"<&é-4711', LABRIG_FAULT_CONSOLE: "Con'sole\\pass>0815", LABRIG_FAULT_LOGIN: 'Lögin<pw>&"ünïcode' };

/** How a writer may have put `s` into a file. */
function forms(s: string): Buffer[] {
  const xml = (t: string, apos: string) =>
    t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, apos);
  const json = JSON.stringify(s).slice(1, -1);
  const asciiJson = json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const texts = [
    s,
    json,
    asciiJson,
    JSON.stringify(json).slice(1, -1),
    xml(s, '&apos;'),
    xml(s, '&#39;'),
    xml(s, "'"),
    s.replace(/&/g, '&amp;').replace(/</g, '&lt;'),
  ];
  return [...new Set(texts)].map((t) => Buffer.from(t, 'utf8'));
}
const NEEDLES = Object.entries(SECRETS).flatMap(([name, s]) => forms(s).map((bytes) => ({ name, bytes })));

function hitsIn(data: Buffer, where: string): string[] {
  return NEEDLES.filter((n) => data.includes(n.bytes)).map((n) => `${where}: $${n.name} as ${JSON.stringify(n.bytes.toString('utf8'))}`);
}

async function grepTree(dir: string): Promise<{ files: number; hits: string[] }> {
  let files = 0;
  const hits: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    files++;
    hits.push(...hitsIn(await readFile(join(e.parentPath, e.name)), join(e.parentPath, e.name).slice(dir.length + 1)));
  }
  return { files, hits };
}

let work = '';
let cleanup: (() => Promise<void>) | undefined;
let run: FaultRun;

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  test.setTimeout(360_000);
  work = await mkdtemp(join(tmpdir(), 'labrig-fault-secrets-'));
  const sshd = await testSshd();
  cleanup = sshd.cleanup;
  run = await runFaultProject(work, sshd.config, { grep: '@leaky', runId: 'fault-secrets', env: SECRETS });
  expect(run.exitCode, run.output).toBe(1);
});

test.afterAll(async () => {
  await cleanup?.();
  if (work) await rm(work, { recursive: true, force: true });
});

test('the reporters were handed redacted errors, console tails, stdout, stderr and attachments', async () => {
  // What the run printed is the reporters' output too.
  expect(hitsIn(Buffer.from(run.output), "the nested run's terminal output")).toEqual([]);
  const junit = await readFile(join(run.outDir, 'junit.xml'), 'utf8');
  expect(junit).toContain('the BMC answered *** *** ***');
  expect(junit).toMatch(/stderr: \*\*\* \*\*\* \*\*\*/);
  expect(hitsIn(Buffer.from(junit), 'junit.xml')).toEqual([]);
  const results = await grepTree(join(run.outDir, 'allure-results'));
  expect(results.files).toBeGreaterThan(10);
  expect(results.hits).toEqual([]);
  // The raw console log is written byte for byte as the console speaks: it did get the secrets.
  const raw = await readFile(join(run.outDir, 'logs', run.runId, `${FAULT_HOST}-console.log`));
  expect(hitsIn(raw, 'raw console log').length).toBeGreaterThanOrEqual(3);
});

test('after redactRunOutput, a grep over the whole output folder finds no secret in any form', async () => {
  const before = await grepTree(run.outDir);
  expect(before.hits.length).toBeGreaterThan(0);
  const redacted = await redactRunOutput({ dirs: [run.outDir], config: run.lab, env: SECRETS });
  expect(redacted.skipped).toEqual([]);
  expect(redacted.redacted.length).toBeGreaterThan(0);
  const after = await grepTree(run.outDir);
  expect(after.hits).toEqual([]);
  const raw = await readFile(join(run.outDir, 'logs', run.runId, `${FAULT_HOST}-console.log`), 'utf8');
  expect(raw).toContain('bmc console, session key ***');
  expect(raw).toContain('*** | *** | ***');
});

test('the report, the archived run and the dossier made from it: no secret, and the dossier verifies', async () => {
  test.setTimeout(300_000);
  const historyPath = join(work, 'history.jsonl');
  await finalizeReport({
    resultsDirs: [join(run.outDir, 'allure-results')],
    outDir: run.outDir,
    runId: run.runId,
    gitRevision: 'test',
    historyPath,
    runsDir: join(work, 'runs'),
  });
  const archived = await archiveRun({ outDir: run.outDir, runId: run.runId, runsDir: join(work, 'runs'), historyPath, lab: run.lab });
  expect((await grepTree(run.outDir)).hits).toEqual([]);
  expect((await grepTree(archived)).hits).toEqual([]);

  const archive = join(work, 'dossier.tar.gz');
  const made = await buildDossier({ run: archived, out: archive, env: SECRETS });
  expect(made.unscanned).toEqual([]);
  const entries = await readTarGz(archive);
  expect(entries.map((e) => e.name)).toEqual(
    expect.arrayContaining(['junit.xml', `logs/${FAULT_HOST}-console.log`, 'report.html', 'lab.json']),
  );
  const hits = entries.flatMap((e) => hitsIn(e.data, e.name));
  // The page inlines every result and attachment base64-encoded: decoded, they hold no secret either.
  const html = entries.find((e) => e.name === 'report.html')!.data.toString('utf8');
  const embedded = [...html.matchAll(/d\("([^"]+)","([A-Za-z0-9+/=]*)"\)/g)];
  expect(embedded.length).toBeGreaterThan(10);
  for (const m of embedded) hits.push(...hitsIn(Buffer.from(m[2]!, 'base64'), `report.html ${m[1]}`));
  expect(hits).toEqual([]);
  expect(embedded.some((m) => Buffer.from(m[2]!, 'base64').toString('utf8').includes('the BMC answered *** *** ***'))).toBe(true);

  const verified = await execa(process.execPath, [join(repoRoot, 'bin', 'labrig.mjs'), 'dossier', '--verify', archive], {
    cwd: repoRoot,
    reject: false,
    timeout: 120_000,
  });
  expect(verified.exitCode, verified.stdout + verified.stderr).toBe(0);
});
