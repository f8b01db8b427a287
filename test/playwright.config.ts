/** The harness's own tests: unit tests and integration tests on real sshd, ptys and QEMU. */
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: '.',
  testMatch: '**/*.test.ts',
  timeout: 120_000,
  workers: 2,
  fullyParallel: false,
  reporter: [['list'], ['junit', { outputFile: '../reports/out/test-junit.xml' }], ['./summary-reporter.ts']],
  outputDir: '../reports/out/test-results',
});
