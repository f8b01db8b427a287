/**
 * A lab host: SSH + console + power, described once in the lab config. Ordinary commands go
 * through a persistent shell over SSH; `exec` isolates one command on its own channel; the
 * console shell is what is left when SSH is down.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { CommandResult, HostCommands } from '../drivers/command.js';
import { Console } from '../drivers/console.js';
import { DEFAULT_PROMPT } from '../drivers/console-options.js';
import { LabError, ProductError } from '../drivers/errors.js';
import { createPower, type PowerController } from '../drivers/power.js';
import { type Recorder, silentRecorder } from '../drivers/recorder.js';
import { Shell, type ShellRunOptions } from '../drivers/shell.js';
import { type ExecOptions, SshSession, shellQuote } from '../drivers/ssh.js';
import { openSshShell } from '../drivers/ssh-shell.js';
import { collectFacts, type HostFacts } from './facts.js';
import { detectOsFamily, readBootIdentity } from './host-os.js';
import type { OsFamily } from './platform.js';
import { judgeNoReturn } from './return-evidence.js';
import { ReturnProbes } from './return-probes.js';
import type { HostConfig } from './schema.js';

export interface HostOptions {
  logDir: string;
  recorder?: Recorder;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What must hold while a host is used and be re-established when it returns (the lease). */
export interface HostGuard {
  /** The host is about to go away on purpose (reboot, kexec) for up to `awayMs`. */
  beforeTransition(awayMs: number): Promise<void>;
  /** The host is back with a new boot_id: re-establish, or throw a LabError. */
  afterReturn(): Promise<void>;
  /** Before each command: throws a LabError when the guard does not hold. */
  check(): Promise<void>;
}

export class Host implements HostCommands {
  readonly name: string;
  readonly ssh: SshSession;
  readonly power: PowerController | undefined;
  private shell: Shell | undefined;
  private consoleStream: Console | undefined;
  private consoleShellInstance: Shell | undefined;
  private recorder: Recorder;
  private readonly guards = new Set<HostGuard>();
  /** Set after a failed transition (did not return): later tests skip with this reason. */
  broken: string | undefined;
  private osFamily: OsFamily | undefined;
  /** Console offset when the host was sent away: what follows it decides did-not-boot vs did-not-return. */
  private transitionMark: number | undefined;
  private consoleBytesAt = performance.now();

  constructor(
    readonly config: HostConfig,
    readonly opts: HostOptions,
  ) {
    this.name = config.name;
    this.recorder = opts.recorder ?? silentRecorder;
    const forwarding: Recorder = {
      step: (t, p, b) => this.recorder.step(t, p, b),
      attach: (n, c, t) => this.recorder.attach(n, c, t),
      log: (l) => this.recorder.log(l),
    };
    this.ssh = new SshSession(config.name, config.ssh, forwarding);
    this.power = config.power ? createPower(config.power, forwarding) : undefined;
  }

  /** Registers a guard (the lease does); returns its removal. */
  addGuard(guard: HostGuard): () => void {
    this.guards.add(guard);
    return () => void this.guards.delete(guard);
  }

  /** Before sending the host away (reboot, kexec): the guards prepare for it, e.g. the lease reserves itself. */
  async announceTransition(awayMs: number): Promise<void> {
    // The console watches the transition, so a host that does not come back can be judged by it.
    if (this.config.console && this.transitionMark === undefined) {
      const console = await this.console().catch(
        (e: Error) => void this.recorder.log(`${this.name}: console not open for the transition: ${e.message.split('\n')[0]}`),
      );
      if (console) this.transitionMark = console.received;
    }
    for (const g of this.guards) await g.beforeTransition(awayMs);
  }

  private async checkGuards(): Promise<void> {
    for (const g of this.guards) await g.check();
  }

  /** Fixtures swap the recorder per test so steps land in the right test. */
  useRecorder(recorder: Recorder): void {
    this.recorder = recorder;
  }

  get consoleLogPath(): string {
    return join(this.opts.logDir, `${this.name}-console.log`);
  }

  /** An ordinary command, through the persistent shell over SSH (stdin is /dev/null). */
  async run(command: string, opts: ShellRunOptions = {}): Promise<CommandResult> {
    this.assertUsable();
    await this.checkGuards();
    try {
      this.shell ??= await openSshShell(this.ssh, this.opts.logDir, this.recorder);
    } catch (e) {
      this.shell = undefined;
      throw e;
    }
    try {
      return await this.shell.run(command, opts);
    } catch (e) {
      // a command killed at its deadline leaves the shell answering; any other lab failure may not
      if (e instanceof LabError && e.kind !== 'lab-timeout') {
        await this.shell?.close().catch(() => undefined);
        this.shell = undefined;
      }
      throw e;
    }
  }

  /** A command on its own SSH channel: when it needs stdin, a pty, or must not share a shell. */
  async exec(command: string, opts: ExecOptions = {}): Promise<CommandResult> {
    this.assertUsable();
    await this.checkGuards();
    return this.ssh.exec(command, opts);
  }

  /** Reads one text file; the shortcut used by facts and suites alike. */
  async read(path: string): Promise<string> {
    return (await this.run(`cat ${shellQuote(path)}`, { check: true })).stdout;
  }

  async console(): Promise<Console> {
    if (this.consoleStream && !this.consoleStream.closed) return this.consoleStream;
    if (!this.config.console) throw new LabError('config', 'this host has no console in the lab config', { host: this.name });
    await mkdir(this.opts.logDir, { recursive: true });
    this.consoleStream = await Console.open(
      this.config.console,
      { name: this.name, logPath: this.consoleLogPath, recorder: this.recorder },
      { openCommand: async (argv) => this.ssh.openCommand(argv.map(shellQuote).join(' '), { pty: true }) },
    );
    this.consoleStream.onBytes(() => void (this.consoleBytesAt = performance.now()));
    return this.consoleStream;
  }

  /** A shell on the console: for when SSH is down, or for what only the console sees. */
  async consoleShell(timeoutMs = 60_000): Promise<Shell> {
    const console = await this.console();
    if (this.consoleShellInstance) return this.consoleShellInstance;
    const login = this.config.console?.login ?? { user: 'root', prompt: DEFAULT_PROMPT };
    const password = login.passwordEnv ? process.env[login.passwordEnv] : undefined;
    this.consoleShellInstance = await Shell.overConsole(
      console,
      { user: login.user, password, prompt: new RegExp(login.prompt, 'm'), timeoutMs },
      { host: this.name, recorder: this.recorder },
    );
    return this.consoleShellInstance;
  }

  /** The OS family: declared in the config, else asked of the host once (plumbing, like boot_id: no guards). */
  async os(): Promise<OsFamily> {
    this.osFamily ??= this.config.os ?? (await detectOsFamily((c) => this.ssh.exec(c, { timeoutMs: 10_000 }), this.name));
    return this.osFamily;
  }

  async bootId(): Promise<string> {
    const os = await this.os();
    return (await readBootIdentity((c) => this.run(c), os, this.name)).id;
  }

  async facts(): Promise<HostFacts> {
    return collectFacts((cmd) => this.run(cmd), this.config.components.qemuDir, this.config.components.libvirtDir);
  }

  /**
   * Waits until the host answers SSH with a boot_id other than `previousBootId`, watching
   * the console (if open) for death strings meanwhile (probes: return-probes.ts). Once it is back the
   * guards re-establish themselves (the lease is taken again, or the wait fails `lease-lost`).
   * A host that does not come back is judged by its console since the transition: the kernel
   * started (banner or later boot output) → ProductError did-not-boot; nothing → LabError did-not-return.
   */
  async waitForReturn(previousBootId: string, timeoutMs = this.config.returnTimeoutMs): Promise<{ bootId: string; ms: number }> {
    const t0 = performance.now();
    return this.recorder.step(`wait for ${this.name} to return`, { timeoutMs }, async () => {
      // A transition the caller did not announce (its own `reboot`): best effort, the host may be going already.
      await this.announceTransition(timeoutMs);
      await this.dropSessions();
      const deadline = Date.now() + timeoutMs;
      const console = this.consoleStream && !this.consoleStream.closed ? this.consoleStream : undefined;
      const mark = this.transitionMark ?? console?.received ?? 0;
      this.transitionMark = undefined;
      const ac = new AbortController();
      const watch = console
        ?.expect(/(?!)/, { timeoutMs, what: 'death strings while the host returns', signal: ac.signal })
        .catch((e: unknown) => e);
      const probes = new ReturnProbes({ host: this.name, ssh: this.config.ssh, os: this.config.os ?? this.osFamily, previousBootId, t0 });
      let back: { bootId: string; ms: number } | undefined;
      try {
        while (!back && Date.now() < deadline) {
          const died = await Promise.race([watch, sleep(0).then(() => undefined)]);
          if (died instanceof ProductError && died.kind === 'panic') throw died;
          back = await probes.poll(100);
        }
      } finally {
        ac.abort();
        probes.stop();
      }
      if (back) {
        for (const g of this.guards) await g.afterReturn();
        return back;
      }
      const since = console ? console.text(mark) : undefined;
      const quietMs = performance.now() - (since ? this.consoleBytesAt : t0);
      const verdict = judgeNoReturn(since, quietMs);
      const ctx = { host: this.name, evidence: console?.logPath, tail: verdict.tail || console?.tail(30) };
      const message = `no SSH with a new boot_id within ${timeoutMs} ms; ${verdict.evidence}`;
      this.broken = `${verdict.kind === 'did-not-boot' ? 'did not boot' : 'did not return'} within ${timeoutMs} ms`;
      throw verdict.kind === 'did-not-boot' ? new ProductError('did-not-boot', message, ctx) : new LabError('did-not-return', message, ctx);
    });
  }

  /** Reboot through the OS (or the power controller with how='power'), proven by a new boot_id. */
  async reboot(how: 'os' | 'power' = 'os', timeoutMs?: number): Promise<{ bootId: string; ms: number }> {
    const before = await this.bootId();
    await this.announceTransition(timeoutMs ?? this.config.returnTimeoutMs);
    await this.recorder.step(`reboot ${this.name}`, { how }, async () => {
      if (how === 'power') {
        if (!this.power)
          throw new LabError('config', 'reboot via power requested but the host has no power controller', { host: this.name });
        await this.power.cycle();
      } else {
        await this.ssh.exec('sync; (sleep 1; reboot -f || reboot) >/dev/null 2>&1 &', { timeoutMs: 10_000 }).catch(() => undefined);
      }
    });
    return this.waitForReturn(before, timeoutMs);
  }

  private async dropSessions(): Promise<void> {
    await this.shell?.close().catch(() => undefined);
    this.shell = undefined;
    this.ssh.close();
    this.consoleShellInstance = undefined;
  }

  private assertUsable(): void {
    if (this.broken) throw new LabError('did-not-return', `host is marked broken: ${this.broken}`, { host: this.name });
  }

  async close(): Promise<void> {
    await this.dropSessions();
    await this.consoleStream?.close();
    this.consoleStream = undefined;
  }
}
