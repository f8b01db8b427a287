/**
 * One command interface for every way of running a command: the persistent SSH shell, SSH
 * exec, a console shell, the runner itself. Same options, same result, same defaults, and
 * the same errors for the same event:
 * - `check: true` and a non-zero exit: `[product:command-failed]` for a command on a host,
 *   `[lab:runner-tool]` on the runner (whatever fails there is the lab's tool, not the product);
 * - the deadline passes: the command and its children are killed and the run throws
 *   `[lab:lab-timeout]`, or `[product:timeout]` when the caller says the command is itself
 *   under test (`hangIsProduct`, e.g. a hook fed on stdin).
 */
import { LabError, ProductError } from './errors.js';

export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: string | null;
  ms: number;
  /** The exact bytes of stdout and stderr, when the caller asked with `raw: true`. */
  stdoutBytes?: Buffer;
  stderrBytes?: Buffer;
}

export interface CommandOptions {
  /** Default DEFAULT_COMMAND_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Throw when the exit code is not 0 (default false: the caller reads `code`). */
  check?: boolean;
  /** Also return the exact bytes (stdoutBytes, stderrBytes). */
  raw?: boolean;
  /** The command is itself under test: its hang is `[product:timeout]`, not the lab's. */
  hangIsProduct?: boolean;
}

/** What a command on its own channel can have besides (SSH exec). */
export interface ExecOptions extends CommandOptions {
  /** Bytes written to the command's stdin, which is then closed. */
  input?: string;
  /** Allocate a pty (merges stderr into stdout; needed by `virsh console` and friends). */
  pty?: boolean;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;

export interface CommandRunner {
  /** The host (or "runner") named in errors. */
  readonly name: string;
  run(command: string, opts?: CommandOptions): Promise<CommandResult>;
}

/** A host's commands: the shell for ordinary ones, exec for stdin, a pty or a channel of its own (a Host fits). */
export interface HostCommands extends CommandRunner {
  exec(command: string, opts?: ExecOptions): Promise<CommandResult>;
}

/** `check` for a command on a host: a non-zero exit is the product's failure. */
export function checkOnHost(host: string, command: string, r: CommandResult, opts: CommandOptions): CommandResult {
  if (opts.check && r.code !== 0)
    throw new ProductError('command-failed', `exit ${r.code ?? r.signal}: ${command}\n${(r.stderr || r.stdout).trim().slice(-2000)}`, {
      host,
    });
  return r;
}

/** The error for a command on a host that was killed at its deadline. */
export function hostCommandTimeout(host: string, message: string, opts: CommandOptions): LabError | ProductError {
  return opts.hangIsProduct ? new ProductError('timeout', message, { host }) : new LabError('lab-timeout', message, { host });
}
