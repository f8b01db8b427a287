/** Commands on the runner itself, through execa, reported like remote ones. */
import { execa } from 'execa';
import { silentRecorder, type Recorder } from './recorder.js';

export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: string | null;
  ms: number;
}

export interface LocalRunOptions {
  timeoutMs?: number;
  input?: string;
  cwd?: string;
  env?: Record<string, string>;
  recorder?: Recorder;
  /** Throw when the exit code is not 0 (default true). */
  check?: boolean;
}

export async function runLocal(argv: readonly string[], opts: LocalRunOptions = {}): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('runLocal: empty argv');
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
    });
    const result: CommandResult = {
      stdout: String(r.stdout ?? ''),
      stderr: String(r.stderr ?? ''),
      code: r.exitCode ?? null,
      signal: r.signal ?? null,
      ms: Math.round(performance.now() - t0),
    };
    if (r.timedOut) throw new Error(`local command timed out after ${opts.timeoutMs} ms: ${argv.join(' ')}`);
    if ((opts.check ?? true) && result.code !== 0)
      throw new Error(`local command failed (exit ${result.code ?? result.signal}): ${argv.join(' ')}\n${result.stderr.trim()}`);
    return result;
  });
}
