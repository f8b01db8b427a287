/**
 * The harness's own JSON files (quarantine, attempt records, the emulated lab's state): one
 * way to read them, where a file that cannot be read, is not JSON or has the wrong shape is the
 * lab's failure, named with the file and what it should have been — never a silent default.
 */
import { z } from 'zod';
import { LabError } from '../drivers/errors.js';

export function parseLabJson<T>(text: string, o: { what: string; file: string; schema: z.ZodType<T>; shape: string }): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new LabError('lab-setup', `${o.what} ${o.file} is not valid JSON: ${(e as Error).message}`, {}, { cause: e });
  }
  const checked = o.schema.safeParse(parsed);
  if (!checked.success) throw new LabError('lab-setup', `${o.what} ${o.file} is not ${o.shape}: ${z.prettifyError(checked.error)}`);
  return checked.data;
}

export const unreadable = (what: string, file: string, e: unknown) =>
  new LabError('lab-setup', `${what} ${file} cannot be read: ${(e as Error).message}`, {}, { cause: e });
