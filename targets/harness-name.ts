/**
 * Names of what the harness creates on a host (libvirt and xl domains, QEMU's `-name`): the
 * prefix, what it is, a tag of the run that made it and a random part, so the next run's health
 * check can tell its own leftovers from anything else — by name and run, never by name alone.
 */
import { createHash, randomBytes } from 'node:crypto';

/** `r` + 8 hex of the run id's SHA-256: short enough for any domain name, fixed per run. */
export function runTag(runId: string): string {
  return `r${createHash('sha256').update(runId).digest('hex').slice(0, 8)}`;
}

const KIND = /^[a-z0-9]+(-[a-z0-9]+)*$/;
const HARNESS_NAME = /^labrig-([a-z0-9]+(?:-[a-z0-9]+)*)-(r[0-9a-f]{8})-([0-9a-f]{6})$/;

/** `labrig-<kind>-<runTag>-<6 hex>`, e.g. labrig-pcie-15-r1a2b3c4d-9f0e1d. */
export function harnessName(kind: string, runId: string): string {
  if (!KIND.test(kind)) throw new Error(`harness name kind "${kind}": lower-case letters and digits joined by '-'`);
  return `labrig-${kind}-${runTag(runId)}-${randomBytes(3).toString('hex')}`;
}

export function parseHarnessName(name: string): { kind: string; runTag: string } | undefined {
  const m = HARNESS_NAME.exec(name);
  return m ? { kind: m[1]!, runTag: m[2]! } : undefined;
}
