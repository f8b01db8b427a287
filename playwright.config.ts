/**
 * The lab run: one Playwright project per host of the lab (lab.config.ts, or LABRIG_CONFIG),
 * each running the suites of its role. `npx playwright test --project=emu-mini --grep @facts`.
 */
import { defineConfig } from '@playwright/test';
import { loadLab } from './targets/config.js';
import { runId } from './targets/fixtures.js';
import { suitesByRole } from './suites/roles.js';

const lab = await loadLab();
const out = lab.outDir;

export default defineConfig({
  testDir: 'suites',
  timeout: 15 * 60_000,
  workers: Number(process.env.LABRIG_WORKERS ?? 1),
  fullyParallel: false,
  retries: lab.labRetries,
  outputDir: `${out}/test-results`,
  metadata: { lab: lab.name, runId },
  reporter: [
    ['list'],
    ['junit', { outputFile: `${out}/junit.xml` }],
    ['allure-playwright', { resultsDir: `${out}/allure-results`, detail: true, suiteTitle: true }],
  ],
  projects: lab.hosts.map((h) => ({
    name: h.name,
    testMatch: [...new Set(h.role.flatMap((r) => suitesByRole[r]))],
    metadata: { host: h.name, roles: h.role },
  })),
});
