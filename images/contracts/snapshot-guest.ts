/**
 * The snapshot-kexec guest's contract with its suite (DOMAIN.md §4). The suite puts
 * `labrig.seed=<seed> labrig.pattern_kib=<KiB>` on the guest's kernel command line; the guest
 * writes `yes "labrig-pattern <seed>" | head -c <KiB*1024>` into its RAM, prints
 * `labrig-guest ready: …` once, then one line per tick on its serial port:
 *   labrig-tick <n> <guest boot_id> <sha256 of the pattern>
 */
export const SEED_PARAM = 'labrig.seed';
export const PATTERN_KIB_PARAM = 'labrig.pattern_kib';
export const PATTERN_PREFIX = 'labrig-pattern';
export const READY_PREFIX = 'labrig-guest ready:';
export const TICK_PREFIX = 'labrig-tick';

/** The guest's kernel parameters for one cold boot. */
export const guestParameters = (seed: string, patternKiB: number) => `${SEED_PARAM}=${seed} ${PATTERN_KIB_PARAM}=${patternKiB}`;

/** One line of the pattern the guest repeats. */
export function patternLine(seed: string): string {
  return `${PATTERN_PREFIX} ${seed}\n`;
}

/** A complete tick line: counter, boot_id, pattern checksum. */
export const TICK_LINE = new RegExp(`${TICK_PREFIX} (\\d+) ([0-9a-f-]{36}) ([0-9a-f]{64})\\r?\\n`, 'g');
