/**
 * What a run's exit code says (README, `labrig --help`):
 *   0  every test that ran passed, and something was tested
 *   1  a product failure: the thing under test was tested and failed
 *   2  a usage or config error (decided before any test: see cli/main.ts)
 *   3  a lab failure: a host quarantined or unreachable, a lab error in a test, an interrupted
 *      run, or a run in which nothing was tested
 * A product failure outranks a lab failure: it is the news of the night. An interrupted run is
 * a lab failure whatever its tests say: the runner stopped them.
 */
import { type AllureResult, finalAttempts, isLabFailure } from './results.js';

export const EXIT = { ok: 0, product: 1, usage: 2, lab: 3 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export interface RunOutcome {
  results: AllureResult[];
  quarantined: string[];
  /** Playwright's own exit code: non-zero with no failed test means it failed outside the tests. */
  runnerExit: number;
  interrupted?: boolean;
}

export interface Verdict {
  code: ExitCode;
  why: string;
}

const failed = (r: AllureResult) => r.status === 'failed' || r.status === 'broken';

export function runVerdict(o: RunOutcome): Verdict {
  const finals = finalAttempts(o.results);
  const product = finals.filter((r) => failed(r) && !isLabFailure(r.statusDetails?.message));
  const lab = finals.filter((r) => failed(r) && isLabFailure(r.statusDetails?.message));
  const passed = finals.filter((r) => r.status === 'passed').length;
  const names = (rs: AllureResult[]) => rs.map((r) => r.fullName ?? r.name).join(', ');
  // An interrupted test fails as the runner stopped it, not as the product: the run is incomplete.
  if (o.interrupted)
    return {
      code: EXIT.lab,
      why: `the run was interrupted${product.length ? ` (failed before or as it stopped: ${names(product)})` : ''}`,
    };
  if (product.length) return { code: EXIT.product, why: `${product.length} product failure(s): ${names(product)}` };
  if (lab.length) return { code: EXIT.lab, why: `${lab.length} lab failure(s): ${names(lab)}` };
  if (o.quarantined.length) return { code: EXIT.lab, why: `quarantined: ${o.quarantined.join(', ')}` };
  if (passed === 0) return { code: EXIT.lab, why: 'nothing was tested' };
  if (o.runnerExit !== 0) return { code: EXIT.lab, why: `playwright exited ${o.runnerExit} outside any test (see its output above)` };
  return { code: EXIT.ok, why: `${passed} passed` };
}
