/**
 * The lab's health check (LAVA's idea): for every host, can we reach it the way the suites
 * will? One line per check; a host with a failed check is not fit for a run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentRecorder } from '../drivers/recorder.js';
import { shellQuote } from '../drivers/shell-frame.js';
import { versionMismatches } from './facts.js';
import { Host } from './host.js';
import { imagePaths, missingImageLine } from './image-paths.js';
import { acquireLease, type Lease, readLease } from './lease.js';
import { type Part, preflight } from './preflight.js';
import { markChecks } from './reservation.js';
import type { HostConfig, Lab } from './schema.js';
import { describeLeftover, harnessFolders, sweepHost } from './sweep.js';

export interface Check {
  host: string;
  check: string;
  ok: boolean;
  detail: string;
  /** What the check removed from the host, one line each (the sweep). */
  removed?: string[];
}

async function attempt(host: string, check: string, body: () => Promise<string>): Promise<Check> {
  try {
    return { host, check, ok: true, detail: await body() };
  } catch (e) {
    return { host, check, ok: false, detail: (e as Error).message.split('\n')[0] ?? String(e) };
  }
}

export interface DoctorOptions {
  /**
   * Remove what crashed runs left (the run's health check does). Only a run's own health check
   * sweeps: it relies on every user of the host holding the host's lease, as runs do.
   */
  sweep?: boolean;
}

export async function doctorHost(config: HostConfig, lab: Lab, logDir: string, opts: DoctorOptions = {}): Promise<Check[]> {
  const name = config.name;
  const problems = await preflight(config, lab.hosts.indexOf(config));
  const failed = (part: Part) => problems.filter((p) => p.part === part);
  // Every runner-side problem is its own line; a part that has one is not tried.
  const checks: Check[] = problems.map((p) => ({ host: name, check: p.part, ok: false, detail: p.line }));
  const host = new Host(config, { logDir });
  let lease: Lease | undefined;
  try {
    const ssh = failed('ssh').length
      ? undefined
      : await attempt(name, 'ssh', async () => {
          await host.exec('true', { timeoutMs: 20_000, check: true });
          return `${config.ssh.user}@${config.ssh.address}:${config.ssh.port}, host key ${config.ssh.hostKey} matches`;
        });
    if (ssh) checks.push(ssh);
    // doctor types into the console and sweeps leftovers: only while holding the host's lease,
    // so never into a test's host, and never what a live run is using.
    let noLease = ssh ? 'SSH is down, so the lease cannot be taken' : 'SSH is not configured right, so the lease cannot be taken';
    const runId = process.env.LABRIG_RUN_ID || `doctor-${process.pid}`;
    if (ssh?.ok)
      checks.push(
        await attempt(name, 'lease', async () => {
          if (!config.console && !opts.sweep) return await readLease(host.ssh, lab.lease);
          try {
            lease = await acquireLease(host, { ...lab.lease, runId, recorder: silentRecorder });
            return `free: taken while doctor ${[config.console && 'types into the console', opts.sweep && 'sweeps what earlier runs left'].filter(Boolean).join(' and ')}`;
          } catch (e) {
            noLease = (e as Error).message.split('\n')[0]!;
            if (!noLease.startsWith('[lab:lease-held]')) throw e;
            return noLease.replace(/^\[lab:lease-held\] (host \S+: )?the lease at \S+ is /, '');
          }
        }),
      );
    if (config.console && !failed('console').length)
      checks.push(
        await attempt(name, 'console', async () => {
          if (!lease) throw new Error(`not typed into without the host's lease: ${noLease}`);
          const console = await host.console();
          await console.write('\n');
          await console.expect(/[^\s]/, { timeoutMs: 15_000, what: 'any output after a newline', from: console.received });
          return `${console.where} answers (log ${console.logPath})`;
        }),
      );
    if (ssh?.ok && opts.sweep) {
      let removed: string[] = [];
      const sweep = await attempt(name, 'sweep', async () => {
        if (!lease) return `not swept: another run holds the host (${noLease})`;
        const r = await sweepHost(host, { runId, ...harnessFolders(lab.hostStateDir, config.suites) });
        removed = r.removed.map(describeLeftover);
        const notes = r.notes.length ? ` (${r.notes.join('; ')})` : '';
        if (r.failed.length)
          throw new Error(`could not remove what an earlier run left: ${r.failed.map(describeLeftover).join(', ')}${notes}`);
        return removed.length ? `removed what earlier runs left: ${removed.join(', ')}${notes}` : `nothing left by earlier runs${notes}`;
      });
      checks.push({ ...sweep, ...(removed.length ? { removed } : {}) });
    }
    if (host.power && !failed('power').length)
      checks.push(
        await attempt(name, 'power', async () => {
          const status = await host.power!.status();
          if (status === 'unknown')
            throw new Error(
              `the ${config.power!.kind} power controller answers, but not with on or off: check hosts[${lab.hosts.indexOf(config)}].power`,
            );
          return `status ${status}`;
        }),
      );
    if (ssh?.ok) checks.push(...(await hostImageChecks(host, config, lab.hosts.indexOf(config))));
    if (ssh?.ok) {
      // reserved by someone else, or not in state good: failed, so `labrig run` quarantines it
      checks.push(...(await markChecks(host.ssh, lab.hostStateDir)).map((c) => ({ host: name, ...c })));
      checks.push(
        await attempt(name, 'facts', async () => {
          const facts = await host.facts();
          if (facts.arch !== config.expect.arch) throw new Error(`declared arch ${config.expect.arch}, host says ${facts.arch}`);
          if (!facts.os) throw new Error('uname -s names an OS the lab does not drive (linux, freebsd)');
          if (config.os && facts.os !== config.os) throw new Error(`declared os ${config.os}, host says ${facts.os}`);
          const wrong = versionMismatches(facts, config.expect.versions);
          if (wrong.length) throw new Error(`not the versions this run validates: ${wrong.join('; ')}`);
          return `${facts.os} ${facts.arch}, ${facts.kernel}, ${facts.distro}`;
        }),
      );
    }
  } finally {
    await host.close().catch(() => undefined);
    await lease?.release();
  }
  return checks;
}

/** The guest images the config names on the host: one failed check per missing file, naming its field. */
async function hostImageChecks(host: Host, config: HostConfig, index: number): Promise<Check[]> {
  const onHost = imagePaths(config).filter((p) => p.on === 'host');
  if (!onHost.length) return [];
  const check = (ok: boolean, detail: string): Check => ({ host: config.name, check: 'images', ok, detail });
  let missing: number[];
  try {
    const script = onHost.map((p, i) => `[ -r ${shellQuote(p.path)} ] || echo ${i}`).join('; ');
    missing = (await host.exec(script, { timeoutMs: 20_000, check: true })).stdout.split('\n').filter(Boolean).map(Number);
  } catch (e) {
    return [check(false, `could not look for the guest images on the host: ${(e as Error).message.split('\n')[0]}`)];
  }
  if (missing.length) return missing.map((i) => check(false, missingImageLine(`hosts[${index}]`, onHost[i]!)));
  return [check(true, `guest images present on the host: ${onHost.map((p) => p.field.replace(/^suites\./, '')).join(', ')}`)];
}

/** Console logs go to `logDir` when given (a run keeps them as evidence), else to a temporary folder removed at the end. */
export async function doctor(lab: Lab, only?: string[], logDir?: string, opts: DoctorOptions = {}): Promise<Check[]> {
  const dir = logDir ?? (await mkdtemp(join(tmpdir(), 'labrig-doctor-')));
  const results: Check[] = [];
  try {
    for (const config of lab.hosts.filter((h) => !only?.length || only.includes(h.name)))
      results.push(...(await doctorHost(config, lab, dir, opts)));
  } finally {
    if (!logDir) await rm(dir, { recursive: true, force: true });
  }
  return results;
}
