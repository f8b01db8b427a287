/**
 * An exclusive lease held ON the host, so runs from different machines never share it.
 * A holder process started over SSH takes flock(1) on <path>.lock and keeps it while it lives;
 * the runner sends it a heartbeat line every heartbeatMs, which it writes to <path>.heartbeat,
 * so a hung runner's lease goes stale and may be broken after ttlMs (logged on both sides).
 * The holder ends when the runner releases it or its connection closes.
 *
 * Across a reboot or kexec (a HostGuard of the Host): before the host goes away the holder
 * writes a reservation on persistent storage that other runners honour; when the host is back
 * the lease is taken again at once and proven to be ours (our token, nobody else's acquire in
 * the log). A lease someone else took meanwhile is a `[lab:lease-lost]` failure, never silent.
 * release() never kills a process: it asks the holder to end, or finds it already gone.
 * Protocol and decisions: lease-protocol.ts.
 */
import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { LabError } from '../drivers/errors.js';
import type { Recorder } from '../drivers/recorder.js';
import { SshSession } from '../drivers/ssh.js';
import type { Host, HostGuard } from './host.js';
import { breakHolder, defaultReservePath, type HolderChannel, leave, probe, take } from './lease-channel.js';
import { decideAcquire, decideReclaim, describeHolder, type HolderRecord, type LeaseState } from './lease-protocol.js';
import { checkRunId } from './run-context.js';

export interface LeaseOptions {
  path: string;
  runId: string;
  ttlMs: number;
  heartbeatMs: number;
  waitMs: number;
  recorder: Recorder;
  /** Where the reservation across a reboot lives; must survive the reboot. Default /var/lib/labrig/<name of path>.reserved. */
  reservePath?: string;
}

export interface LeaseHolder extends HolderRecord {
  heartbeatAgeS: number | null;
}

export interface Lease extends HostGuard {
  readonly holder: LeaseHolder;
  /** Set when the lease was lost and could not be taken back: the host is not ours. */
  readonly lost: LabError | undefined;
  release(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type State = 'held' | 'away' | 'interrupted' | 'lost' | 'released';

class HostLease implements Lease {
  private state: State = 'held';
  private ch: HolderChannel | undefined;
  private timer: NodeJS.Timeout | undefined;
  private pending: Promise<unknown> | undefined;
  private lostError: LabError | undefined;
  unregister: (() => void) | undefined;

  constructor(
    private readonly ssh: SshSession,
    private readonly ownsSession: boolean,
    private readonly o: LeaseOptions,
    private readonly token: string,
    private readonly who: string,
    public holder: LeaseHolder,
  ) {}

  get lost(): LabError | undefined {
    return this.lostError;
  }

  private get name(): string {
    return `lease on ${this.ssh.host}`;
  }

  /** Keeps the holder alive with heartbeats; its end outside a transition means the lease is taken again. */
  hold(ch: HolderChannel, pid: number, state: LeaseState): void {
    this.ch = ch;
    this.holder = { holder: this.who, runId: this.o.runId, token: this.token, since: state.now, pid, heartbeatAgeS: 0 };
    this.state = 'held';
    clearInterval(this.timer);
    this.timer = setInterval(() => ch.send('hb'), this.o.heartbeatMs);
    this.timer.unref();
    ch.onClose = () => {
      if (this.ch !== ch) return;
      clearInterval(this.timer);
      if (this.state !== 'held') return;
      this.state = 'interrupted';
      this.o.recorder.log(`${this.name}: the holder's connection closed; taking the lease again`);
      this.pending ??= this.reclaim().then(
        () => undefined,
        (e: unknown) => e,
      );
    };
  }

  private forget(): void {
    clearInterval(this.timer);
    const ch = this.ch;
    this.ch = undefined;
    void ch?.close();
  }

  async beforeTransition(awayMs: number): Promise<void> {
    if (this.state === 'interrupted') this.state = 'away';
    if (this.state !== 'held') return;
    this.state = 'away';
    const secs = Math.ceil((awayMs + this.o.ttlMs) / 1000);
    this.ch!.send(`reserve ${secs}`);
    const m = await this.ch!.until(/(reserved (\d+)|unreserved)/, 5_000);
    if (m?.[2])
      this.o.recorder.log(`${this.name}: reserved across the transition until ${new Date(Number(m[2]) * 1000).toISOString()} (host clock)`);
    else
      this.o.recorder.log(
        `${this.name}: no reservation confirmed at ${this.o.reservePath ?? defaultReservePath(this.o.path)} within 5 s; the lease is checked when the host is back`,
      );
  }

  async afterReturn(): Promise<void> {
    if (this.state === 'released') return;
    if (this.lostError) throw this.lostError;
    await this.pending;
    this.pending = undefined;
    this.state = 'away';
    this.forget();
    // The old connection died with the old kernel; a new one, not a half-open socket.
    this.ssh.close();
    await this.reclaim();
  }

  async check(): Promise<void> {
    if (this.lostError) throw this.lostError;
    // Announced, but the host never went (the reboot command failed) and the holder is gone since.
    if (this.state === 'away' && (!this.ch || this.ch.closed)) this.state = 'interrupted';
    if (this.state !== 'interrupted') return;
    this.pending ??= this.reclaim().then(
      () => undefined,
      (e: unknown) => e,
    );
    const e = await this.pending;
    this.pending = undefined;
    if (e) throw e;
  }

  /** Takes the lease again with our token; throws `[lab:lease-lost]` when it was not ours meanwhile. */
  private async reclaim(): Promise<void> {
    try {
      for (let attempt = 0; ; attempt++) {
        const p = await probe(this.ssh, this.o, 'reclaimed', this.token, this.who);
        const d = decideReclaim(p.state, this.token);
        if (d.action === 'end-own' && attempt < 3) {
          // Our previous holder, not yet aware its connection is gone: provably ours (our token, our lock).
          await leave(p);
          await breakHolder(
            this.ssh,
            this.o,
            d.pid,
            `ended our own earlier holder pid ${d.pid} (run ${this.o.runId}) to take the lease again`,
          );
          await sleep(200);
          continue;
        }
        if (d.action !== 'take') {
          await leave(p);
          const why = d.action === 'lost' ? d.why : `our earlier holder pid ${d.pid} would not end`;
          this.state = 'lost';
          this.lostError = new LabError('lease-lost', `the lease at ${this.o.path} is not ours any more: ${why}`, { host: this.ssh.host });
          this.o.recorder.log(`${this.name}: lost: ${why}`);
          throw this.lostError;
        }
        const pid = await take(this.ssh, this.o, p);
        this.hold(p.ch, pid, p.state);
        if (d.lost) {
          this.o.recorder.log(`${this.name}: taken again, but it was not ours meanwhile: ${d.lost}`);
          throw new LabError(
            'lease-lost',
            `the lease at ${this.o.path} was not ours while the host was away: ${d.lost} (taken again now)`,
            { host: this.ssh.host },
          );
        }
        this.o.recorder.log(`${this.name}: taken again, still ours (holder pid ${pid})`);
        return;
      }
    } catch (e) {
      if (this.state === 'away') this.state = 'interrupted';
      throw e;
    }
  }

  async release(): Promise<void> {
    if (this.state === 'released') return;
    this.unregister?.();
    await this.pending;
    this.pending = undefined;
    // Our reservation must not outlive the run: withdraw it through the holder, or take the
    // lease back first (the host is back, or never went) and let the release remove it.
    if (this.state === 'away' && this.ch && !this.ch.closed) {
      this.ch.send('back');
      if (await this.ch.until('back', 5_000)) this.state = 'held';
    }
    if (this.state === 'away' || this.state === 'interrupted') await this.reclaim().catch(() => undefined);
    const ch = this.state === 'held' ? this.ch : undefined;
    this.state = 'released';
    clearInterval(this.timer);
    if (ch && !ch.closed) {
      ch.send('release');
      await ch.until('bye', 10_000);
      await ch.close();
      this.o.recorder.log(`${this.name} released`);
    } else this.o.recorder.log(`${this.name}: nothing to release (${this.lostError ? 'lost' : 'no holder'})`);
    this.ch = undefined;
    if (this.ownsSession) this.ssh.close();
  }
}

/**
 * Takes the lease, waiting up to waitMs while another holds it; a holder whose heartbeat is
 * older than ttlMs is broken. On a Host, the lease uses its own SSH connection and holds
 * across the host's reboots and kexecs; on a bare SshSession, the caller drives transitions.
 */
export async function acquireLease(on: Host | SshSession, o: LeaseOptions): Promise<Lease> {
  // It goes to every host's lease log.
  checkRunId(o.runId);
  const host = on instanceof SshSession ? undefined : on;
  const ssh = host ? new SshSession(host.name, host.config.ssh) : (on as SshSession);
  const who = `${userInfo().username}@${hostname()} pid ${process.pid}`;
  const token = randomUUID();
  const deadline = Date.now() + o.waitMs;
  try {
    for (;;) {
      const p = await probe(ssh, o, 'acquired', token, who);
      const d = decideAcquire(p.state);
      if (d.action === 'take') {
        const pid = await take(ssh, o, p);
        for (const note of d.notes) o.recorder.log(`lease on ${ssh.host}: ${note}`);
        const lease = new HostLease(ssh, host !== undefined, o, token, who, {
          holder: who,
          runId: o.runId,
          token,
          since: p.state.now,
          pid,
          heartbeatAgeS: 0,
        });
        lease.hold(p.ch, pid, p.state);
        if (host) lease.unregister = host.addGuard(lease);
        o.recorder.log(`lease on ${ssh.host} acquired by ${who} (run ${o.runId})`);
        return lease;
      }
      await leave(p);
      const h = d.holder;
      if (d.heartbeatAgeS !== null && d.heartbeatAgeS * 1000 > o.ttlMs && h) {
        const msg = `breaking stale lease of ${describeHolder(h)}: heartbeat ${d.heartbeatAgeS} s old > TTL ${o.ttlMs / 1000} s`;
        o.recorder.log(`${ssh.host}: ${msg}`);
        if (await breakHolder(ssh, o, h.pid, `broken by ${who} (run ${o.runId}): ${msg}`)) {
          await sleep(200);
          continue;
        }
        o.recorder.log(`${ssh.host}: pid ${h.pid} of the holder file does not hold the lock: not killed`);
      }
      if (Date.now() >= deadline)
        throw new LabError('lease-held', `the lease at ${o.path} is ${d.why}; waited ${o.waitMs} ms`, { host: ssh.host });
      await sleep(Math.min(2000, Math.max(100, deadline - Date.now())));
    }
  } catch (e) {
    if (host) ssh.close();
    throw e;
  }
}

/** Runs `body` holding the host's lease (what changes or types into a host holds it). */
export async function withLease<T>(host: Host, o: LeaseOptions, body: (lease: Lease) => Promise<T>): Promise<T> {
  const lease = await acquireLease(host, o);
  try {
    return await body(lease);
  } finally {
    await lease.release();
  }
}

/** What a probe sees, without taking the lease: for doctor on hosts it does not type into. */
export async function readLease(ssh: SshSession, o: Pick<LeaseOptions, 'path' | 'reservePath'>): Promise<string> {
  const p = await probe(ssh, { ...o, runId: 'probe' }, 'acquired', 'probe', 'probe');
  await leave(p);
  const d = decideAcquire(p.state);
  return d.action === 'take' ? ['free', ...d.notes].join('; ') : d.why;
}
