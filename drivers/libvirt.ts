/**
 * virsh over a host's SSH. It never talks to libvirt any other way, so the same calls work on
 * a Kunpeng in the lab and on the emulated arm64 host. Domains come from typed specs.
 */
import type { HostCommands } from './command.js';
import { domainXml, summariseDomain, type DomainSpec, type DomainSummary } from './domain-xml.js';
import { ProductError } from './errors.js';
import { shellQuote } from './ssh.js';

export type DomainState = 'running' | 'shut off' | 'paused' | 'in shutdown' | 'crashed' | 'pmsuspended' | 'idle' | 'absent';

/** `virsh domstate --reason` output: "shut off (shutdown)". */
export function parseStateReason(text: string): { state: DomainState; reason: string } {
  const m = /^(.+?) \((.+)\)$/.exec(text.trim());
  return m ? { state: m[1] as DomainState, reason: m[2]! } : { state: text.trim() as DomainState, reason: '' };
}

export class DefineRejected extends ProductError {
  constructor(host: string, readonly libvirtMessage: string) {
    super('command-failed', `libvirt refused the domain XML: ${libvirtMessage}`, { host });
  }
}

export class Virsh {
  constructor(
    private readonly host: HostCommands,
    readonly uri = 'qemu:///system',
  ) {}

  private cmd(args: string): string {
    return `virsh -q -c ${shellQuote(this.uri)} ${args}`;
  }

  async run(args: string, timeoutMs = 120_000): Promise<string> {
    return (await this.host.run(this.cmd(args), { timeoutMs, check: true })).stdout;
  }

  /** Defines the domain; a refusal by libvirt is a DefineRejected with libvirt's own words. */
  async define(spec: DomainSpec): Promise<{ xml: string; summary: DomainSummary }> {
    const xml = domainXml(spec);
    const r = await this.host.exec(this.cmd('define /dev/stdin'), { input: xml, timeoutMs: 120_000 });
    if (r.code !== 0) throw new DefineRejected(this.host.name, (r.stderr || r.stdout).trim().replace(/^error: /gm, ''));
    const dumped = await this.dumpxml(spec.name);
    return { xml: dumped, summary: summariseDomain(dumped) };
  }

  async dumpxml(name: string, inactive = true): Promise<string> {
    return this.run(`dumpxml ${inactive ? '--inactive ' : ''}${shellQuote(name)}`);
  }

  /** Starts a defined domain; `paused` leaves its CPUs stopped so a console can attach before the first byte. */
  async start(name: string, opts: { paused?: boolean } = {}): Promise<void> {
    await this.run(`start ${opts.paused ? '--paused ' : ''}${shellQuote(name)}`);
  }

  async resume(name: string): Promise<void> {
    await this.run(`resume ${shellQuote(name)}`);
  }

  /** Pulls the plug (the domain stays defined). */
  async destroy(name: string): Promise<void> {
    await this.run(`destroy ${shellQuote(name)}`);
  }

  /**
   * argv of `virsh console` for a Console of kind 'command' over SSH. It needs a tty on the host
   * (FIELD-NOTES), so open it with a pty; `--force` takes the console from a stale session.
   */
  consoleArgv(name: string): string[] {
    return ['virsh', '-c', this.uri, 'console', '--force', name];
  }

  async shutdown(name: string): Promise<void> {
    await this.run(`shutdown ${shellQuote(name)}`);
  }

  async state(name: string): Promise<DomainState> {
    const r = await this.host.run(this.cmd(`domstate ${shellQuote(name)}`), { timeoutMs: 60_000 });
    if (r.code !== 0) return 'absent';
    return r.stdout.trim() as DomainState;
  }

  /** State and libvirt's reason for it ("shut off", "shutdown"; "shut off", "destroyed"). */
  async stateReason(name: string): Promise<{ state: DomainState; reason: string }> {
    const r = await this.host.run(this.cmd(`domstate --reason ${shellQuote(name)}`), { timeoutMs: 60_000 });
    if (r.code !== 0) return { state: 'absent', reason: '' };
    return parseStateReason(r.stdout);
  }

  /** Waits for a state; returns false at the deadline. */
  async waitForState(name: string, want: DomainState, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ((await this.state(name)) === want) return true;
      await new Promise((r) => setTimeout(r, 500));
    }
    return false;
  }

  /** Destroys (if running) and undefines with its nvram; quiet when there is nothing to remove. */
  async remove(name: string): Promise<void> {
    const n = shellQuote(name);
    await this.host.run(`${this.cmd(`destroy ${n}`)} >/dev/null 2>&1; ${this.cmd(`undefine --nvram ${n}`)} >/dev/null 2>&1 || ${this.cmd(`undefine ${n}`)} >/dev/null 2>&1; true`, { timeoutMs: 120_000 });
  }

  /** What libvirt can do for arch/machine; with `emulator`, for that QEMU binary rather than its default. */
  async domcapabilities(arch: string, machine: string, virttype: 'qemu' | 'kvm', emulator?: string): Promise<string> {
    const bin = emulator ? ` --emulatorbin ${shellQuote(emulator)}` : '';
    return this.run(`domcapabilities --arch ${shellQuote(arch)} --machine ${shellQuote(machine)} --virttype ${virttype}${bin}`);
  }

  async version(): Promise<{ libvirt: string; hypervisor: string }> {
    const text = await this.run('version');
    return {
      libvirt: /Using library: libvirt ([\d.]+)/.exec(text)?.[1] ?? /libvirt ([\d.]+)/.exec(text)?.[1] ?? 'unknown',
      hypervisor: /Running hypervisor: \S+ ([\d.]+)/.exec(text)?.[1] ?? 'unknown',
    };
  }
}
