/**
 * The guest over its serial console only (it needs no network): started paused so `virsh
 * console` (over the host's SSH, with a pty) is attached before the first byte, resumed,
 * logged in, driven by the framed shell protocol; powered off or rebooted from inside.
 * The timings are taken here: start→login and resume→login of every boot.
 */
import { Console } from '../../drivers/console.js';
import { DEFAULT_PROMPT } from '../../drivers/console-options.js';
import { ProductError } from '../../drivers/errors.js';
import type { Virsh } from '../../drivers/libvirt.js';
import type { CommandResult } from '../../drivers/local.js';
import type { Recorder } from '../../drivers/recorder.js';
import { Shell } from '../../drivers/shell.js';
import { type SshSession, shellQuote } from '../../drivers/ssh.js';

export interface GuestBoot {
  /** `virsh start --paused` to the login prompt: what a person waits. */
  startToLoginMs: number;
  /** CPUs running to the login prompt: the guest's own boot. */
  resumeToLoginMs: number;
  /** The console offset where this boot's output starts. */
  from: number;
}

export interface GuestSessionOptions {
  vm: string;
  hostName: string;
  virsh: Virsh;
  ssh: Pick<SshSession, 'openCommand'>;
  /** Local file every console byte is appended to, across boots. */
  logPath: string;
  recorder: Recorder;
  login: { user: string; password?: string };
  bootTimeoutMs: number;
  /** Text the guest prints when its own boot went wrong: ends the wait at once. */
  failOn: RegExp[];
}

export class GuestSession {
  private console: Console | undefined;
  private shell: Shell | undefined;

  constructor(private readonly o: GuestSessionOptions) {}

  get name(): string {
    return `${this.o.hostName}/${this.o.vm}`;
  }

  /** Starts the domain and logs in on its console. */
  async boot(): Promise<GuestBoot> {
    const t0 = performance.now();
    await this.o.virsh.start(this.o.vm, { paused: true });
    const console = await Console.open(
      { kind: 'command', argv: this.o.virsh.consoleArgv(this.o.vm), on: 'ssh' },
      { name: this.name, logPath: this.o.logPath, recorder: this.o.recorder, failOn: this.o.failOn },
      { openCommand: (argv) => this.o.ssh.openCommand(argv.map(shellQuote).join(' '), { pty: true }) },
    );
    this.console = console;
    // virsh prints its banner once attached; only then can no guest byte be missed.
    await console.expect(/Escape character is/, { timeoutMs: 30_000, what: 'virsh console to attach' });
    const from = console.received;
    const t1 = performance.now();
    await this.o.virsh.resume(this.o.vm);
    await console
      .expect(/login: ?$/m, { timeoutMs: this.o.bootTimeoutMs, what: `the login prompt of ${this.o.vm}` })
      .catch((e: unknown) => {
        if (e instanceof ProductError && e.kind === 'timeout')
          throw new ProductError('did-not-boot', e.message.replace(/^\[product:timeout\] /, ''), { host: this.name });
        throw e;
      });
    const t2 = performance.now();
    this.shell = await Shell.overConsole(
      console,
      { user: this.o.login.user, password: this.o.login.password, prompt: new RegExp(DEFAULT_PROMPT, 'm'), timeoutMs: 60_000 },
      { host: this.name, recorder: this.o.recorder, defaultTimeoutMs: 60_000 },
    );
    return { startToLoginMs: Math.round(t2 - t0), resumeToLoginMs: Math.round(t2 - t1), from };
  }

  async run(command: string, opts: { timeoutMs?: number; check?: boolean } = {}): Promise<CommandResult> {
    if (!this.shell) throw new ProductError('command-failed', `no shell on ${this.name}: the guest is not booted`, { host: this.name });
    const r = await this.shell.run(command, opts);
    return { ...r, stdout: r.stdout.replace(/\r/g, '') };
  }

  /** Console text from an offset (a boot's `from`), as received. */
  text(from: number): string {
    return this.console?.text(from) ?? '';
  }

  get received(): number {
    return this.console?.received ?? 0;
  }

  /**
   * Types a command that ends this boot (poweroff, reboot) and waits for the domain to be shut
   * off; returns the console text after the command and how long it took.
   */
  async endWith(command: 'poweroff' | 'reboot', timeoutMs: number): Promise<{ ms: number; after: string }> {
    const console = this.console;
    if (!console) throw new ProductError('command-failed', `no console on ${this.name}`, { host: this.name });
    const from = console.received;
    const t0 = performance.now();
    await console.write(`${command}\n`);
    this.shell = undefined;
    const off = await this.o.virsh.waitForState(this.o.vm, 'shut off', timeoutMs);
    const ms = Math.round(performance.now() - t0);
    // Let virsh console print what QEMU flushed last, then end it.
    await new Promise((r) => setTimeout(r, 300));
    const after = console.text(from);
    await this.close();
    if (!off)
      throw new ProductError(
        'timeout',
        `${this.o.vm} still ${await this.o.virsh.state(this.o.vm)} ${timeoutMs} ms after "${command}" in the guest`,
        {
          host: this.name,
          evidence: this.o.logPath,
          tail: after.split('\n').slice(-20).join('\n'),
        },
      );
    return { ms, after };
  }

  async close(): Promise<void> {
    this.shell = undefined;
    await this.console?.close();
    this.console = undefined;
  }
}
