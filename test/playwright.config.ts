/** The harness's own tests: unit tests and integration tests on real sshd, ptys and QEMU. */
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: '.',
  testMatch: '**/*.test.ts',
  // Bring-up tests of the emulated Xen and pmem hosts: written, not yet passing end to end on
  // this machine (issues 3, 6, 7 stay open). Run them with LABRIG_ALL_TESTS=1.
  testIgnore: process.env.LABRIG_ALL_TESTS ? [] : ['**/emu-xen.test.ts', '**/emu-x86-pmem.test.ts'],
  timeout: 120_000,
  workers: 2,
  fullyParallel: false,
  reporter: [['list'], ['junit', { outputFile: '../reports/out/test-junit.xml' }], ['./summary-reporter.ts']],
  outputDir: '../reports/out/test-results',
});
