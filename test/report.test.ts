/**
 * The reporting pipeline on genuine Allure results: a tiny Playwright project
 * (test/fixtures/report/) runs through allure-playwright — one passing test with findings and
 * facts, one [lab:unreachable] failure, one [product:panic] failure — and the report, findings
 * and manifest made from it are read back.
 */

import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import { reportCommand } from '../reports/cli.js';
import { findExternalLoadsInHtml, makeReportSelfContained, stripExternalLoads } from '../reports/external.js';
import { allureConfigPath, finalizeReport } from '../reports/finalize.js';
import { RUNNER_TIMEOUT } from '../targets/retry-policy.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
let work = '';

/** Runs the fixture project into `resultsDir`; two of its tests fail on purpose, so exit 1 is expected. */
async function runFixture(resultsDir: string, extraArgs: string[] = [], junitFile?: string): Promise<void> {
  // Our own worker's Playwright variables would confuse the nested runner.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(?:PW_|TEST_|PLAYWRIGHT_)/.test(k)));
  const r = await execa('npx', ['playwright', 'test', '--config', 'test/fixtures/report/playwright.config.ts', ...extraArgs], {
    cwd: repoRoot,
    env: { ...env, LABRIG_FIXTURE_RESULTS: resultsDir, ...(junitFile ? { LABRIG_FIXTURE_JUNIT: junitFile } : {}) },
    extendEnv: false,
    reject: false,
    all: true,
    timeout: 90_000,
  });
  expect(r.exitCode, `fixture run should fail (2 failing tests), output:\n${r.all}`).toBe(1);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function grepTree(dir: string, needles: string[]): Promise<string[]> {
  const hits: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const text = await readFile(join(e.parentPath, e.name), 'latin1');
    for (const n of needles) if (text.includes(n)) hits.push(`${join(e.parentPath, e.name)}: ${n}`);
  }
  return hits;
}

interface ReportTestResult {
  name: string;
  fullName: string;
  status: string;
  categories?: { name: string }[];
}

/** The report's global attachments (widgets/globals.json) by name, with their files in the report. */
async function globalAttachments(reportDir: string): Promise<Map<string, string>> {
  const globals = JSON.parse(await readFile(join(reportDir, 'widgets', 'globals.json'), 'utf8')) as {
    attachments: { id: string; name: string; ext: string }[];
  };
  return new Map(globals.attachments.map((a) => [a.name, join(reportDir, 'data', 'attachments', `${a.id}${a.ext}`)]));
}

/** The (run, value) of every point of one chart of the trend page. */
function chartPoints(page: string, series: string): { run: string; value: number }[] {
  const start = page.indexOf(`<figure data-series="${series}">`);
  const figure = start < 0 ? '' : page.slice(start, page.indexOf('</figure>', start));
  return [...figure.matchAll(/data-run="([^"]+)" data-value="([^"]+)"/g)].map((m) => ({ run: m[1]!, value: Number(m[2]) }));
}

async function reportTests(reportDir: string): Promise<ReportTestResult[]> {
  const dir = join(reportDir, 'data', 'test-results');
  const files = await readdir(dir);
  return Promise.all(files.map(async (f) => JSON.parse(await readFile(join(dir, f), 'utf8')) as ReportTestResult));
}

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'labrig-report-'));
});

test.afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

test('one run: self-contained report, findings, manifest, lab and product categories apart', async () => {
  const results = join(work, 'run-results');
  const outDir = join(work, 'out');
  await runFixture(results, [], join(outDir, 'junit.xml'));

  const history = join(work, 'history', 'history.jsonl');
  const out = await finalizeReport({
    resultsDirs: [results],
    outDir,
    runId: 'nightly-42',
    gitRevision: 'abc123',
    historyPath: history,
    runsDir: join(work, 'runs'),
  });

  await test.step('the report exists and loads nothing from outside', async () => {
    const index = await readFile(join(out.reportDir, 'index.html'), 'utf8');
    expect(await grepTree(out.reportDir, ['googletagmanager', 'gtag('])).toEqual([]);
    expect(findExternalLoadsInHtml(index, 'index.html')).toEqual([]);
    // The single-page app still boots from local files: its bundle is referenced and present.
    const scripts = [...index.matchAll(/<script[^>]*\bsrc="([^"]+)"/g)].map((m) => m[1]!);
    expect(scripts.length).toBeGreaterThan(0);
    for (const s of scripts) {
      expect(s).not.toMatch(/^(?:https?:)?\/\//);
      await readFile(join(out.reportDir, s));
    }
    expect(index).toContain('<div id="app"></div>');
  });

  await test.step('findings.json holds the finding with the test it came from', async () => {
    const findings = JSON.parse(await readFile(out.findingsPath, 'utf8')) as Record<string, unknown>[];
    expect(findings).toContainEqual({
      suite: 'pcie-root-port-ceiling',
      host: 'emu-mini',
      key: 'ceiling',
      value: 15,
      test: 'evidence.spec.ts › root port ceiling is recorded',
      status: 'passed',
    });
    expect(findings.find((f) => f.key === 'boot_ms')).toMatchObject({ value: 5120, unit: 'ms' });
  });

  await test.step('the manifest names the run, the host facts, and hashes every attachment', async () => {
    const manifest = JSON.parse(await readFile(out.manifestPath, 'utf8')) as {
      runId: string;
      gitRevision: string;
      countsByStatus: Record<string, number>;
      tests: number;
      hosts: Record<string, { facts: Record<string, unknown> }>;
      attachments: Record<string, string>;
      junit: { path: string; sha256: string } | null;
    };
    expect(manifest).toMatchObject({ runId: 'nightly-42', gitRevision: 'abc123', tests: 3 });
    expect(manifest.countsByStatus).toEqual({ passed: 1, failed: 2 });
    expect(manifest.hosts['emu-mini']?.facts).toMatchObject({ kernel: '6.1.0-56-amd64', qemu: '7.2.0', xen: null });
    const merged = await readdir(join(outDir, 'allure-results-merged'));
    const attachmentNames = merged.filter((n) => n.includes('-attachment')).map((n) => `allure-results-merged/${n}`);
    expect(Object.keys(manifest.attachments).sort()).toEqual(attachmentNames.sort());
    expect(attachmentNames.length).toBeGreaterThanOrEqual(3);
    for (const [path, hash] of Object.entries(manifest.attachments)) {
      expect(sha256(await readFile(join(outDir, path))), path).toBe(hash);
    }
    expect(manifest.junit?.path).toBe('junit.xml');
    expect(sha256(await readFile(join(outDir, 'junit.xml')))).toBe(manifest.junit?.sha256);
  });

  await test.step('the lab failure and the product failure land in different categories', async () => {
    const tests = await reportTests(out.reportDir);
    const categoryOf = (name: string) => tests.find((t) => t.name === name)?.categories?.map((c) => c.name);
    expect(categoryOf('host answers over ssh')).toEqual(['Lab: host unreachable']);
    expect(categoryOf('guest boots to init')).toEqual(['Product: kernel panic']);
    expect(categoryOf('root port ceiling is recorded')).toEqual([]);
    // The categories tree the UI shows: each failure under its own root.
    const tree = JSON.parse(await readFile(join(out.reportDir, 'widgets', 'categories.json'), 'utf8')) as {
      roots: string[];
      nodes: Record<string, { name: string; childrenIds?: string[] }>;
    };
    const under = (rootName: string): string[] => {
      const root = tree.roots.map((id) => tree.nodes[id]!).find((n) => n.name === rootName);
      const names: string[] = [];
      const walk = (ids: string[] = []) => ids.forEach((id) => (names.push(tree.nodes[id]!.name), walk(tree.nodes[id]!.childrenIds)));
      walk(root?.childrenIds);
      return names;
    };
    expect(under('Lab: host unreachable')).toContain('host answers over ssh');
    expect(under('Lab: host unreachable')).not.toContain('guest boots to init');
    expect(under('Product: kernel panic')).toContain('guest boots to init');
  });

  await test.step("the report carries the trend charts of the findings, and Allure's own trend charts", async () => {
    const page = await readFile((await globalAttachments(out.reportDir)).get('trends.html')!, 'utf8');
    expect(chartPoints(page, 'pcie-root-port-ceiling/emu-mini/ceiling')).toEqual([{ run: 'nightly-42', value: 15 }]);
    expect(chartPoints(page, 'pcie-root-port-ceiling/emu-mini/boot_ms')).toEqual([{ run: 'nightly-42', value: 5120 }]);
    expect(findExternalLoadsInHtml(page, 'trends.html')).toEqual([]);
    const charts = JSON.parse(await readFile(join(out.reportDir, 'widgets', 'charts.json'), 'utf8')) as {
      general: Record<string, { type: string }>;
    };
    expect(Object.values(charts.general).map((c) => c.type)).toEqual(
      expect.arrayContaining(['statusDynamics', 'durationDynamics', 'statusTransitions']),
    );
  });

  await test.step('a second report over the same history and the kept first run shows both', async () => {
    // What cli/archive.ts keeps of the first run, beside the output folder.
    const kept = join(work, 'runs', 'nightly-42');
    await mkdir(kept, { recursive: true });
    for (const f of ['findings.json', 'manifest.json']) await cp(join(outDir, f), join(kept, f));
    await finalizeReport({ resultsDirs: [results], outDir, runId: 'nightly-43', historyPath: history, runsDir: join(work, 'runs') });
    expect((await readFile(history, 'utf8')).trim().split('\n')).toHaveLength(2);
    const tests = (await reportTests(out.reportDir)) as (ReportTestResult & { history?: unknown[] })[];
    for (const t of tests) expect(t.history?.length, t.name).toBe(1);
    const page = await readFile((await globalAttachments(out.reportDir)).get('trends.html')!, 'utf8');
    expect(chartPoints(page, 'pcie-root-port-ceiling/emu-mini/ceiling')).toEqual([
      { run: 'nightly-42', value: 15 },
      { run: 'nightly-43', value: 15 },
    ]);
    const charts = JSON.parse(await readFile(join(out.reportDir, 'widgets', 'charts.json'), 'utf8')) as {
      general: Record<string, { type: string; data: unknown[] }>;
    };
    expect(Object.values(charts.general).find((c) => c.type === 'statusDynamics')?.data).toHaveLength(2);
  });

  await test.step('an external load the rewrite does not remove is caught', async () => {
    const copy = join(work, 'tampered-report');
    await cp(out.reportDir, copy, { recursive: true });
    const page = join(copy, 'index.html');
    await writeFile(page, (await readFile(page, 'utf8')).replace('</body>', '<img src="https://example.org/p.png"></body>'));
    // A chart is markup too: an SVG that pulls an image or a symbol from elsewhere is caught.
    await writeFile(
      join(copy, 'data', 'attachments', 'chart.svg'),
      '<svg xmlns="http://www.w3.org/2000/svg"><use href="https://example.org/s.svg#a"/><use href="#local"/></svg>',
    );
    const { remaining } = await makeReportSelfContained(copy);
    expect(remaining.map((r) => r.what).sort()).toEqual([
      '<img src="https://example.org/p.png">',
      '<use href="https://example.org/s.svg#a">',
    ]);
  });
});

test('shards merge: every test once, identical files copied once', async () => {
  const shard1 = join(work, 'shard-1');
  const shard2 = join(work, 'shard-2');
  await runFixture(shard1, ['--shard=1/2']);
  await runFixture(shard2, ['--shard=2/2']);
  const shard1Again = join(work, 'shard-1-again');
  await cp(shard1, shard1Again, { recursive: true });

  const outDir = join(work, 'merged-out');
  const out = await finalizeReport({
    resultsDirs: [shard1, shard2, shard1Again],
    outDir,
    historyPath: join(work, 'merged-history.jsonl'),
  });
  const names = (await reportTests(out.reportDir)).map((t) => t.fullName).sort();
  expect(names).toEqual([
    'evidence.spec.ts › root port ceiling is recorded',
    'lab-failure.spec.ts › host answers over ssh',
    'product-failure.spec.ts › guest boots to init',
  ]);
  const manifest = JSON.parse(await readFile(out.manifestPath, 'utf8')) as { tests: number; attempts: number };
  expect(manifest).toMatchObject({ tests: 3, attempts: 3 });
  const findings = JSON.parse(await readFile(out.findingsPath, 'utf8')) as unknown[];
  expect(findings).toHaveLength(2);
});

test('every error kind in drivers/errors.ts has its Allure category', async () => {
  const source = await readFile(join(repoRoot, 'drivers', 'errors.ts'), 'utf8');
  const kinds = (typeName: string): string[] => {
    const decl = new RegExp(`export type ${typeName} =([^;]+);`).exec(source)?.[1] ?? '';
    return [...decl.matchAll(/'([a-z-]+)'/g)].map((m) => m[1]!);
  };
  const rc = (await import(pathToFileURL(allureConfigPath).href)) as {
    labCategoryNames: Record<string, string>;
    productCategoryNames: Record<string, string>;
  };
  expect(kinds('LabErrorKind').length).toBeGreaterThan(0);
  expect(Object.keys(rc.labCategoryNames).sort()).toEqual(kinds('LabErrorKind').sort());
  expect(Object.keys(rc.productCategoryNames).sort()).toEqual(kinds('ProductErrorKind').sort());
});

test("Allure's runner-timeout category matches exactly what the retry policy calls a runner timeout", async () => {
  const rc = (await import(pathToFileURL(allureConfigPath).href)) as { runnerTimeout: RegExp };
  expect(rc.runnerTimeout.source).toBe(RUNNER_TIMEOUT.source);
  expect(rc.runnerTimeout.test('Error: Test timeout of 30000ms exceeded.')).toBe(true);
});

test('the scanner tells loads from mere URLs', async () => {
  const page = `<!doctype html><html><head>
<link rel="stylesheet" href="//cdn.example.org/a.css">
<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E">
<style>@import url("https://fonts.example.org/f.css"); .x { background: url(local.png) }</style>
<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>
<script>window.dataLayer = []; function gtag(){dataLayer.push(arguments);} gtag('js', new Date());</script>
<script>const docs = "https://allurereport.org"; const img = '<img src="https://x.example/y.png">';</script>
</head><body><a href="https://allurereport.org">docs</a><!-- <img src="https://old.example/z.png"> -->
<div style="background-image: url('https://bg.example/b.png')"></div><img srcset="a.png 1x, https://cdn.example/b.png 2x">
<svg xmlns="http://www.w3.org/2000/svg"></svg></body></html>`;
  const found = findExternalLoadsInHtml(page, 'p.html').map((f) => f.what);
  expect(found).toEqual([
    '<link href="//cdn.example.org/a.css">',
    '@import url("https://fonts.example.org/f.css',
    '<script src="https://www.googletagmanager.com/gtag/js?id=G-1">',
    'inline analytics script',
    "url('https://bg.example/b.png",
    '<img srcset="a.png 1x, https://cdn.example/b.png 2x">',
  ]);
  const stripped = stripExternalLoads(page);
  expect(stripped).not.toContain('googletagmanager');
  expect(stripped).not.toContain('gtag(');
  expect(stripped).toContain('https://allurereport.org');
  // Removing scripts and stylesheets does not touch images and CSS: those remain findings, and fail the report.
  expect(findExternalLoadsInHtml(stripped, 'p.html').map((f) => f.what)).toEqual([
    '@import url("https://fonts.example.org/f.css',
    "url('https://bg.example/b.png",
    '<img srcset="a.png 1x, https://cdn.example/b.png 2x">',
  ]);
});

test('labrig report with a missing results directory says so and fails', async () => {
  const errors: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => (errors.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    expect(await reportCommand([join(work, 'no-such-results')])).toBe(1);
  } finally {
    process.stderr.write = write;
  }
  expect(errors.join('')).toContain('cannot read Allure results directory');
});
