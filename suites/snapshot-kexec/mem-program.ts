/**
 * The nested guest's workload, `labrig-mem <seed> <MiB> <busy ms>`: a static x86-64 program
 * (GNU as + ld from binutils, no libc) because under TCG-in-TCG busybox's sha256sum does
 * ≈0.5 MB/s — a 512 MiB region needs a loop of a few instructions per word. It
 *   - maps <MiB> of anonymous memory and fills word i with K ^ (i·G), K = FNV-1a(seed):
 *     position-dependent, so a lost, zeroed or misplaced page never verifies;
 *     prints `labrig-pattern <MiB> <K> <address>`;
 *   - then once a second prints `labrig-tick <n> <guest boot_id>` (the counter), and spends at
 *     most <busy ms> of that second verifying the next words of the region; each pass over
 *     the whole region prints `labrig-verify <pass> <first tick> <last tick> ok|mismatch
 *     <bad words> <byte offset of the first bad word or ->`.
 * Pacing keeps the nested guest from taking the pmem host's one vCPU away from SSH.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabError } from '../../drivers/errors.js';
import { runLocal } from '../../drivers/local.js';

/** The pattern's word step (the 64-bit golden ratio): consecutive words differ in many bits. */
export const PATTERN_STEP = 0x9e3779b97f4a7c15n;

/** FNV-1a 64 of the seed: the K the program derives from the same string. */
export function patternKey(seed: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(seed, 'latin1')) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h;
}

/** Word `i` of the pattern, as the program writes it. */
export function patternWord(seed: string, i: number): bigint {
  return patternKey(seed) ^ ((BigInt(i) * PATTERN_STEP) & 0xffffffffffffffffn);
}

/** The program's source, beside this file. */
export const MEM_PROGRAM_SOURCE = fileURLToPath(new URL('./labrig-mem.s', import.meta.url));

/** Assembles and links the program on the runner (binutils: `as`, `ld`); a static ELF with no libc. */
export async function buildMemProgram(): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'labrig-mem-'));
  try {
    for (const argv of [
      ['as', '--64', '-o', join(dir, 'mem.o'), MEM_PROGRAM_SOURCE],
      ['ld', '-static', '-nostdlib', '-o', join(dir, 'labrig-mem'), join(dir, 'mem.o')],
    ]) {
      const r = await runLocal(argv, { check: false });
      if (r.code !== 0)
        throw new LabError(
          'runner-tool',
          `${argv[0]} failed building the guest's memory program (install binutils): ${(r.stderr || r.stdout).trim()}`,
        );
    }
    return await readFile(join(dir, 'labrig-mem'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
