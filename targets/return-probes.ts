/**
 * Is the host back after a reboot or kexec? Asked by probes, each its own SSH connection reading
 * the boot identity. A probe that connected while the host went away can sit in its handshake
 * until its timeout: QEMU's user network accepts a connection for a guest that is gone, a real
 * network drops the SYN of a host that is down. One probe at a time, that one alone added up to
 * `connectTimeoutMs` (15 s) to every reboot and kexec figure, and to the snapshot suite's
 * blackout. So a new probe starts every PROBE_EVERY_MS while earlier ones are pending, and there
 * are slots enough that a new one starts before the oldest can time out: the host is seen back
 * within about PROBE_EVERY_MS of its sshd answering.
 */
import { SshSession } from '../drivers/ssh.js';
import type { SshConfig } from '../drivers/ssh-options.js';
import { bootIdentityCommand, isNewBoot, parseBootIdentity } from './boot-identity.js';
import { detectOsFamily } from './host-os.js';
import type { OsFamily } from './platform.js';

/** With none running, the gap between probes (a refused connection fails at once). */
const GAP_MS = 100;
/** With probes still running (stuck in a handshake, or slow), when another one starts. */
export const PROBE_EVERY_MS = 2_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ReturnProbeOptions {
  host: string;
  ssh: SshConfig;
  /** The host's OS when known (declared, or read before the transition); else each probe asks. */
  os: OsFamily | undefined;
  previousBootId: string;
  /** When the wait started (performance.now()): the figure is measured from there. */
  t0: number;
}

export class ReturnProbes {
  private readonly running = new Map<Promise<void>, SshSession>();
  private lastStart = Number.NEGATIVE_INFINITY;
  private back: { bootId: string; ms: number } | undefined;
  private readonly maxProbes: number;

  constructor(private readonly o: ReturnProbeOptions) {
    this.maxProbes = Math.ceil(o.ssh.connectTimeoutMs / PROBE_EVERY_MS) + 1;
  }

  /** Starts a probe when one is due, then waits up to `waitMs` or until a probe ends; the new boot once one has seen it. */
  async poll(waitMs: number): Promise<{ bootId: string; ms: number } | undefined> {
    if (this.back) return this.back;
    const since = performance.now() - this.lastStart;
    const due = this.running.size === 0 ? since >= GAP_MS : since >= PROBE_EVERY_MS && this.running.size < this.maxProbes;
    if (due) this.start();
    await Promise.race([sleep(waitMs), ...this.running.keys()]);
    return this.back;
  }

  /** Closes the probes' connections; a probe still in its handshake ends by its own timeout. */
  stop(): void {
    for (const ssh of this.running.values()) ssh.close();
  }

  private start(): void {
    this.lastStart = performance.now();
    const ssh = new SshSession(this.o.host, this.o.ssh);
    const probe: Promise<void> = this.probe(ssh).finally(() => {
      this.running.delete(probe);
      ssh.close();
    });
    this.running.set(probe, ssh);
  }

  private async probe(ssh: SshSession): Promise<void> {
    try {
      const run = (command: string) => ssh.exec(command, { timeoutMs: 10_000 });
      const os = this.o.os ?? (await detectOsFamily(run, this.o.host));
      const r = await run(bootIdentityCommand(os));
      const now = r.code === 0 ? parseBootIdentity(os, r.stdout) : undefined;
      const waited = performance.now() - this.o.t0;
      if (now && !this.back && isNewBoot(this.o.previousBootId, now, waited)) this.back = { bootId: now.id, ms: Math.round(waited) };
    } catch {
      // not back yet
    }
  }
}
