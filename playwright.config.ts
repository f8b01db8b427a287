/**
 * The lab run: one Playwright project per host of the lab (lab.config.ts, LABRIG_CONFIG, or the
 * lab `labrig run` resolved), each running the suites of its roles.
 * `npx playwright test --project=emu-mini --grep @facts`.
 *
 * Hosts are independent machines, so each runs in its own worker at the same time; a host never
 * gets two workers of one run (its project's `workers: 1`), which the on-host lease would refuse.
 */
import { defineConfig } from '@playwright/test';
import { suitesByRole } from './suites/roles.js';
import { configDir, loadLab } from './targets/config.js';
import { resolveRunContext, runContextEnv } from './targets/run-context.js';
import { secretEnvNames } from './targets/secrets.js';

const lab = await loadLab();
const ctx = resolveRunContext({ labOutDir: lab.outDir, configDir: configDir() });
// The workers read the same context from the environment they inherit.
Object.assign(process.env, runContextEnv(ctx));
const out = ctx.outDir;

export default defineConfig({
  testDir: 'suites',
  timeout: 15 * 60_000,
  workers: Number(process.env.LABRIG_WORKERS ?? lab.parallelHosts ?? lab.hosts.length),
  fullyParallel: false,
  retries: lab.labRetries,
  outputDir: `${out}/test-results`,
  metadata: { lab: lab.name, runId: ctx.runId },
  reporter: [
    // First: masks every secret the lab names before any reporter after it sees a test's output.
    ['./reports/redact-reporter.ts', { envNames: secretEnvNames(lab) }],
    ['list'],
    ['./reports/progress-reporter.ts'],
    // CI servers ignore `hostname`: the project (host) goes into each test's name.
    ['junit', { outputFile: `${out}/junit.xml`, includeProjectInTestName: true }],
    ['allure-playwright', { resultsDir: `${out}/allure-results`, detail: true, suiteTitle: true }],
  ],
  projects: lab.hosts.map((h) => ({
    name: h.name,
    workers: 1,
    testMatch: [...new Set(h.role.flatMap((r) => suitesByRole[r]))],
    metadata: { host: h.name, roles: h.role },
  })),
});
