/**
 * The lab's health check (LAVA's idea): for every host, can we reach it the way the suites
 * will? One line per check; a host with a failed check is not fit for a run.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { shellQuote } from '../drivers/ssh.js';
import { versionMismatches } from './facts.js';
import { Host } from './host.js';
import { markChecks } from './reservation.js';
import type { HostConfig, Lab } from './schema.js';

export interface Check {
  host: string;
  check: string;
  ok: boolean;
  detail: string;
}

async function attempt(host: string, check: string, body: () => Promise<string>): Promise<Check> {
  try {
    return { host, check, ok: true, detail: await body() };
  } catch (e) {
    return { host, check, ok: false, detail: (e as Error).message.split('\n')[0] ?? String(e) };
  }
}

export async function doctorHost(config: HostConfig, lab: Lab, logDir: string): Promise<Check[]> {
  const host = new Host(config, { logDir });
  const checks: Check[] = [];
  const name = config.name;
  try {
    const ssh = await attempt(name, 'ssh', async () => {
      await host.exec('true', { timeoutMs: 20_000, check: true });
      return `${config.ssh.user}@${config.ssh.address}:${config.ssh.port}, host key ${config.ssh.hostKey} matches`;
    });
    checks.push(ssh);
    if (config.console)
      checks.push(
        await attempt(name, 'console', async () => {
          const console = await host.console();
          await console.write('\n');
          await console.expect(/[^\s]/, { timeoutMs: 15_000, what: 'any output after a newline', from: console.received });
          return `${console.where} answers (log ${console.logPath})`;
        }),
      );
    if (host.power) checks.push(await attempt(name, 'power', async () => `status ${await host.power!.status()}`));
    if (ssh.ok) {
      // reserved by someone else, or not in state good: failed, so `labrig run` quarantines it
      checks.push(...(await markChecks(host.ssh, lab.hostStateDir)).map((c) => ({ host: name, ...c })));
      checks.push(
        await attempt(name, 'lease', async () => {
          const p = lab.lease.path;
          const lock = shellQuote(`${p}.lock`);
          // no lock file yet (nobody ever leased this host): free, and nothing is created here
          const probe = await host.run(`if [ ! -e ${lock} ]; then echo never; elif flock -n ${lock} true; then echo free; else echo held; fi`);
          const verdict = probe.stdout.trim();
          if (verdict === 'never') return 'free (never leased)';
          if (verdict === 'free') return 'free';
          if (verdict !== 'held') throw new Error(`cannot read the lease lock ${p}.lock: ${(probe.stderr || probe.stdout).trim() || `exit ${probe.code}`}`);
          const r = await host.run(`cat ${shellQuote(p)}; echo; echo $(( $(date +%s) - $(cat ${shellQuote(`${p}.heartbeat`)}) ))`);
          const [holder, age] = r.stdout.trim().split('\n');
          return `held by ${holder || 'an unknown holder'}, heartbeat ${age ?? '?'} s ago`;
        }),
      );
      checks.push(
        await attempt(name, 'facts', async () => {
          const facts = await host.facts();
          if (facts.arch !== config.expect.arch) throw new Error(`declared arch ${config.expect.arch}, host says ${facts.arch}`);
          const wrong = versionMismatches(facts, config.expect.versions);
          if (wrong.length) throw new Error(`not the versions this run validates: ${wrong.join('; ')}`);
          return `${facts.arch}, ${facts.kernel}, ${facts.distro}`;
        }),
      );
    }
  } finally {
    await host.close().catch(() => undefined);
  }
  return checks;
}

export async function doctor(lab: Lab, only?: string[]): Promise<Check[]> {
  const logDir = await mkdtemp(join(tmpdir(), 'labrig-doctor-'));
  const results: Check[] = [];
  for (const config of lab.hosts.filter((h) => !only?.length || only.includes(h.name))) results.push(...(await doctorHost(config, lab, logDir)));
  return results;
}
