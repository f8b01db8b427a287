/**
 * Bring-up of the whole emulated lab (issue 3's figure): `lab up` of every host into a private
 * run dir, then `lab down`, timed per host and in total.
 *   cold — an empty image cache (LABRIG_CACHE pointed at a new directory): every .deb fetched
 *          from the mirror, every image built, then booted;
 *   warm — the same cache again: boot only.
 * The suites' own guest images (armhf guest, aarch64 probe guest) are built by the suites on
 * first use, not by `lab up`: not in these figures.
 * Run: npx tsx bench/lab-up.bench.ts [warm iterations, default 3] [--cold]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, QEMU_SLOT_LOCK } from '../drivers/proc.js';
import type { Recorder } from '../drivers/recorder.js';
import { labDown, labHostNames, labUp } from '../targets/emulated/lab.js';

const args = process.argv.slice(2);
const warmRuns = Number(args.find((a) => /^\d+$/.test(a)) ?? 3);
const cold = args.includes('--cold');

async function bringUp(label: string): Promise<Record<string, number>> {
  const runDir = await mkdtemp(join(tmpdir(), 'labrig-bench-lab-'));
  const perHost: Record<string, number> = {};
  const timing: Recorder = {
    async step(title, _params, body) {
      const t0 = performance.now();
      try {
        return await body();
      } finally {
        const host = /^lab up: (\S+)$/.exec(title)?.[1];
        if (host) perHost[host] = Math.round(performance.now() - t0);
      }
    },
    attach: async () => {},
    log: () => {},
  };
  // 10 ports apart from the default lab's, so a lab that is up does not collide
  const ports = Object.fromEntries(labHostNames.map((h, i) => [h, 40000 + Math.floor(Math.random() * 2000) * 10 + i]));
  const t0 = performance.now();
  try {
    await labUp({ runDir, recorder: timing, ports });
    perHost.total = Math.round(performance.now() - t0);
  } finally {
    await labDown({ runDir });
    await rm(runDir, { recursive: true, force: true });
  }
  process.stdout.write(
    `${label}: ${Object.entries(perHost)
      .map(([h, ms]) => `${h} ${(ms / 1000).toFixed(1)} s`)
      .join(', ')}\n`,
  );
  return perHost;
}

const release = await acquireLock(QEMU_SLOT_LOCK, { timeoutMs: 60 * 60_000, what: 'lab-up bench' });
const originalCache = process.env.LABRIG_CACHE;
let coldCache: string | undefined;
try {
  if (cold) {
    coldCache = await mkdtemp(join(tmpdir(), 'labrig-bench-cache-'));
    process.env.LABRIG_CACHE = coldCache;
    await bringUp('cold (empty cache)');
  }
  const warm: Array<Record<string, number>> = [];
  for (let i = 0; i < warmRuns; i++) warm.push(await bringUp(`warm ${i + 1}/${warmRuns}`));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  if (warm.length)
    process.stdout.write(
      `warm median: ${Object.keys(warm[0]!)
        .map((h) => `${h} ${(median(warm.map((w) => w[h]!)) / 1000).toFixed(1)} s`)
        .join(', ')}\n`,
    );
} finally {
  if (coldCache) await rm(coldCache, { recursive: true, force: true });
  if (originalCache === undefined) delete process.env.LABRIG_CACHE;
  else process.env.LABRIG_CACHE = originalCache;
  await release();
}
