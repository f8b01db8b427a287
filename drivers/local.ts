/**
 * Commands on the runner itself, through execa, reported like remote ones. Whatever fails
 * here is the lab's tool, not the product (ipmitool, a power command, QEMU's start, an
 * image build step): a timeout or a failed check is a LabError.
 */
import { execa } from 'execa';
import { type CommandOptions, type CommandResult, type CommandRunner, DEFAULT_COMMAND_TIMEOUT_MS } from './command.js';
import { LabError, ProductError } from './errors.js';
import { type Recorder, silentRecorder } from './recorder.js';

export type { CommandResult } from './command.js';

export interface LocalRunOptions {
  timeoutMs?: number;
  input?: string;
  cwd?: string;
  env?: Record<string, string>;
  recorder?: Recorder;
  /** Throw when the exit code is not 0 (default true). */
  check?: boolean;
  /** Also return the exact bytes (stdoutBytes, stderrBytes). */
  raw?: boolean;
  /** The command is itself under test: its hang is `[product:timeout]`. */
  hangIsProduct?: boolean;
}

const toBuffer = (v: unknown): Buffer => (v instanceof Uint8Array ? Buffer.from(v) : Buffer.from(String(v ?? '')));

export async function runLocal(argv: readonly string[], opts: LocalRunOptions = {}): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (!file) throw new LabError('config', 'runLocal: empty argv');
  const recorder = opts.recorder ?? silentRecorder;
  return recorder.step(`local: ${argv.join(' ')}`, { timeoutMs: opts.timeoutMs }, async () => {
    const t0 = performance.now();
    const r = await execa(file, args, {
      reject: false,
      timeout: opts.timeoutMs,
      input: opts.input,
      cwd: opts.cwd,
      env: opts.env,
      stripFinalNewline: false,
      forceKillAfterDelay: 2000,
      encoding: 'buffer',
    });
    const out = toBuffer(r.stdout);
    const err = toBuffer(r.stderr);
    const result: CommandResult = {
      stdout: out.toString('utf8'),
      stderr: err.toString('utf8'),
      code: r.exitCode ?? null,
      signal: r.signal ?? null,
      ms: Math.round(performance.now() - t0),
      ...(opts.raw ? { stdoutBytes: out, stderrBytes: err } : {}),
    };
    if (r.timedOut) {
      const what = `runner command timed out after ${opts.timeoutMs} ms and was killed: ${argv.join(' ')}`;
      throw opts.hangIsProduct ? new ProductError('timeout', what) : new LabError('lab-timeout', what);
    }
    if ((opts.check ?? true) && result.code !== 0) {
      // execa's own words when the command never ran (ENOENT, EACCES): no exit code then.
      const why =
        result.code === null && r.signal === undefined
          ? (r.shortMessage ?? r.message ?? 'did not start')
          : `exit ${result.code ?? result.signal}`;
      throw new LabError(
        'runner-tool',
        `runner command failed (${why}): ${argv.join(' ')}\n${result.stderr.trim().slice(-2000)}`.trimEnd(),
      );
    }
    return result;
  });
}

/** The runner behind the one command interface: `sh -c <command>`, with that interface's defaults (no check, 60 s). */
export class LocalRunner implements CommandRunner {
  readonly name = 'runner';
  constructor(private readonly recorder?: Recorder) {}

  run(command: string, opts: CommandOptions = {}): Promise<CommandResult> {
    return runLocal(['sh', '-c', command], {
      timeoutMs: opts.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
      check: opts.check ?? false,
      raw: opts.raw,
      hangIsProduct: opts.hangIsProduct,
      recorder: this.recorder,
    });
  }
}
