/**
 * Real pseudo-terminals for console and shell tests, made by socat:
 * - startPtyPair(): two linked ptys, A and B; what is written to one is read on the other,
 *   like a USB-serial adapter (A, opened by the Console) and the board's UART (B, the test).
 * - startPtyProgram(): one pty whose other side is a program on its own controlling tty,
 *   like a getty or a shell on a serial line.
 * - openPeer(): the test's end of a pty, opened through serialport (raw, non-blocking).
 * Every socat is stopped by its PID in stop(); call it in a finally/afterAll.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { lstat, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPort } from 'serialport';

export interface Socat {
  pid: number;
  /** Directory holding the links (removed by stop()). */
  dir: string;
  /** socat's own log (-d -d), for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

export interface PtyPair extends Socat {
  /** Link to one pty (give this to the Console). */
  a: string;
  /** Link to the other pty (the "device" side). */
  b: string;
}

export interface PtyProgram extends Socat {
  /** Link to the pty whose far side is the program. */
  path: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function startSocat(addresses: [string, string], links: string[], dir: string, timeoutMs: number): Promise<Socat> {
  // setpriv --pdeathsig: if the test worker dies without teardown, socat dies with it.
  const child: ChildProcess = spawn('setpriv', ['--pdeathsig', 'KILL', 'socat', '-d', '-d', ...addresses], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (b: Buffer) => (log += b.toString()));
  let exited = false;
  const gone = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  const pid = child.pid;
  if (!pid) throw new Error(`socat did not start: ${addresses.join(' ')}`);
  const stop = async (): Promise<void> => {
    if (!exited) {
      process.kill(pid, 'SIGTERM');
      await Promise.race([gone, sleep(3000)]);
      if (!exited) process.kill(pid, 'SIGKILL');
      await gone;
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const present = await Promise.all(
      links.map((l) =>
        lstat(l).then(
          () => true,
          () => false,
        ),
      ),
    );
    if (present.every(Boolean)) break;
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`socat ${addresses.join(' ')}: links ${links.join(', ')} did not appear within ${timeoutMs} ms\n${log}`);
    }
    await sleep(20);
  }
  return { pid, dir, log: () => log, stop };
}

export async function startPtyPair(opts: { timeoutMs?: number } = {}): Promise<PtyPair> {
  const dir = await mkdtemp(join(tmpdir(), 'labrig-pty-'));
  const a = join(dir, 'A');
  const b = join(dir, 'B');
  const socat = await startSocat([`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], [a, b], dir, opts.timeoutMs ?? 5000);
  return { ...socat, a, b };
}

/**
 * `command` runs under `sh -c` on its own pty (setsid + controlling tty, stderr on the
 * tty too), as a shell on a serial line would. socat's address syntax treats `,` `:` `!`
 * and quotes specially, so keep `command` free of them (put complex logic in a script).
 * The tty keeps `echo` unless `echo: false`: a real serial getty echoes.
 */
export async function startPtyProgram(command: string, opts: { echo?: boolean; timeoutMs?: number } = {}): Promise<PtyProgram> {
  if (/[,:!"'\\]/.test(command)) throw new Error(`startPtyProgram: socat cannot take , : ! quotes or \\ in "${command}"`);
  const dir = await mkdtemp(join(tmpdir(), 'labrig-pty-'));
  const path = join(dir, 'console');
  const tty = `pty,setsid,ctty,stderr${opts.echo === false ? ',echo=0' : ''}`;
  const socat = await startSocat([`pty,raw,echo=0,link=${path}`, `system:${command},${tty}`], [path], dir, opts.timeoutMs ?? 5000);
  return { ...socat, path };
}

/** The far end of a pty, for a test to play the device: write to it, read what it got. */
export interface PtyPeer {
  port: SerialPort;
  write(data: string | Buffer): Promise<void>;
  /** Everything read from the pty so far. */
  received(): Buffer;
  /** Waits until what was read contains `text`; throws with what was read instead. */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function openPeer(path: string): Promise<PtyPeer> {
  const port = new SerialPort({ path, baudRate: 115200, autoOpen: false, lock: false });
  await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
  const chunks: Buffer[] = [];
  port.on('data', (b: Buffer) => chunks.push(b));
  const received = (): Buffer => Buffer.concat(chunks);
  return {
    port,
    received,
    write: (data) =>
      new Promise<void>((resolve, reject) => {
        port.write(data, (e) => (e ? reject(e) : port.drain((e2) => (e2 ? reject(e2) : resolve()))));
      }),
    async waitFor(text, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (!received().toString('utf8').includes(text)) {
        if (Date.now() > deadline)
          throw new Error(
            `pty peer ${path}: waited ${timeoutMs} ms for ${JSON.stringify(text)}; got ${JSON.stringify(received().toString('utf8').slice(-500))}`,
          );
        await sleep(10);
      }
    },
    close: () => new Promise<void>((resolve) => (port.isOpen ? port.close(() => resolve()) : resolve())),
  };
}
