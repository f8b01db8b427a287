/**
 * Allure 3 configuration for labrig's report:
 *   node_modules/.bin/allure generate --config reports/allurerc.mjs --output <dir> <results-dir>
 * (reports/finalize.ts runs exactly that). Categories live here and not in allure-playwright's
 * options: Allure 3 ignores a categories.json written by the reporter (FIELD-NOTES).
 *
 * Plain .mjs on purpose: the Allure CLI imports it with node, it cannot import drivers/errors.ts.
 * test/report.test.ts checks that every kind declared in drivers/errors.ts has a category here.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Why each lab kind stopped the run, in the words a lab engineer acts on. */
export const labCategoryNames = {
  config: 'Lab: configuration invalid',
  unreachable: 'Lab: host unreachable',
  'host-key': 'Lab: host key mismatch',
  'console-busy': 'Lab: console busy',
  'lease-held': 'Lab: host leased by another run',
  'lease-lost': 'Lab: lease lost while the host was away',
  'did-not-return': 'Lab: host did not return',
  'lab-timeout': 'Lab: lab operation timed out',
  'lab-setup': 'Lab: lab setup failed',
  quarantined: 'Lab: host quarantined',
  'console-silent': 'Lab: console silent (not one byte received)',
  'runner-tool': 'Lab: a tool on the runner failed',
};

export const productCategoryNames = {
  panic: 'Product: kernel panic',
  'did-not-boot': 'Product: did not boot',
  'command-failed': 'Product: command failed',
  timeout: 'Product: timed out',
  mismatch: 'Product: result mismatch',
};

/**
 * The kind prefix sits at the start of the message; Playwright puts the error class name in
 * front of it ("LabError: [lab:unreachable] …", "Error: [product:panic] …").
 */
function prefixed(family, kind) {
  const escaped = kind.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^(?:[A-Za-z_$][\\w$]*: )?\\[${family}:${escaped}\\]`);
}

// A quarantined host skips its tests with a [lab:quarantined] reason: show those too.
/** Playwright's own deadline; the same as targets/retry-policy.ts RUNNER_TIMEOUT (a test holds them equal). */
export const runnerTimeout = /^(?:\w*Error: )?(?:Test|Worker teardown|Fixture "[^"]+"|"\w+" hook) timeout of \d+ms exceeded/;

const labStatuses = ['failed', 'broken', 'skipped'];
const productStatuses = ['failed', 'broken'];

const categories = [
  ...Object.entries(labCategoryNames).map(([kind, name]) => ({
    id: `lab-${kind}`,
    name,
    matchers: { statuses: labStatuses, message: prefixed('lab', kind) },
    expand: true,
  })),
  {
    // Playwright's own deadline: the lab stalled.
    id: 'lab-runner-timeout',
    name: "Lab: the test runner's own deadline passed",
    matchers: { statuses: ['failed', 'broken'], message: runnerTimeout },
    expand: true,
  },
  {
    id: 'lab-other',
    name: 'Lab failures (infrastructure, other kind)',
    matchers: { statuses: labStatuses, message: prefixed('lab', '[a-z-]+') },
  },
  ...Object.entries(productCategoryNames).map(([kind, name]) => ({
    id: `product-${kind}`,
    name,
    matchers: { statuses: productStatuses, message: prefixed('product', kind) },
    expand: true,
  })),
  {
    id: 'product-other',
    name: 'Product failures (other kind)',
    matchers: { statuses: productStatuses, message: prefixed('product', '[a-z-]+') },
  },
  // Anything else falls through to Allure's defaults ("Product errors" / "Test errors").
];

/*
 * Allure's own trend views: the awesome report's "charts" tab, drawn by its bundled scripts from
 * the history file, so they work offline. Spelled out rather than left to the defaults to drop
 * the charts that need labels we do not set (feature, epic, story, severity, layer) and to look
 * further back than 10 runs. The dashboard plugin draws the same charts (same charts-api), but a
 * second plugin turns the report into a summary page over awesome/ and dashboard/ folders.
 */
const TREND_RUNS = 30;
const charts = [
  { type: 'currentStatus', title: 'Current status' },
  { type: 'statusDynamics', title: 'Status dynamics', limit: TREND_RUNS },
  { type: 'statusTransitions', title: 'Status transitions', limit: TREND_RUNS },
  { type: 'durationDynamics', title: 'Durations dynamics', limit: TREND_RUNS },
  { type: 'testBaseGrowthDynamics', title: 'Test base growth dynamics', limit: TREND_RUNS },
  {
    type: 'stabilityDistribution',
    title: 'Stability by host',
    groupBy: 'label-name:parentSuite',
    threshold: 90,
    skipStatuses: ['skipped', 'unknown'],
    limit: TREND_RUNS,
  },
  {
    type: 'stabilityDistribution',
    title: 'Stability by suite',
    groupBy: 'suite',
    threshold: 90,
    skipStatuses: ['skipped', 'unknown'],
    limit: TREND_RUNS,
  },
  { type: 'statusAgePyramid', title: 'Status age pyramid', limit: TREND_RUNS },
  { type: 'durations', title: 'Durations histogram', groupBy: 'none' },
  { type: 'successRateDistribution', title: 'Success rate distribution' },
];

/*
 * Analytics off by Allure's own switch as well as stripped by reports/external.ts:
 * ALLURE_NO_ANALYTICS=true is Allure 2's opt-out; Allure 3.18 honours it in its allure2 plugin
 * only (awesome, dashboard and summary pages hard-code the tag: allure3 issue #476; PR #784 adds
 * the same variable), and its config rejects any unknown field such as `analyticsEnable`. Set
 * here, it reaches every generator that reads it, however the CLI was started with this config.
 */
process.env.ALLURE_NO_ANALYTICS = 'true';

/** The trend page (reports/trend-page.ts) when the caller made one: a global attachment of the report. */
const trendsPage = process.env.LABRIG_TRENDS_PAGE;

export default {
  name: 'labrig',
  output: resolve(repoRoot, 'reports/out/allure-report'),
  // One line per report appended to a JSON-lines file; keep it across nights for trends.
  historyPath: resolve(repoRoot, process.env.LABRIG_HISTORY || 'reports/history/history.jsonl'),
  historyLimit: 60,
  categories: { rules: categories },
  globalAttachments: trendsPage ? [trendsPage] : [],
  plugins: {
    awesome: { options: { reportName: 'labrig', reportLanguage: 'en', singleFile: false, charts } },
    // Allure adds its agent plugin unless told otherwise; it writes nothing we want.
    agent: { enabled: false },
  },
};
