/**
 * Hosts the pre-run health check kept out of this run, with the reason (host → reason).
 * `labrig run` writes the file and names it in LABRIG_QUARANTINE for the test workers; a plain
 * `playwright test` has none.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export type Quarantine = Record<string, string>;

export const quarantineFile = (outDir: string) => join(outDir, 'quarantine.json');

export function readQuarantine(path = process.env.LABRIG_QUARANTINE): Quarantine {
  if (!path) return {};
  return JSON.parse(readFileSync(path, 'utf8')) as Quarantine;
}
