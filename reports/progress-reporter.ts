/**
 * What a long test is doing while it runs, for a CI log: every 30 s a heartbeat naming each
 * running test and its innermost open step, and each top-level step that took 10 s or more as it
 * ends. A 60-minute bisection is never silent, and a quick test adds nothing to the log.
 */
import type { FullConfig, Reporter, TestCase, TestResult, TestStep } from '@playwright/test/reporter';

const HEARTBEAT_MS = Number(process.env.LABRIG_HEARTBEAT_MS ?? 30_000);

const LONG_STEP_MS = 10_000;

const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
const short = (title: string) => (title.length > 100 ? `${title.slice(0, 99)}…` : title);

function innermostOpen(steps: readonly TestStep[]): TestStep | undefined {
  for (let i = steps.length - 1; i >= 0; i--) {
    const s = steps[i]!;
    if (s.category !== 'test.step' || s.duration !== -1) continue;
    return innermostOpen(s.steps) ?? s;
  }
  return undefined;
}

export default class ProgressReporter implements Reporter {
  private readonly running = new Map<TestCase, { result: TestResult; since: number }>();
  private timer: NodeJS.Timeout | undefined;

  printsToStdio(): boolean {
    return false;
  }

  onBegin(_config: FullConfig): void {
    this.timer = setInterval(() => this.heartbeat(), HEARTBEAT_MS);
    this.timer.unref();
  }

  onTestBegin(test: TestCase, result: TestResult): void {
    this.running.set(test, { result, since: Date.now() });
  }

  onTestEnd(test: TestCase): void {
    this.running.delete(test);
  }

  onStepEnd(test: TestCase, _result: TestResult, step: TestStep): void {
    if (step.category === 'test.step' && !step.parent && step.duration >= LONG_STEP_MS)
      this.say(test, `${step.error ? '✗' : '✓'} ${short(step.title)} (${seconds(step.duration)})`);
  }

  onEnd(): void {
    clearInterval(this.timer);
  }

  private heartbeat(): void {
    const now = Date.now();
    for (const [test, { result, since }] of this.running) {
      const step = innermostOpen(result.steps);
      const where = step ? `, in "${short(step.title)}" for ${seconds(now - step.startTime.getTime())}` : '';
      this.say(test, `… running ${seconds(now - since)}${where}`);
    }
  }

  private say(test: TestCase, line: string): void {
    const project = test.parent.project()?.name ?? '';
    process.stdout.write(`  [${project}] ${test.title}: ${line}\n`);
  }
}
