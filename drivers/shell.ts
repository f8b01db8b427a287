/**
 * One shell protocol over any byte stream: a serial console (a tty: echo, prompts, kernel
 * noise) or an SSH channel running `sh` (pipes: stdout and stderr apart).
 *
 * Each command is framed by markers built from a fresh nonce. The marker is printed by
 * `printf '%s:S\n' NONCE`, so the command line (which a tty echoes) never contains the
 * marker text itself — labgrid's split-quote trick. The end marker carries the exit code.
 */
import { randomBytes } from 'node:crypto';
import { Console } from './console.js';
import { LabError, ProductError } from './errors.js';
import type { CommandResult } from './local.js';
import { silentRecorder, type Recorder } from './recorder.js';

export interface ShellRunOptions {
  timeoutMs?: number;
  /** Throw ProductError('command-failed') when the exit code is not 0. */
  check?: boolean;
}

export interface ShellOptions {
  host: string;
  recorder?: Recorder;
  defaultTimeoutMs?: number;
}

export interface PipeTransport {
  stdout: Console;
  stderr: Console;
  write(data: string): Promise<void>;
  /** Kills a process and its descendants on the far side without using this shell (a second SSH channel). */
  killTree(pid: number): Promise<void>;
  close(): Promise<void>;
}

export interface LoginOptions {
  user: string;
  password?: string;
  prompt: RegExp;
  timeoutMs: number;
}

const nonce = () => randomBytes(6).toString('hex');
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

type Mode = { kind: 'tty'; console: Console } | { kind: 'pipe'; transport: PipeTransport };

export class Shell {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly recorder: Recorder;
  private readonly defaultTimeoutMs: number;

  private constructor(
    private readonly mode: Mode,
    private readonly opts: ShellOptions,
  ) {
    this.recorder = opts.recorder ?? silentRecorder;
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? 60_000;
  }

  /** A shell over a pipe transport (an SSH `sh` channel): no prompt, no echo, stderr apart. */
  static async overPipe(transport: PipeTransport, opts: ShellOptions): Promise<Shell> {
    const shell = new Shell({ kind: 'pipe', transport }, opts);
    await shell.run('true', { timeoutMs: 20_000, check: true });
    return shell;
  }

  /**
   * A shell over a console: wakes it, logs in if it asks, then normalises it (no echo, no
   * prompt, no CR translation, quiet kernel log) before the first real command.
   */
  static async overConsole(console: Console, login: LoginOptions, opts: ShellOptions): Promise<Shell> {
    const shell = new Shell({ kind: 'tty', console }, opts);
    await shell.recorder.step(`console login ${opts.host}`, { user: login.user }, () => shell.login(login));
    return shell;
  }

  private async login(login: LoginOptions): Promise<void> {
    const console = (this.mode as { console: Console }).console;
    const deadline = Date.now() + login.timeoutMs;
    const left = () => Math.max(1, deadline - Date.now());
    await console.write('\x03\n');
    const loginRe = /login: ?$/m;
    const passwordRe = /[Pp]assword: ?$/m;
    const first = await console.expect([loginRe, login.prompt], { timeoutMs: left(), what: 'a login or shell prompt' });
    if (first.patternIndex === 0) {
      await console.write(`${login.user}\n`);
      const next = await console.expect([passwordRe, login.prompt], { timeoutMs: left(), what: 'a password or shell prompt' });
      if (next.patternIndex === 0) {
        if (login.password === undefined) throw new LabError('config', 'the console asks for a password but console.login.passwordEnv is not set', { host: this.opts.host, evidence: console.logPath });
        await console.write(`${login.password}\n`);
        await console.expect(login.prompt, { timeoutMs: left(), what: 'a shell prompt after the password' });
      }
    }
    await this.frame(
      "stty -echo -onlcr cols 512 2>/dev/null; PS1=''; PS2=''; unset PROMPT_COMMAND; set +o emacs +o vi 2>/dev/null; dmesg -n 1 2>/dev/null; true",
      left(),
    );
  }

  /** Runs one command; commands on one shell are serialised. */
  run(command: string, opts: ShellRunOptions = {}): Promise<CommandResult> {
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
    const next = this.queue.then(() =>
      this.recorder.step(`${this.mode.kind === 'tty' ? 'console' : 'shell'} ${this.opts.host}: ${command}`, { timeoutMs }, async () => {
        const result = await this.frame(command, timeoutMs);
        if (opts.check && result.code !== 0)
          throw new ProductError('command-failed', `exit ${result.code}: ${command}\n${(result.stderr || result.stdout).trim().slice(-2000)}`, { host: this.opts.host });
        return result;
      }),
    );
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async frame(command: string, timeoutMs: number): Promise<CommandResult> {
    const n = nonce();
    const t0 = performance.now();
    const start = new RegExp(`${n}:S\\r?\\n`);
    const end = new RegExp(`\\r?\\n${n}:E:(-?\\d+)\\r?\\n`);
    if (this.mode.kind === 'tty') {
      const console = this.mode.console;
      await console.write(`printf '%s:S\\n' ${n}; ${command}\nprintf '\\n%s:E:%d\\n' ${n} "$?"\n`);
      try {
        await console.expect(start, { timeoutMs, what: `start marker of: ${command}` });
        const m = await console.expect(end, { timeoutMs, what: `end of: ${command}` });
        return { stdout: m.before, stderr: '', code: Number(m.match[1]), signal: null, ms: Math.round(performance.now() - t0) };
      } catch (e) {
        if (e instanceof ProductError && e.kind === 'timeout') await this.resync(command, timeoutMs);
        throw e;
      }
    }
    const { transport } = this.mode;
    const pidLine = new RegExp(`${n}:P:(\\d+)\\n`);
    // No echo and no prompt on a pipe: the previous end marker is where this output starts.
    // A subshell costs one fork and no exec (≈0.5 ms): the command cannot exit or change
    // the persistent shell, and its pid is the root of the tree a timeout kills.
    await transport.write(
      `( ${command}\n) </dev/null & __lr=$!; printf '%s:P:%d\\n' ${n} "$__lr" >&2; wait "$__lr"; __rc=$?; ` +
        `printf '\\n%s:E:%d\\n' ${n} "$__rc"; printf '\\n%s:E:0\\n' ${n} >&2\n`,
    );
    const quiet = { defaultFailOn: false } as const;
    try {
      let out;
      try {
        out = await transport.stdout.expect(end, { ...quiet, timeoutMs, what: `end of: ${command}` });
      } catch (e) {
        if (!(e instanceof ProductError && e.kind === 'timeout')) throw e;
        const p = await transport.stderr.expect(pidLine, { ...quiet, timeoutMs: 10_000, what: `pid of: ${command}`, from: transport.stderr.cursor });
        await transport.killTree(Number(p.match[1]));
        await transport.stdout.expect(end, { ...quiet, timeoutMs: 10_000, what: `end of killed: ${command}` });
        await transport.stderr.expect(end, { ...quiet, timeoutMs: 10_000, what: `stderr end of killed: ${command}` });
        throw new ProductError('timeout', `command did not finish in ${timeoutMs} ms; it and its children were killed: ${command}`, { host: this.opts.host });
      }
      const err = await transport.stderr.expect(end, { ...quiet, timeoutMs: 10_000, what: `stderr end of: ${command}` });
      return { stdout: out.before, stderr: err.before.replace(pidLine, ''), code: Number(out.match[1]), signal: null, ms: Math.round(performance.now() - t0) };
    } catch (e) {
      if (e instanceof LabError || e instanceof ProductError) throw e;
      throw new LabError('unreachable', `shell broke while running: ${command}: ${(e as Error).message}`, { host: this.opts.host });
    }
  }

  /** After a timeout on a tty: interrupt, then prove the shell answers again. */
  private async resync(command: string, timeoutMs: number): Promise<void> {
    const console = (this.mode as { console: Console }).console;
    this.recorder.log(`${this.opts.host}: "${command}" timed out after ${timeoutMs} ms; sending ^C and resynchronising`);
    await console.write('\x03');
    const n = nonce();
    await console.write(`\nprintf '%s:R\\n' ${n}\n`);
    await console.expect(new RegExp(`${escapeRe(n)}:R\\r?\\n`), { timeoutMs: 15_000, what: 'the shell to answer after ^C' });
  }

  async close(): Promise<void> {
    if (this.mode.kind === 'pipe') await this.mode.transport.close();
  }
}
