/**
 * Hosts the pre-run health check kept out of this run, with the reason (host → reason).
 * `labrig run` writes the file and names it in LABRIG_QUARANTINE for the test workers; a plain
 * `playwright test` has none. An unreadable file is the lab's failure, named — never "no host
 * quarantined".
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { LabError } from '../drivers/errors.js';

export type Quarantine = Record<string, string>;

const quarantineSchema = z.record(z.string(), z.string());

export const quarantineFile = (outDir: string) => join(outDir, 'quarantine.json');

export function readQuarantine(path = process.env.LABRIG_QUARANTINE): Quarantine {
  if (!path) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new LabError('lab-setup', `quarantine file ${path} (LABRIG_QUARANTINE) cannot be read: ${(e as Error).message}`, {}, { cause: e });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new LabError('lab-setup', `quarantine file ${path} is not valid JSON: ${(e as Error).message}`, {}, { cause: e });
  }
  const checked = quarantineSchema.safeParse(parsed);
  if (!checked.success) throw new LabError('lab-setup', `quarantine file ${path} is not a map of host → reason: ${z.prettifyError(checked.error)}`);
  return checked.data;
}
