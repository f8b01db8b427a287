/** The QEMU slot for a test file: waiting for it extends the hook's timeout by the wait. */
import { test } from '@playwright/test';
import { acquireLock, QEMU_SLOT_LOCK } from '../../drivers/proc.js';

/** Long enough for every other QEMU test file before this one on a cold cache (image builds included). */
const WAIT_MS = 40 * 60_000;

export function takeQemuSlot(what: string): Promise<() => Promise<void>> {
  test.info().setTimeout(test.info().timeout + WAIT_MS);
  return acquireLock(QEMU_SLOT_LOCK, { timeoutMs: WAIT_MS, what: `${what} waiting for the QEMU slot` });
}
