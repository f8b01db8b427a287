/**
 * Ctrl-C in the middle of a run: the tests end, teardown runs, the lab this run brought up goes
 * down, and the run says it was interrupted (exit 3). Afterwards no QEMU of the run is alive
 * and the lab's state lists no host. On a private emulated lab (emu-mini).
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import { isOurProcess } from '../../drivers/proc.js';
import { readState } from '../../targets/emulated/state.js';
import { takeQemuSlot } from '../helpers/qemu-slot.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
// A stopped QEMU is a zombie until PID 1 reaps it (here PID 1 is a VM agent that reaps late):
// `kill(pid, 0)` still answers for it, so "alive" means running, not merely listed.
const alive = (pid: number) => isOurProcess(pid);

let release: (() => Promise<void>) | undefined;
let work: string | undefined;
test.afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
  await release?.();
});

test('SIGINT while the tests run: teardown, lab down, exit 3, nothing left running', async () => {
  test.setTimeout(10 * 60_000);
  release = await takeQemuSlot('interrupt.test');
  work = await mkdtemp(join(tmpdir(), 'labrig-interrupt-'));
  const runDir = join(work, 'lab');
  const child = execa(process.execPath, [join(repoRoot, 'bin/labrig.mjs'), 'run', '--project=emu-mini', '--grep', '@facts'], {
    reject: false,
    all: true,
    env: {
      LABRIG_RUN_DIR: runDir,
      LABRIG_OUT_DIR: join(work, 'out'),
      LABRIG_RUNS_DIR: join(work, 'runs'),
      LABRIG_HISTORY: join(work, 'history.jsonl'),
    },
  });
  let output = '';
  const started = new Promise<void>((resolve) => {
    child.all!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      // The first test has started: the run is in the middle of its work.
      if (/lease on emu-mini acquired/.test(output)) resolve();
    });
  });
  await Promise.race([started, child]);
  const qemuPid = readState(runDir)?.hosts['emu-mini']?.pid;
  expect(qemuPid ?? 0, output).toBeGreaterThan(0);
  child.kill('SIGINT');
  const r = await child;
  expect(r.exitCode, r.all).toBe(3);
  expect(r.all).toMatch(/SIGINT: ending the work and tearing down/);
  expect(r.all).toMatch(/bringing the emulated lab down: emu-mini/);
  expect(alive(qemuPid!), `QEMU ${qemuPid} still alive`).toBe(false);
  expect(Object.keys(readState(runDir)?.hosts ?? {})).toEqual([]);
});
