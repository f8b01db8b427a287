/**
 * One shell protocol over any byte stream: a serial console (a tty: echo, prompts, kernel
 * noise, other writers) or an SSH channel running `sh` (pipes: stdout and stderr apart).
 * The framing itself (what is written, how the answer is read) is in shell-frame.ts.
 */
import { randomBytes } from 'node:crypto';
import {
  type CommandOptions,
  type CommandResult,
  type CommandRunner,
  checkOnHost,
  DEFAULT_COMMAND_TIMEOUT_MS,
  hostCommandTimeout,
} from './command.js';
import type { Console, ExpectResult } from './console.js';
import { LabError, ProductError } from './errors.js';
import { type Recorder, silentRecorder } from './recorder.js';
import * as frame from './shell-frame.js';

/** `raw` bytes are exact over SSH, as the tty delivered them on a console. */
export type ShellRunOptions = CommandOptions;

export interface ShellOptions {
  host: string;
  recorder?: Recorder;
  defaultTimeoutMs?: number;
}

/** Its consoles should decode as latin1 (one char per byte): output is returned as exact bytes. */
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

/** Resolves once `console` has printed nothing for `quietMs`, or after `maxMs` whatever it prints. */
function settled(console: Console, quietMs: number, maxMs: number): Promise<void> {
  return new Promise((resolve) => {
    let quiet: NodeJS.Timeout;
    const done = () => {
      clearTimeout(quiet);
      clearTimeout(max);
      stop();
      resolve();
    };
    const max = setTimeout(done, maxMs);
    const stop = console.onBytes(() => {
      clearTimeout(quiet);
      quiet = setTimeout(done, quietMs);
    });
    quiet = setTimeout(done, quietMs);
  });
}

type Mode = { kind: 'tty'; console: Console } | { kind: 'pipe'; transport: PipeTransport };

/** How long a console login waits for an answer to its wake-up before sending it again. */
const WAKE_EVERY_MS = 15_000;
/** A console login types nothing until the console has been quiet this long (or for at most SETTLE_MAX_MS). */
const SETTLE_QUIET_MS = 1_000;
const SETTLE_MAX_MS = 5_000;
/** Empty output files are removed after this many commands, files with output after this many bytes. */
const CLEANUP_EVERY_COMMANDS = 256;
const CLEANUP_EVERY_BYTES = 4 * 1024 * 1024;

export class Shell implements CommandRunner {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly recorder: Recorder;
  private readonly defaultTimeoutMs: number;
  private commandsSinceCleanup = 0;
  private bytesSinceCleanup = 0;

  private constructor(
    private readonly mode: Mode,
    private readonly opts: ShellOptions,
  ) {
    this.recorder = opts.recorder ?? silentRecorder;
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  }

  get name(): string {
    return this.opts.host;
  }

  /** A shell over a pipe transport (an SSH `sh` channel): no prompt, no echo, stderr apart. */
  static async overPipe(transport: PipeTransport, opts: ShellOptions): Promise<Shell> {
    const shell = new Shell({ kind: 'pipe', transport }, opts);
    const n = nonce();
    await transport.write(frame.pipeInit(n));
    const ready = await transport.stdout.expect(frame.pipeReady(n), {
      defaultFailOn: false,
      timeoutMs: 20_000,
      what: 'the shell to start',
    });
    if (ready.match[1] === 'direct')
      shell.recorder.log(`${opts.host}: no writable temporary directory; a background job's late output may reach the next command`);
    await shell.run('true', { timeoutMs: 20_000, check: true });
    return shell;
  }

  /**
   * A shell over a console: wakes it, logs in if it asks, then normalises it (no echo, no
   * prompt, no CR translation, quiet kernel log) before the first real command.
   */
  static async overConsole(console: Console, login: LoginOptions, opts: ShellOptions): Promise<Shell> {
    const shell = new Shell({ kind: 'tty', console }, opts);
    await shell.recorder.step(`console login ${opts.host}`, { user: login.user }, () => shell.login(console, login));
    return shell;
  }

  private async login(console: Console, login: LoginOptions): Promise<void> {
    const deadline = Date.now() + login.timeoutMs;
    const left = () => Math.max(1, deadline - Date.now());
    const loginRe = /login: ?$/m;
    const passwordRe = /[Pp]assword: ?$/m;
    // A wake-up can be lost: a BMC's SOL (ipmi_sim) or a console server may not have reached the
    // serial line yet when we connect, and re-dials it every ~10 s. So it is sent again until
    // something answers or the deadline passes.
    // A ^C typed while a shell is still starting (a guest's init printing its last line, then
    // spawning the shell on the console) races its start: so nothing is typed while it prints.
    await settled(console, SETTLE_QUIET_MS, Math.min(SETTLE_MAX_MS, left()));
    let first: ExpectResult | undefined;
    while (!first) {
      await console.write('\x03\n');
      try {
        first = await console.expect([loginRe, login.prompt], {
          timeoutMs: Math.min(left(), WAKE_EVERY_MS),
          what: `a login or shell prompt (woken every ${WAKE_EVERY_MS / 1000} s)`,
        });
      } catch (e) {
        if (!(e instanceof ProductError && e.kind === 'timeout') || left() <= 1) throw e;
      }
    }
    if (first.patternIndex === 0) {
      await console.write(`${login.user}\n`);
      const next = await console.expect([passwordRe, login.prompt], { timeoutMs: left(), what: 'a password or shell prompt' });
      if (next.patternIndex === 0) {
        if (login.password === undefined)
          throw new LabError('config', 'the console asks for a password but console.login.passwordEnv is not set', {
            host: this.opts.host,
            evidence: console.logPath,
          });
        await console.write(`${login.password}\n`);
        await console.expect(login.prompt, { timeoutMs: left(), what: 'a shell prompt after the password' });
      }
    }
    const n = nonce();
    await console.write(frame.ttyInit(n));
    await console.expect(frame.ttyPong(n), { timeoutMs: left(), what: 'the console shell to answer after normalising it' });
  }

  /** Runs one command; commands on one shell are serialised. */
  run(command: string, opts: ShellRunOptions = {}): Promise<CommandResult> {
    frame.assertShellText(command, this.opts.host);
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
    const next = this.queue.then(() =>
      this.recorder.step(`${this.mode.kind === 'tty' ? 'console' : 'shell'} ${this.opts.host}: ${command}`, { timeoutMs }, async () => {
        const result =
          this.mode.kind === 'tty'
            ? await this.onTty(this.mode.console, command, timeoutMs, opts)
            : await this.onPipe(this.mode.transport, command, timeoutMs, opts);
        checkOnHost(this.opts.host, command, result, opts);
        if (!opts.raw) {
          delete result.stdoutBytes;
          delete result.stderrBytes;
        }
        return result;
      }),
    );
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async onTty(console: Console, command: string, timeoutMs: number, opts: CommandOptions): Promise<CommandResult> {
    const n = nonce();
    const t0 = performance.now();
    // Death strings still end the wait, but only on lines that are not this command's own.
    const waitOpts = { timeoutMs, deathExempt: frame.ttyOwnLine(n) };
    await console.write(frame.ttyCommand(n, command));
    try {
      await console.expect(frame.ttyStart(n), { ...waitOpts, what: `start of: ${command}` });
      const m = await console.expect(frame.ttyEnd(n), { ...waitOpts, what: `end of: ${command}` });
      const stdout = frame.ttyOutput(n, m.before);
      return {
        stdout,
        stderr: '',
        code: Number(m.match[1]),
        signal: null,
        ms: Math.round(performance.now() - t0),
        stdoutBytes: Buffer.from(stdout),
        stderrBytes: Buffer.alloc(0),
      };
    } catch (e) {
      if (!(e instanceof ProductError && e.kind === 'timeout')) throw e;
      await this.resync(console, command, timeoutMs);
      throw hostCommandTimeout(
        this.opts.host,
        `command did not finish in ${timeoutMs} ms; it was interrupted (^C): ${command}\n  full log: ${console.logPath}`,
        opts,
      );
    }
  }

  private async onPipe(transport: PipeTransport, command: string, timeoutMs: number, opts: CommandOptions): Promise<CommandResult> {
    const n = nonce();
    const t0 = performance.now();
    const end = frame.pipeEnd(n);
    const pidLine = frame.pipePid(n);
    const cleanup = ++this.commandsSinceCleanup >= CLEANUP_EVERY_COMMANDS || this.bytesSinceCleanup >= CLEANUP_EVERY_BYTES;
    if (cleanup) this.commandsSinceCleanup = this.bytesSinceCleanup = 0;
    await transport.write(frame.pipeCommand(n, command, cleanup));
    const quiet = { defaultFailOn: false } as const;
    try {
      let out: ExpectResult;
      try {
        out = await transport.stdout.expect(end, { ...quiet, timeoutMs, what: `end of: ${command}` });
      } catch (e) {
        if (!(e instanceof ProductError && e.kind === 'timeout')) throw e;
        try {
          const p = await transport.stderr.expect(pidLine, {
            ...quiet,
            timeoutMs: 10_000,
            what: `pid of: ${command}`,
            from: transport.stderr.cursor,
          });
          await transport.killTree(Number(p.match[1]));
          await transport.stdout.expect(end, { ...quiet, timeoutMs: 10_000, what: `end of killed: ${command}` });
          await transport.stderr.expect(end, { ...quiet, timeoutMs: 10_000, what: `stderr end of killed: ${command}` });
        } catch (k) {
          // the shell did not come back from the kill: it cannot be trusted with the next command
          throw new LabError(
            'unreachable',
            `shell did not answer after killing a command that timed out: ${command}: ${(k as Error).message}`,
            { host: this.opts.host },
          );
        }
        throw hostCommandTimeout(
          this.opts.host,
          `command did not finish in ${timeoutMs} ms; it and its children were killed: ${command}`,
          opts,
        );
      }
      const err = await transport.stderr.expect(end, { ...quiet, timeoutMs: 10_000, what: `stderr end of: ${command}` });
      const stdoutBytes = Buffer.from(out.before, 'latin1');
      const stderrBytes = Buffer.from(err.before.replace(pidLine, ''), 'latin1');
      this.bytesSinceCleanup += stdoutBytes.length + stderrBytes.length;
      return {
        stdout: stdoutBytes.toString('utf8'),
        stderr: stderrBytes.toString('utf8'),
        code: Number(out.match[1]),
        signal: null,
        ms: Math.round(performance.now() - t0),
        stdoutBytes,
        stderrBytes,
      };
    } catch (e) {
      if (e instanceof LabError || e instanceof ProductError) throw e;
      throw new LabError('unreachable', `shell broke while running: ${command}: ${(e as Error).message}`, { host: this.opts.host });
    }
  }

  /** After a timeout on a tty: interrupt, then prove the shell answers again. */
  private async resync(console: Console, command: string, timeoutMs: number): Promise<void> {
    this.recorder.log(`${this.opts.host}: "${command}" timed out after ${timeoutMs} ms; sending ^C and resynchronising`);
    await console.write('\x03');
    const n = nonce();
    await console.write(`\n${frame.ttyPing(n)}\n`);
    await console.expect(frame.ttyPong(n), { timeoutMs: 15_000, what: 'the shell to answer after ^C' });
  }

  async close(): Promise<void> {
    if (this.mode.kind !== 'pipe') return;
    // Best effort: a shell that is gone has nothing left to clean.
    await this.mode.transport.write(frame.pipeClose).catch(() => undefined);
    await this.mode.transport.close();
  }
}
