/**
 * Playwright fixtures: the lab, one leased host per worker (= per project), findings, and the
 * console slice of every test attached to it. The only place besides suites/ that knows the runner.
 */

import { basename } from 'node:path';
import { test as base } from '@playwright/test';
import { isLabError } from '../drivers/errors.js';
import { consoleRecorder } from '../drivers/recorder.js';
import { buildLibvirtd, startedLibvirtd, stoppedLibvirtd } from './components-libvirtd.js';
import { loadLab } from './config.js';
import { Host } from './host.js';
import { acquireLease, type Lease } from './lease.js';
import { readQuarantine } from './quarantine.js';
import { allureRecorder, labRedactor, maskStdio, showFinding } from './recorders.js';
import { refuseProductRetry, rememberFailure } from './retry-policy.js';
import { logsDirOf, runContext } from './run-context.js';
import type { Lab } from './schema.js';

export interface Finding {
  suite: string;
  host: string;
  key: string;
  value: string | number | boolean;
  unit?: string;
}

export interface Findings {
  record(key: string, value: string | number | boolean, unit?: string): void;
  readonly all: readonly Finding[];
}

const ctx = runContext();
export const runId = ctx.runId;

interface WorkerFixtures {
  lab: Lab;
  leasedHost: { host: Host; lease: Lease | undefined; factsAttached: boolean; quarantined?: string };
}

interface TestFixtures {
  host: Host;
  findings: Findings;
}

export const test = base.extend<TestFixtures, WorkerFixtures>({
  lab: [
    async ({}, use) => {
      const lab = await loadLab();
      // What a worker prints (and so the terminal and the report's stdout) never shows a secret.
      const unmask = maskStdio(labRedactor(lab));
      try {
        await use(lab);
      } finally {
        unmask();
      }
    },
    { scope: 'worker' },
  ],

  leasedHost: [
    async ({ lab }, use, workerInfo) => {
      const name = (workerInfo.project.metadata as { host?: string }).host;
      const config = lab.hosts.find((h) => h.name === name);
      if (!config) throw new Error(`project ${workerInfo.project.name} names host "${name}", which is not in the lab`);
      const logDir = logsDirOf(ctx);
      const host = new Host(config, { logDir, recorder: consoleRecorder(`[${name}] `) });
      const quarantined = readQuarantine()[config.name];
      if (quarantined) return use({ host, lease: undefined, factsAttached: true, quarantined });
      const lease = await acquireLease(host, { ...lab.lease, runId, recorder: consoleRecorder(`[${name}] `) });
      const state = { host, lease, factsAttached: false };
      const libvirtd = buildLibvirtd(config);
      try {
        if (config.console) await host.console();
        // a libvirt build (components.libvirtDir): its own libvirtd for this worker, under the lease
        if (libvirtd) await startedLibvirtd(host, libvirtd, logDir, runId);
        await use(state);
      } finally {
        if (libvirtd) await stoppedLibvirtd(host, libvirtd, logDir);
        await host.close();
        await lease?.release();
        host.ssh.close();
      }
    },
    { scope: 'worker' },
  ],

  host: async ({ leasedHost, lab }, use, testInfo) => {
    const { host } = leasedHost;
    if (leasedHost.quarantined)
      testInfo.skip(true, `[lab:quarantined] host ${host.name} failed the health check before the run: ${leasedHost.quarantined}`);
    if (host.broken) testInfo.skip(true, `[lab:did-not-return] host ${host.name} is broken: ${host.broken}`);
    await refuseProductRetry(testInfo, ctx.outDir);
    const redact = labRedactor(lab);
    host.useRecorder(allureRecorder(redact));
    const console = host.config.console ? await host.console() : undefined;
    const from = console?.received ?? 0;
    if (!leasedHost.factsAttached) {
      const facts = await host.facts();
      await testInfo.attach('labrig-facts.json', {
        body: JSON.stringify({ host: host.name, facts }, null, 2),
        contentType: 'application/json',
      });
      leasedHost.factsAttached = true;
    }
    try {
      await use(host);
    } finally {
      if (console) await testInfo.attach(`console-${host.name}.log`, { body: redact(console.text(from)), contentType: 'text/plain' });
      host.useRecorder(consoleRecorder(`[${host.name}] `));
      await rememberFailure(testInfo, ctx.outDir);
    }
  },

  findings: async ({ leasedHost }, use, testInfo) => {
    const all: Finding[] = [];
    // Awaited before the test ends: a parameter still in flight when it ends is lost.
    const shown: Promise<void>[] = [];
    const suite = basename(testInfo.file).replace(/\.spec\.ts$/, '');
    const findings: Findings = {
      record(key, value, unit) {
        all.push({ suite, host: leasedHost.host.name, key, value, ...(unit ? { unit } : {}) });
        shown.push(showFinding(key, value, unit));
      },
      all,
    };
    await use(findings);
    await Promise.all(shown);
    if (all.length) await testInfo.attach('labrig-findings.json', { body: JSON.stringify(all, null, 2), contentType: 'application/json' });
  },
});

export { expect } from '@playwright/test';
/** For a suite's catch blocks: lab failures stay lab failures. */
export { isLabError };
export const logsDir = () => logsDirOf(ctx);
