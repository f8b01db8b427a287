/**
 * xl, Xen's toolstack, over a host's SSH: `xl list` / `xl list -l` / `xl info` parsed into
 * typed values, domain configs written from a typed spec (xl-cfg.ts) and read back through
 * `xl create -n`, create / unpause / shutdown with a deadline and a destroy fallback.
 */
import { randomBytes } from 'node:crypto';
import { LabError, ProductError } from './errors.js';
import type { CommandResult } from './local.js';
import { shellQuote } from './ssh.js';
import { type XlDomainSpec, xlConfig } from './xl-cfg.js';
import { parseXlDryRun, parseXlInfo, parseXlList, parseXlListLong, type XlDomain, type XlDomainConfig, type XlInfo } from './xl-parse.js';

export * from './xl-cfg.js';
export * from './xl-parse.js';

/** What Xl needs of a host: targets/host.ts's Host has both. */
export interface XlHost {
  readonly name: string;
  run(command: string, opts?: { timeoutMs?: number; check?: boolean }): Promise<CommandResult>;
  exec(command: string, opts?: { timeoutMs?: number; input?: string; check?: boolean }): Promise<CommandResult>;
}

export interface XlCreateResult {
  ok: boolean;
  code: number | null;
  /** xl's own output (-vvv goes to stderr): the evidence when create fails. */
  output: string;
  ms: number;
}

export interface XlShutdownResult {
  method: 'shutdown' | 'destroy';
  ms: number;
  /** Why the fallback was taken, when it was. */
  reason?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Xl {
  constructor(readonly host: XlHost) {}

  private async xl(args: string, timeoutMs = 60_000): Promise<string> {
    const r = await this.host.run(`xl ${args}`, { timeoutMs });
    if (r.code !== 0)
      throw new ProductError('command-failed', `xl ${args}: exit ${r.code}\n${(r.stderr || r.stdout).trim().slice(-2000)}`, {
        host: this.host.name,
      });
    return r.stdout;
  }

  async list(): Promise<XlDomain[]> {
    return parseXlList(await this.xl('list'));
  }

  async listLong(): Promise<XlDomainConfig[]> {
    return parseXlListLong(await this.xl('list -l'));
  }

  async info(): Promise<XlInfo> {
    return parseXlInfo(await this.xl('info'));
  }

  /** Xen's console ring: the same lines Xen wrote to its serial console. */
  async dmesg(): Promise<string> {
    return this.xl('dmesg');
  }

  async domain(name: string): Promise<XlDomain | undefined> {
    return (await this.list()).find((d) => d.name === name);
  }

  /** Writes the cfg (through stdin: no quoting of its text on any command line) and returns it. */
  async writeConfig(path: string, spec: XlDomainSpec): Promise<string> {
    const text = xlConfig(spec);
    const dir = path.replace(/\/[^/]*$/, '') || '/';
    const r = await this.host.exec(`mkdir -p ${shellQuote(dir)} && cat > ${shellQuote(path)}`, { input: text, timeoutMs: 30_000 });
    if (r.code !== 0) throw new LabError('lab-setup', `cannot write ${path}: ${r.stderr.trim()}`, { host: this.host.name });
    return text;
  }

  /** libxl's reading of a cfg file, without creating anything. */
  async dryRun(path: string): Promise<XlDomainConfig> {
    return parseXlDryRun(await this.xl(`create -n ${shellQuote(path)}`));
  }

  /** `xl -vvv create [-p]`: never throws for xl's own failure, so the caller can attach the output. */
  async create(path: string, opts: { paused?: boolean; timeoutMs?: number } = {}): Promise<XlCreateResult> {
    const t0 = performance.now();
    const r = await this.host.run(`xl -vvv create ${opts.paused ? '-p ' : ''}${shellQuote(path)}`, {
      timeoutMs: opts.timeoutMs ?? 120_000,
    });
    return { ok: r.code === 0, code: r.code, output: `${r.stdout}${r.stderr}`, ms: Math.round(performance.now() - t0) };
  }

  async unpause(name: string): Promise<void> {
    await this.xl(`unpause ${shellQuote(name)}`);
  }

  async destroy(name: string): Promise<void> {
    await this.xl(`destroy ${shellQuote(name)}`);
  }

  /**
   * Polls `xl list` until no domain is called `name` (nor has id `domid`: a dying domain
   * stays listed as `(null)` until Xen has freed it); false at the deadline.
   */
  async waitGone(name: string, timeoutMs: number, domid?: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!(await this.list()).some((d) => d.name === name || d.id === domid)) return true;
      if (Date.now() >= deadline) return false;
      await sleep(300);
    }
  }

  /**
   * `xl shutdown`, then wait for the domain to leave `xl list`; a guest that does not go
   * within `timeoutMs` (or refuses the request) is destroyed instead, and the result says so.
   */
  async shutdown(name: string, opts: { timeoutMs: number; destroyTimeoutMs?: number; domid?: number }): Promise<XlShutdownResult> {
    const t0 = performance.now();
    const ms = () => Math.round(performance.now() - t0);
    const r = await this.host.run(`xl shutdown ${shellQuote(name)}`, { timeoutMs: 60_000 });
    let reason: string | undefined;
    if (r.code !== 0) reason = `xl shutdown failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-500)}`;
    else if (await this.waitGone(name, opts.timeoutMs, opts.domid)) return { method: 'shutdown', ms: ms() };
    else reason = `still listed ${opts.timeoutMs} ms after xl shutdown`;
    await this.destroy(name);
    if (!(await this.waitGone(name, opts.destroyTimeoutMs ?? 30_000, opts.domid)))
      throw new ProductError('timeout', `${name} is still listed after xl destroy (${reason})`, { host: this.host.name });
    return { method: 'destroy', ms: ms(), reason };
  }
}

/** A domain name no earlier run can have left behind: `<prefix>-<6 hex>`. */
export function uniqueDomainName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}
