/**
 * virsh over a host's SSH. It never talks to libvirt any other way, so the same calls work on
 * a Kunpeng in the lab and on the emulated arm64 host. Domains come from typed specs.
 */
import { randomBytes } from 'node:crypto';
import type { CommandResult, HostCommands } from './command.js';
import { type DomainSpec, type DomainSummary, domainXml, summariseDomain } from './domain-xml.js';
import { LabError, ProductError } from './errors.js';
import { shellQuote } from './ssh.js';

/** A host's commands, and its SshSession when it has one: a domain's XML then travels over the kept SFTP channel and is defined through the shell, no channel of its own. */
export type VirshHost = HostCommands & { readonly ssh?: object };

interface FileWriter {
  writeFile(remotePath: string, content: string, mode?: number): Promise<void>;
}

const canWriteFiles = (ssh: object | undefined): ssh is FileWriter =>
  typeof (ssh as Partial<FileWriter> | undefined)?.writeFile === 'function';

export type DomainState = 'running' | 'shut off' | 'paused' | 'in shutdown' | 'crashed' | 'pmsuspended' | 'idle' | 'absent';

/** `virsh domstate --reason` output: "shut off (shutdown)". */
export function parseStateReason(text: string): { state: DomainState; reason: string } {
  const m = /^(.+?) \((.+)\)$/.exec(text.trim());
  return m ? { state: m[1] as DomainState, reason: m[2]! } : { state: text.trim() as DomainState, reason: '' };
}

const DEFINE_TIMEOUT_MS = 120_000;

export class DefineRejected extends ProductError {
  constructor(
    host: string,
    readonly libvirtMessage: string,
  ) {
    super('command-failed', `libvirt refused the domain XML: ${libvirtMessage}`, { host });
  }
}

/** Which libvirtd virsh talks to, and which virsh: a build's daemon has its own socket and its own client. */
export interface LibvirtEndpoint {
  uri: string;
  /** The virsh to run (a name on PATH or a path). */
  virsh: string;
}

export const SYSTEM_LIBVIRT: LibvirtEndpoint = { uri: 'qemu:///system', virsh: 'virsh' };

export class Virsh {
  readonly uri: string;
  private readonly virsh: string;

  constructor(
    private readonly host: VirshHost,
    endpoint: LibvirtEndpoint = SYSTEM_LIBVIRT,
  ) {
    this.uri = endpoint.uri;
    this.virsh = endpoint.virsh;
  }

  private cmd(args: string): string {
    return `${shellQuote(this.virsh)} -q -c ${shellQuote(this.uri)} ${args}`;
  }

  async run(args: string, timeoutMs = 120_000): Promise<string> {
    return (await this.host.run(this.cmd(args), { timeoutMs, check: true })).stdout;
  }

  /** Defines the domain; a refusal by libvirt is a DefineRejected with libvirt's own words. */
  async define(spec: DomainSpec): Promise<{ xml: string; summary: DomainSummary }> {
    const xml = domainXml(spec);
    const ssh = this.host.ssh;
    const r = canWriteFiles(ssh)
      ? await this.defineFromFile(ssh, xml)
      : await this.host.exec(this.cmd('define /dev/stdin'), { input: xml, timeoutMs: DEFINE_TIMEOUT_MS });
    if (r.code !== 0) throw new DefineRejected(this.host.name, (r.stderr || r.stdout).trim().replace(/^error: /gm, ''));
    const dumped = await this.dumpxml(spec.name);
    return { xml: dumped, summary: summariseDomain(dumped) };
  }

  private async defineFromFile(ssh: FileWriter, xml: string): Promise<CommandResult> {
    const path = `/tmp/labrig-define-${randomBytes(8).toString('hex')}.xml`;
    await ssh.writeFile(path, xml, 0o600);
    const file = shellQuote(path);
    try {
      const r = await this.host.run(`${this.cmd(`define ${file}`)}; rc=$?; rm -f ${file}; exit $rc`, { timeoutMs: DEFINE_TIMEOUT_MS });
      return { ...r, stderr: r.stderr.replaceAll(path, 'the domain XML') };
    } catch (e) {
      // A hung define stays the lab's failure, as it was on a channel of its own.
      if (e instanceof ProductError && e.kind === 'timeout') throw new LabError('lab-timeout', e.message, { host: this.host.name });
      throw e;
    }
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
    return [this.virsh, '-c', this.uri, 'console', '--force', name];
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

  /**
   * Destroys (if running) and undefines with its nvram, quiet when there is nothing to remove.
   * One virsh connection for both (a batch; its status is the last command's): each connection
   * costs a round trip to libvirtd. virsh reads its batch with the shell's single quotes.
   */
  async remove(name: string): Promise<void> {
    const n = shellQuote(name);
    const batch = shellQuote(`destroy ${n}; undefine --nvram ${n}`);
    await this.host.run(`${this.cmd(batch)} >/dev/null 2>&1 || ${this.cmd(`undefine ${n}`)} >/dev/null 2>&1; true`, { timeoutMs: 120_000 });
  }

  /** What libvirt can do for arch/machine; with `emulator`, for that QEMU binary rather than its default. */
  async domcapabilities(arch: string, machine: string, virttype: 'qemu' | 'kvm', emulator?: string): Promise<string> {
    const bin = emulator ? ` --emulatorbin ${shellQuote(emulator)}` : '';
    return this.run(`domcapabilities --arch ${shellQuote(arch)} --machine ${shellQuote(machine)} --virttype ${virttype}${bin}`);
  }

  /**
   * libvirt's version and the QEMU's. `hypervisor` is what libvirt reports, its default emulator;
   * with `emulator` (a domain that names its own, a components.qemuDir build) it is that binary's
   * version, the QEMU that actually runs.
   */
  async version(emulator?: string): Promise<{ libvirt: string; hypervisor: string }> {
    const text = await this.run('version');
    const own = emulator
      ? /version ([\d.]+)/.exec((await this.host.run(`${shellQuote(emulator)} --version`, { timeoutMs: 60_000 })).stdout)?.[1]
      : undefined;
    return {
      libvirt: /Using library: libvirt ([\d.]+)/.exec(text)?.[1] ?? /libvirt ([\d.]+)/.exec(text)?.[1] ?? 'unknown',
      hypervisor: own ?? /Running hypervisor: \S+ ([\d.]+)/.exec(text)?.[1] ?? 'unknown',
    };
  }
}
