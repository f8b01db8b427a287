/**
 * Hosts the pre-run health check kept out of this run, with the reason (host → reason).
 * `labrig run` writes the file and names it in LABRIG_QUARANTINE for the test workers; a plain
 * `playwright test` has none. An unreadable file is the lab's failure, named — never "no host
 * quarantined".
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { parseLabJson, unreadable } from './lab-json.js';

export type Quarantine = Record<string, string>;

const quarantineSchema = z.record(z.string(), z.string());

export const quarantineFile = (outDir: string) => join(outDir, 'quarantine.json');

export function readQuarantine(path = process.env.LABRIG_QUARANTINE): Quarantine {
  if (!path) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw unreadable('quarantine file (LABRIG_QUARANTINE)', path, e);
  }
  return parseLabJson(text, { what: 'quarantine file', file: path, schema: quarantineSchema, shape: 'a map of host → reason' });
}
