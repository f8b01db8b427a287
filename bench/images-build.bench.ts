/**
 * `labrig images build` cold and warm for every image (issue 14's figure), as a user runs it:
 *   cold — a new, empty cache (LABRIG_CACHE pointed at a fresh directory per image): apt lists
 *          of a foreign architecture fetched, every .deb downloaded from the mirror, the image built;
 *   warm — the same command again on that cache: a cache hit.
 * One image at a time (each build takes the machine's cores); each fresh cache is removed after.
 * Run: npx tsx bench/images-build.bench.ts [name…]   (default: every image)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { knownImages } from '../cli/image-catalog.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const names = process.argv.slice(2).length ? process.argv.slice(2) : knownImages.map((r) => r.name);

async function build(name: string, cache: string): Promise<{ seconds: number; cached: boolean; dir: string }> {
  const t0 = performance.now();
  const r = await execa('node', ['bin/labrig.mjs', 'images', 'build', name, '--json'], {
    cwd: repoRoot,
    env: { LABRIG_CACHE: cache },
    reject: false,
    stderr: 'inherit',
  });
  if (r.exitCode !== 0) throw new Error(`labrig images build ${name} exited ${r.exitCode}`);
  const [record] = JSON.parse(r.stdout) as Array<{ cached: boolean; dir: string }>;
  return { seconds: (performance.now() - t0) / 1000, cached: record!.cached, dir: record!.dir };
}

const rows: string[] = [];
for (const name of names) {
  const cache = await mkdtemp(join(tmpdir(), 'labrig-bench-images-'));
  try {
    const cold = await build(name, cache);
    const warm = await build(name, cache);
    const size = (await execa('du', ['-sm', cold.dir])).stdout.split('\t')[0];
    rows.push(
      `${name.padEnd(20)} cold ${cold.seconds.toFixed(1).padStart(6)} s (cached: ${cold.cached})   warm ${warm.seconds.toFixed(2).padStart(5)} s (cached: ${warm.cached})   ${size} MB`,
    );
    process.stderr.write(`${rows.at(-1)}\n`);
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
}
console.log('labrig images build, per image (cold: empty LABRIG_CACHE; warm: the same command again)');
for (const r of rows) console.log(`  ${r}`);
