/**
 * One ssh2 connection per host, reused for every command. Host keys are pinned by SHA-256
 * fingerprint: an unknown or changed key is refused, never accepted.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import {
  type CommandOptions,
  type CommandResult,
  type CommandRunner,
  checkOnHost,
  DEFAULT_COMMAND_TIMEOUT_MS,
  type ExecOptions,
  hostCommandTimeout,
} from './command.js';
import { LabError } from './errors.js';
import { type Recorder, silentRecorder } from './recorder.js';
import { Semaphore } from './semaphore.js';
import { type FollowOptions, followRemoteFile } from './ssh-follow.js';
import type { SshConfig } from './ssh-options.js';

// A timeout is the lab's failure by default (exec carries the lab's plumbing: lease, kill,
// boot_id); `hangIsProduct` when the command is itself under test (a hook fed on stdin).
export type { ExecOptions } from './command.js';

export interface CommandStream {
  stdin: ClientChannel;
  stdout: ClientChannel;
  stderr: NodeJS.ReadableStream;
  close(): Promise<void>;
}

/** OpenSSH's fingerprint format: SHA256:<unpadded base64 of sha256(key blob)>. */
export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

export { shellQuote } from './shell-frame.js';

const PID_MARK = 'LABRIG_EXEC_PID=';

/** How many of a connection's last SSH packets (ssh2's debug lines) are kept for a channel that ends without an exit status. */
const PACKET_TRACE_LINES = 80;

export class SshSession implements CommandRunner {
  private client: Client | undefined;
  private readonly packetTraces = new WeakMap<Client, string[]>();
  private connecting: Promise<Client> | undefined;
  private readonly channels: Semaphore;
  private seenKey: string | undefined;
  private sftpKept: { client: Client; sftp: Promise<SFTPWrapper> } | undefined;

  constructor(
    readonly host: string,
    readonly config: SshConfig,
    private readonly recorder: Recorder = silentRecorder,
  ) {
    this.channels = new Semaphore(config.maxChannels);
  }

  get name(): string {
    return this.host;
  }

  get connected(): boolean {
    return this.client !== undefined;
  }

  /** Connects if not connected; a dropped connection is replaced by a new one. */
  async connect(): Promise<Client> {
    if (this.client) return this.client;
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async authConfig(): Promise<Partial<ConnectConfig>> {
    const c = this.config;
    if (c.identityEnv) {
      const key = process.env[c.identityEnv];
      if (!key) throw new LabError('config', `env var ${c.identityEnv} (ssh.identityEnv) is not set`, { host: this.host });
      return { privateKey: key };
    }
    if (c.identityFile) {
      try {
        return { privateKey: await readFile(c.identityFile) };
      } catch (e) {
        throw new LabError('config', `cannot read ssh.identityFile ${c.identityFile}: ${(e as Error).message}`, { host: this.host });
      }
    }
    const password = c.passwordEnv ? process.env[c.passwordEnv] : undefined;
    if (!password) throw new LabError('config', `env var ${c.passwordEnv} (ssh.passwordEnv) is not set`, { host: this.host });
    return { password };
  }

  private socket(): Promise<Socket> {
    const { address, port, connectTimeoutMs } = this.config;
    return new Promise((resolve, reject) => {
      const sock = netConnect({ host: address, port });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new LabError('unreachable', `no TCP connection to ${address}:${port} within ${connectTimeoutMs} ms`, { host: this.host }));
      }, connectTimeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.setNoDelay(true); // 220 ms → 135 ms per exec against OpenSSH (FIELD-NOTES)
        resolve(sock);
      });
      sock.once('error', (e) => {
        clearTimeout(timer);
        reject(new LabError('unreachable', `cannot connect to ${address}:${port}: ${e.message}`, { host: this.host }, { cause: e }));
      });
    });
  }

  private async open(): Promise<Client> {
    const auth = await this.authConfig();
    const sock = await this.socket();
    const client = new Client();
    const trace: string[] = [];
    this.packetTraces.set(client, trace);
    // Every channel in flight watches the connection's close (up to maxChannels), beside our own listeners.
    client.setMaxListeners(this.config.maxChannels + 8);
    this.seenKey = undefined;
    return new Promise<Client>((resolve, reject) => {
      const fail = (e: Error) => {
        client.end();
        if (this.seenKey && this.seenKey !== this.config.hostKey)
          reject(
            new LabError('host-key', `host key ${this.seenKey} does not match the pinned ${this.config.hostKey}; refusing to connect`, {
              host: this.host,
            }),
          );
        else if (e instanceof LabError) reject(e);
        else
          reject(
            new LabError(
              'unreachable',
              `SSH to ${this.config.user}@${this.config.address}:${this.config.port} failed: ${e.message}`,
              { host: this.host },
              { cause: e },
            ),
          );
      };
      // sshd can close the connection after its banner and before authentication ends (a host
      // going down: the old sshd answers, then dies). ssh2 then emits no 'error' and clears its
      // readyTimeout, so without this the attempt, and every connect() after it, waits for ever.
      const closedEarly = () => fail(new Error('the connection closed during the SSH handshake'));
      client.once('close', closedEarly);
      client.once('ready', () => {
        client.removeListener('error', fail);
        client.removeListener('close', closedEarly);
        client.on('error', () => this.drop(client));
        client.once('close', () => this.drop(client));
        this.client = client;
        resolve(client);
      });
      // ssh2 may emit more than one error for one failed attempt (a timeout, then "Connection
      // lost before handshake"); the first settles the promise, the rest must not go unhandled.
      client.on('error', () => undefined);
      client.once('error', fail);
      client.connect({
        sock,
        username: this.config.user,
        readyTimeout: this.config.connectTimeoutMs,
        keepaliveInterval: this.config.keepaliveMs,
        keepaliveCountMax: 3,
        debug: (line: string) => {
          if (!/^(Inbound|Outbound): (Sending )?CHANNEL_/.test(line)) return;
          trace.push(`${new Date().toISOString()} ${line.slice(0, 120)}`);
          if (trace.length > PACKET_TRACE_LINES) trace.shift();
        },
        hostVerifier: (key: Buffer) => {
          this.seenKey = fingerprint(key);
          return this.seenKey === this.config.hostKey;
        },
        ...auth,
      });
    });
  }

  private drop(client: Client): void {
    if (this.client === client) this.client = undefined;
    client.end();
  }

  private async channel<T>(open: (client: Client) => Promise<T>): Promise<{ value: T; release: () => void }> {
    const release = await this.channels.acquire();
    try {
      const client = await this.connect();
      return { value: await open(client), release };
    } catch (e) {
      release();
      throw e;
    }
  }

  /**
   * sshd frees a session slot only after reaping its child, so right after a close the server
   * may still count it against MaxSessions: "open failed" is retried for a few seconds.
   */
  private async rawExec(client: Client, command: string, pty: boolean): Promise<ClientChannel> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        return await new Promise<ClientChannel>((resolve, reject) =>
          client.exec(command, pty ? { pty: { term: 'dumb', cols: 200, rows: 50 } } : {}, (err, ch) => (err ? reject(err) : resolve(ch))),
        );
      } catch (e) {
        const transient = /open failed/i.test((e as Error).message) && Date.now() < deadline && this.client === client;
        if (!transient) throw new LabError('unreachable', `cannot open a channel: ${(e as Error).message}`, { host: this.host });
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /**
   * Runs one command on its own channel. The remote shell is a session leader (sshd calls
   * setsid), so a timeout kills its whole process group by the pid it reports first.
   */
  async exec(command: string, opts: ExecOptions = {}): Promise<CommandResult> {
    return this.recorder.step(`ssh ${this.host}: ${command}`, { timeoutMs: opts.timeoutMs }, async () => {
      const t0 = performance.now();
      let client: Client | undefined;
      const { value: ch, release } = await this.channel(
        (c) => ((client = c), this.rawExec(c, `echo ${PID_MARK}$$; ${command}`, opts.pty ?? false)),
      );
      try {
        return checkOnHost(this.host, command, await this.collect(client!, ch, command, opts, t0), opts);
      } finally {
        release();
      }
    });
  }

  /** exec behind the one command interface, with its defaults (60 s). */
  run(command: string, opts: CommandOptions = {}): Promise<CommandResult> {
    return this.exec(command, { ...opts, timeoutMs: opts.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS });
  }

  private collect(client: Client, ch: ClientChannel, command: string, opts: ExecOptions, t0: number): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      let lost = false;
      let timedOut = false;
      const onLost = () => (lost = true);
      client.once('close', onLost);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let pid: number | undefined;
      let onPid: (() => void) | undefined;
      let head = '';
      let timer: NodeJS.Timeout | undefined;
      ch.on('data', (d: Buffer) => {
        if (pid !== undefined) return void out.push(d);
        head += d.toString('latin1');
        const nl = head.indexOf('\n');
        if (nl < 0) return;
        const m = new RegExp(`${PID_MARK}(\\d+)\\r?$`).exec(head.slice(0, nl));
        pid = m ? Number(m[1]) : -1;
        onPid?.();
        const rest = Buffer.from(head.slice(nl + 1), 'latin1');
        if (rest.length) out.push(rest);
      });
      ch.stderr.on('data', (d: Buffer) => err.push(d));
      // The exit status as 'close' hands it over, not from 'exit': ssh2 parses every packet of one
      // socket read before a promise continuation runs, so a quick command's exit-status can be
      // emitted before a listener attached after the exec's callback exists (its output is kept
      // by the stream). ssh2 passes the same status to 'close' (code, or null and the signal).
      ch.on('close', (code?: number | null, signal?: string) => {
        const exit = { code: typeof code === 'number' ? code : null, signal: signal ?? null };
        clearTimeout(timer);
        client.removeListener('close', onLost);
        if (timedOut) {
          const what = `SSH exec did not finish in ${opts.timeoutMs} ms and was killed: ${command}`;
          return reject(hostCommandTimeout(this.host, what, opts));
        }
        if (exit.code === null && exit.signal === null && (lost || !this.client))
          return reject(new LabError('unreachable', `SSH connection lost while running: ${command}`, { host: this.host }));
        if (exit.code === null && exit.signal === null)
          this.recorder.log(
            `${this.host}: the channel of \`${command.slice(0, 80)}\` closed with no exit status; the connection's last channel packets:\n${(this.packetTraces.get(client) ?? []).join('\n')}`,
          );
        const stdoutBytes = Buffer.concat(out);
        const stderrBytes = Buffer.concat(err);
        resolve({
          stdout: stdoutBytes.toString('utf8'),
          stderr: stderrBytes.toString('utf8'),
          code: exit.code,
          signal: exit.signal,
          ms: Math.round(performance.now() - t0),
          ...(opts.raw ? { stdoutBytes, stderrBytes } : {}),
        });
      });
      if (opts.timeoutMs) {
        timer = setTimeout(() => {
          timedOut = true;
          // On a loaded host the deadline can pass before the shell has said its pid:
          // closing the channel then would leave the command running, so wait for it (bounded).
          const pidKnown = new Promise<void>((resolve) => {
            if (pid !== undefined) return resolve();
            onPid = resolve;
            ch.once('close', () => resolve());
            setTimeout(resolve, 10_000).unref();
          });
          void pidKnown.then(() => this.killGroup(pid)).finally(() => ch.close());
        }, opts.timeoutMs);
      }
      if (opts.input !== undefined) ch.end(opts.input);
      else ch.end();
    });
  }

  /** Kills a remote process group from a second channel. */
  async killGroup(pid: number | undefined): Promise<void> {
    if (pid && pid > 1) await this.killQuietly(`kill -KILL -- -${pid} 2>/dev/null || kill -KILL ${pid}`);
  }

  /** Kills a remote process and its descendants, each stopped before its children are walked so none escapes by forking. */
  async killTree(pid: number): Promise<void> {
    if (pid > 1)
      await this.killQuietly(
        `kt() { kill -STOP "$1" 2>/dev/null; for c in $(pgrep -P "$1"); do kt "$c"; done; kill -KILL "$1" 2>/dev/null; }; kt ${pid}`,
      );
  }

  private async killQuietly(command: string): Promise<void> {
    try {
      const { value: ch, release } = await this.channel((c) => this.rawExec(c, command, false));
      await new Promise<void>((r) => {
        ch.on('close', () => r());
        ch.resume();
        ch.end();
      });
      release();
    } catch {
      // The connection is gone: the remote processes die with it.
    }
  }

  /**
   * A long-lived command whose stdio is a stream: the persistent shell, `xl console`,
   * `virsh console`. It holds one channel until closed.
   */
  async openCommand(command: string, opts: { pty?: boolean } = {}): Promise<CommandStream> {
    const { value: ch, release } = await this.channel((c) => this.rawExec(c, command, opts.pty ?? false));
    let closed = false;
    const done = new Promise<void>((r) => ch.once('close', () => r()));
    void done.then(release);
    return {
      stdin: ch,
      stdout: ch,
      stderr: ch.stderr,
      close: async () => {
        if (closed) return done;
        closed = true;
        ch.close();
        await Promise.race([done, new Promise((r) => setTimeout(r, 2000))]);
      },
    };
  }

  /** A stream to a unix socket on the remote host (QMP of a QEMU running there). */
  async forwardUnixSocket(remotePath: string): Promise<Duplex> {
    const { value: ch, release } = await this.channel(
      (c) =>
        new Promise<ClientChannel>((resolve, reject) =>
          c.openssh_forwardOutStreamLocal(remotePath, (err, stream) =>
            err
              ? reject(new LabError('unreachable', `cannot forward to unix socket ${remotePath}: ${err.message}`, { host: this.host }))
              : resolve(stream),
          ),
        ),
    );
    ch.once('close', release);
    return ch;
  }

  /**
   * One SFTP channel per connection, opened on first use and kept (it holds one channel slot):
   * each new channel makes sshd start a subsystem, through the user's login shell and its rc
   * files unless the server runs internal-sftp, which costs seconds on some hosts.
   */
  private async sftp<T>(use: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    return use(await this.keptSftp());
  }

  private async keptSftp(): Promise<SFTPWrapper> {
    const client = await this.connect();
    if (this.sftpKept?.client === client) return this.sftpKept.sftp;
    const kept = { client, sftp: this.openSftp(client, () => this.sftpKept === kept && (this.sftpKept = undefined)) };
    this.sftpKept = kept;
    return kept.sftp;
  }

  private async openSftp(client: Client, forget: () => void): Promise<SFTPWrapper> {
    const release = await this.channels.acquire();
    try {
      const s = await new Promise<SFTPWrapper>((resolve, reject) => client.sftp((err, ch) => (err ? reject(err) : resolve(ch))));
      s.on('error', () => s.end());
      s.once('close', () => {
        forget();
        release();
      });
      return s;
    } catch (e) {
      forget();
      release();
      throw e;
    }
  }

  /** A remote file as a stream, like `tail -c +1 -F`, over the kept SFTP channel (ssh-follow.ts). */
  followFile(remotePath: string, opts: FollowOptions = {}): Readable {
    return followRemoteFile(() => this.keptSftp(), remotePath, opts);
  }

  async put(localPath: string, remotePath: string): Promise<void> {
    await this.recorder.step(`sftp put ${this.host}:${remotePath}`, { localPath }, () =>
      this.sftp((s) => new Promise<void>((res, rej) => s.fastPut(localPath, remotePath, (e) => (e ? rej(e) : res())))),
    );
  }

  async get(remotePath: string, localPath: string): Promise<void> {
    await this.recorder.step(`sftp get ${this.host}:${remotePath}`, { localPath }, () =>
      this.sftp((s) => new Promise<void>((res, rej) => s.fastGet(remotePath, localPath, (e) => (e ? rej(e) : res())))),
    );
  }

  async writeFile(remotePath: string, content: string | Buffer, mode = 0o644): Promise<void> {
    await this.sftp((s) => new Promise<void>((res, rej) => s.writeFile(remotePath, content, { mode }, (e) => (e ? rej(e) : res()))));
  }

  async readFile(remotePath: string): Promise<Buffer> {
    return this.sftp((s) => new Promise<Buffer>((res, rej) => s.readFile(remotePath, (e, b) => (e ? rej(e) : res(b)))));
  }

  close(): void {
    const c = this.client;
    this.client = undefined;
    this.sftpKept = undefined;
    c?.end();
  }
}
