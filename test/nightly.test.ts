/**
 * Nightly-run behaviour on a private emulated lab (emu-arm64 + emu-mini): two shards in
 * parallel never hold a host at once and merge into one report; a host that fails the health
 * check is quarantined, its tests skipped with the reason, while the rest of the run passes.
 */

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import { finalizeReport } from '../reports/finalize.js';
import { readResults } from '../reports/results.js';
import { parseLab } from '../targets/config.js';
import { doctor } from '../targets/doctor.js';
import { emulatedLab, labDown, labUp } from '../targets/emulated/lab.js';
import { readState } from '../targets/emulated/state.js';
import { Host } from '../targets/host.js';
import { quarantineFile } from '../targets/quarantine.js';
import { takeQemuSlot } from './helpers/qemu-slot.js';

test.describe.configure({ mode: 'serial' });

let runDir: string;
let work: string;
let release: (() => Promise<void>) | undefined;

test.beforeAll(async () => {
  test.setTimeout(20 * 60_000);
  release = await takeQemuSlot('nightly.test');
  runDir = await mkdtemp(join(tmpdir(), 'labrig-lab-test-'));
  work = await mkdtemp(join(tmpdir(), 'labrig-nightly-'));
  const port = 30000 + Math.floor(Math.random() * 10000);
  await labUp({
    runDir,
    hosts: ['emu-arm64', 'emu-mini'],
    ports: { 'emu-arm64': port, 'emu-mini': port + 1 },
    access: { 'emu-mini': 'pty' },
  });
});

test.afterAll(async () => {
  if (runDir) {
    await labDown({ runDir }).catch(() => undefined);
    await rm(runDir, { recursive: true, force: true });
  }
  if (work) await rm(work, { recursive: true, force: true });
  await release?.();
});

const playwright = (args: string[], env: Record<string, string>) =>
  execa('npx', ['playwright', 'test', '--grep', '@facts', '--project=emu-arm64', '--project=emu-mini', ...args], {
    reject: false,
    env: { LABRIG_RUN_DIR: runDir, ...env },
    timeout: 10 * 60_000,
  });

/** A host's lease log, as the holders wrote it, only the lines of these runs. */
async function leaseLog(name: string, runIds: string[]): Promise<string[]> {
  const lab = parseLab(emulatedLab({ runDir }));
  const host = new Host(lab.hosts.find((h) => h.name === name)!, { logDir: join(work, 'logs') });
  try {
    const text = (await host.run(`cat ${lab.lease.path}.log 2>/dev/null`)).stdout;
    return text.split('\n').filter((l) => runIds.some((id) => l.includes(`"runId":"${id}"`)));
  } finally {
    await host.close();
  }
}

test('two shards in parallel: leases never overlap, the merged report has every test once', async () => {
  test.setTimeout(15 * 60_000);
  const ids = [`shard1-${Date.now()}`, `shard2-${Date.now()}`];
  const shards = await Promise.all(
    ids.map((id, i) =>
      playwright(['--fully-parallel', `--shard=${i + 1}/2`], { LABRIG_RUN_ID: id, LABRIG_OUT_DIR: join(work, `shard${i + 1}`) }),
    ),
  );
  shards.forEach((r, i) => expect(r.exitCode, `shard ${i + 1}:\n${r.stdout.slice(-3000)}`).toBe(0));

  for (const name of ['emu-arm64', 'emu-mini']) {
    const lines = await leaseLog(name, ids);
    expect(lines.length, `${name} lease log`).toBeGreaterThanOrEqual(2);
    // Strictly alternating acquire/release of the same run: no second holder while one holds it.
    let holder: string | undefined;
    for (const line of lines) {
      const id = ids.find((x) => line.includes(`"runId":"${x}"`))!;
      if (/ acquired /.test(line)) {
        expect(holder, `${name}: ${id} acquired while ${holder} held it\n${lines.join('\n')}`).toBeUndefined();
        holder = id;
      } else if (/ released /.test(line)) {
        expect(holder, `${name}: ${id} released a lease it did not hold\n${lines.join('\n')}`).toBe(id);
        holder = undefined;
      }
    }
  }

  const merged = await finalizeReport({
    resultsDirs: ids.map((_, i) => join(work, `shard${i + 1}`, 'allure-results')),
    outDir: join(work, 'merged'),
    historyPath: join(work, 'history.jsonl'),
  });
  const results = await readResults(join(work, 'merged', 'allure-results-merged'));
  const ids2 = results.map((r) => r.historyId);
  expect(new Set(ids2).size, 'every test once').toBe(ids2.length);
  expect(results.length).toBe(12); // 6 host-facts tests × 2 hosts
  expect(JSON.parse(await readFile(merged.manifestPath, 'utf8')).countsByStatus).toBeTruthy();
});

test('a host that fails the health check is quarantined; its tests are skipped with the reason, the rest pass', async () => {
  test.setTimeout(10 * 60_000);
  const arm64 = readState(runDir)!.hosts['emu-arm64']!;
  process.kill(arm64.pid, 'SIGTERM'); // its sshd: the host becomes unreachable
  await new Promise((r) => setTimeout(r, 500));
  const lab = parseLab(emulatedLab({ runDir }));
  const checks = await doctor(lab);
  const failed = checks.filter((c) => !c.ok);
  expect(failed.map((c) => `${c.host}:${c.check}`)).toEqual(['emu-arm64:ssh']);
  const out = join(work, 'quarantine-run');
  const file = quarantineFile(work);
  await writeFile(file, JSON.stringify({ 'emu-arm64': `ssh: ${failed[0]!.detail}` }));
  const r = await playwright([], { LABRIG_RUN_ID: `q-${Date.now()}`, LABRIG_OUT_DIR: out, LABRIG_QUARANTINE: file });
  expect(r.exitCode, r.stdout.slice(-3000)).toBe(0);
  const junit = await readFile(join(out, 'junit.xml'), 'utf8');
  expect(junit).toMatch(/\[lab:quarantined\] host emu-arm64 failed the health check before the run: ssh: /);
  const results = await readResults(join(out, 'allure-results'));
  expect(results.filter((x) => x.status === 'skipped' && /\[lab:quarantined\]/.test(x.statusDetails?.message ?? '')).length).toBe(6); // all six host-facts tests of emu-arm64
  expect(results.filter((x) => x.status === 'passed').length).toBeGreaterThanOrEqual(3);
});
