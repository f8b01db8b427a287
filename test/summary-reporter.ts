/** Prints the plain closing line `labrig-tests: N passed, N failed, N skipped` that CI reads. */
import type { Reporter, TestCase, TestResult } from '@playwright/test/reporter';

export default class SummaryReporter implements Reporter {
  private readonly last = new Map<string, TestResult['status']>();
  onTestEnd(test: TestCase, result: TestResult): void {
    this.last.set(test.id, result.status);
  }
  onEnd(): void {
    let passed = 0,
      failed = 0,
      skipped = 0;
    for (const status of this.last.values()) {
      if (status === 'passed') passed++;
      else if (status === 'skipped') skipped++;
      else failed++;
    }
    process.stdout.write(`\nlabrig-tests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
  printsToStdio(): boolean {
    return false;
  }
}
