/**
 * The nested guest on the pmem host, driven over SSH: started by QEMU on the host, its QMP
 * reached through SSH unix-socket forwarding, its serial log read back. The seed's HMP
 * sequence (x-ignore-shared on, stop, savevm s0, quit) and its restore (same argv with -S,
 * x-ignore-shared on, loadvm s0, cont) are methods here, each a recorded step with the
 * timings the suite reports. No test runner in here: the spec and the benchmark share it.
 */
import { LabError, ProductError } from '../../drivers/errors.js';
import { Qmp } from '../../drivers/qmp.js';
import type { Recorder } from '../../drivers/recorder.js';
import { shellQuote } from '../../drivers/ssh.js';
import { harnessName } from '../../targets/harness-name.js';
import type { Host } from '../../targets/host.js';
import { runContext } from '../../targets/run-context.js';
import { type GuestSpec, guestAppend, guestArgv, type PmemMode } from './guest.js';
import {
  type ContinuationVerdict,
  expectedKey,
  type Marker,
  newSeed,
  parseMarker,
  passAfterRestore,
  verifyContinuation,
  vmStateBytes,
} from './marker.js';

export const SNAPSHOT_TAG = 's0';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ColdBootOptions {
  mode: PmemMode;
  memPath: string;
  workDir: string;
  qemu: string;
  /** The QEMU binary the restore starts (the upgraded one, or the same). */
  restoreQemu: string;
  machine: string;
  accel: 'kvm' | 'tcg';
  pmemOn: boolean;
  align?: string;
  memoryMiB: number;
  patternMiB: number;
  verifyMsPerSecond: number;
  kernel: string;
  initrd: string;
  append: string;
  bootTimeoutMs: number;
}

export interface SaveResult {
  /** performance.now() at `stop`: the blackout starts here. */
  tStop: number;
  savevmMs: number;
  vmStateBytes: number;
  /** Serial log size once stopped: lines ending past it were printed after the restore. */
  logBytesAtStop: number;
  /** The marker as printed before the stop. */
  before: Marker;
}

export class NestedGuest {
  private constructor(
    readonly host: Host,
    readonly rec: Recorder,
    readonly mode: PmemMode,
    readonly spec: GuestSpec,
    readonly argv: readonly string[],
    readonly restoreArgv: readonly string[],
    readonly seed: string,
    /** The pattern's key the guest must report (from the seed) and its size. */
    readonly expected: { key: string; mib: number },
  ) {}

  /** QEMU start → first marker line of the cold boot. */
  coldBootMs = 0;

  /** Starts the guest from nothing (fresh qcow2, fresh serial log, new seed) and waits for its marker. */
  static async coldBoot(host: Host, rec: Recorder, o: ColdBootOptions): Promise<NestedGuest> {
    const seed = newSeed();
    const spec: GuestSpec = {
      // run-tagged, so the next run's health check can sweep this QEMU if a crash leaves it
      name: harnessName(`guest-${o.mode}`, runContext().runId),
      qemu: o.qemu,
      machine: o.machine,
      accel: o.accel,
      memoryMiB: o.memoryMiB,
      memPath: o.memPath,
      pmemOn: o.pmemOn,
      align: o.align,
      kernel: o.kernel,
      initrd: o.initrd,
      append: guestAppend(o.append, seed, o.patternMiB, o.verifyMsPerSecond),
      disk: `${o.workDir}/${o.mode}.qcow2`,
      qmpSocket: `${o.workDir}/${o.mode}.qmp`,
      serialLog: `${o.workDir}/${o.mode}-serial.log`,
      pidFile: `${o.workDir}/${o.mode}.pid`,
    };
    const argv = guestArgv(spec);
    // The restore is the same command line; only the binary may be another (upgraded) QEMU.
    const restoreArgv = guestArgv({ ...spec, qemu: o.restoreQemu });
    const guest = new NestedGuest(host, rec, o.mode, spec, argv, restoreArgv, seed, { key: expectedKey(seed), mib: o.patternMiB });
    await stopStaleGuests(host, o.workDir);
    await host.run(`rm -f ${shellQuote(spec.serialLog)} && qemu-img create -q -f qcow2 ${shellQuote(spec.disk)} 64M`, {
      check: true,
      timeoutMs: 60_000,
    });
    const t0 = performance.now();
    await guest.startQemu('cold boot: QEMU start (-S)', argv);
    await rec.step('cold boot: cont', { mode: o.mode }, () => guest.withQmp(async (q) => void (await q.execute('cont'))));
    await rec.step(
      'cold boot: wait for the pattern and the first tick',
      { timeoutMs: o.bootTimeoutMs, log: spec.serialLog, patternMiB: o.patternMiB },
      () => guest.waitMarker((m) => m.ticks.length >= 1, o.bootTimeoutMs, 'the first marker line of a cold boot'),
    );
    guest.coldBootMs = Math.round(performance.now() - t0);
    return guest;
  }

  /** QEMU on the host, detached (-daemonize returns once it is initialised). */
  private async startQemu(title: string, argv: readonly string[]): Promise<void> {
    await this.rec.step(title, { argv: argv.join(' ') }, async () => {
      await this.host.run(`rm -f ${shellQuote(this.spec.qmpSocket)}`);
      const r = await this.host.run(argv.map(shellQuote).join(' '), { timeoutMs: 120_000 });
      if (r.code !== 0)
        throw new ProductError('command-failed', `QEMU did not start on the host (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`, {
          host: this.host.name,
        });
    });
  }

  /** QMP of the guest's QEMU on the host, through SSH unix-socket forwarding. */
  async withQmp<T>(body: (q: Qmp) => Promise<T>): Promise<T> {
    const stream = await this.host.ssh.forwardUnixSocket(this.spec.qmpSocket);
    const qmp = await Qmp.connect(stream, { name: `${this.host.name}:${this.spec.qmpSocket}`, recorder: this.rec, timeoutMs: 30_000 });
    try {
      return await body(qmp);
    } finally {
      await qmp.close();
    }
  }

  async serialLog(): Promise<Buffer> {
    return this.host.ssh.readFile(this.spec.serialLog).catch(() => Buffer.alloc(0));
  }

  async qemuRunning(): Promise<boolean> {
    const r = await this.host.run(
      `pid=$(cat ${shellQuote(this.spec.pidFile)} 2>/dev/null) && grep -q ${shellQuote(this.spec.qmpSocket)} /proc/$pid/cmdline 2>/dev/null`,
    );
    return r.code === 0;
  }

  /** Polls the serial log until `done(marker)`; fails at the deadline or when QEMU is gone. */
  async waitMarker(done: (marker: Marker) => boolean, timeoutMs: number, what: string, fromByte = 0): Promise<Marker> {
    const deadline = Date.now() + timeoutMs;
    // The log is read over SFTP each second (no step per read); whether QEMU still runs is a
    // shell command, asked every 10 s so the report does not drown in polls.
    let checkedAt = Date.now();
    for (;;) {
      const log = await this.serialLog();
      const marker = parseMarker(log, fromByte);
      if (done(marker)) return marker;
      const late = Date.now() > deadline;
      const gone = (late || Date.now() - checkedAt > 10_000) && ((checkedAt = Date.now()), !(await this.qemuRunning()));
      if (gone || late) {
        const tail = log.toString('latin1').split('\n').slice(-15).join('\n');
        throw new ProductError(
          gone ? 'did-not-boot' : 'timeout',
          `${gone ? 'the guest QEMU exited' : `no ${what} within ${timeoutMs} ms`} (${marker.ticks.length} tick(s), ${marker.passes.length} verify pass(es) seen)`,
          {
            host: this.host.name,
            evidence: `${this.host.name}:${this.spec.serialLog}`,
            tail,
          },
        );
      }
      await sleep(1000);
    }
  }

  /** Seed 003, "保存虚拟机现场": x-ignore-shared on, stop, savevm s0, quit. */
  async save(): Promise<SaveResult> {
    const r = await this.withQmp(async (q) => {
      await q.hmp('migrate_set_capability x-ignore-shared on');
      const tStop = performance.now();
      await q.hmp('stop');
      const t0 = performance.now();
      await q.hmp(`savevm ${SNAPSHOT_TAG}`, { timeoutMs: 600_000 });
      const savevmMs = Math.round(performance.now() - t0);
      await this.rec.attach('info-snapshots.txt', await q.hmp('info snapshots'), 'text/plain');
      const log = await this.serialLog();
      // QEMU may exit before it answers; its end is read from the host, not from this stream
      // (a forwarded unix socket stays half-open until our side closes it too).
      await q.execute('quit', undefined, { timeoutMs: 10_000 }).catch(() => undefined);
      return { tStop, savevmMs, logBytesAtStop: log.length, before: parseMarker(log) };
    });
    await this.rec.step('quit: wait for QEMU to exit', { pidFile: this.spec.pidFile }, () => this.waitQemuGone(60_000));
    const info = (await this.host.run(`qemu-img info --output=json ${shellQuote(this.spec.disk)}`, { check: true, timeoutMs: 60_000 }))
      .stdout;
    await this.rec.attach(`qemu-img-info-${this.mode}.json`, info, 'application/json');
    const size = vmStateBytes(info, SNAPSHOT_TAG);
    if (size === undefined)
      throw new ProductError('mismatch', `qemu-img info shows no snapshot "${SNAPSHOT_TAG}" in ${this.spec.disk} after savevm`, {
        host: this.host.name,
      });
    return { ...r, vmStateBytes: size };
  }

  /** Seed 003, "恢复虚拟机现场": the same argv (-S) on the restoring QEMU, x-ignore-shared on, loadvm s0, cont. Returns performance.now() once running. */
  async restore(): Promise<number> {
    await this.startQemu(`restore: ${this.restoreArgv[0]} with the same argv (-S)`, this.restoreArgv);
    return this.withQmp(async (q) => {
      await q.hmp('migrate_set_capability x-ignore-shared on');
      await q.hmp(`loadvm ${SNAPSHOT_TAG}`, { timeoutMs: 600_000 });
      await q.execute('cont');
      const t = performance.now();
      const { status } = await q.execute<{ status: string }>('query-status');
      if (status !== 'running')
        throw new ProductError('mismatch', `after loadvm + cont the guest is "${status}", not running`, { host: this.host.name });
      return t;
    });
  }

  /**
   * Waits for `minAfter` ticks and a full pattern pass begun after the restore (or a pass that
   * found bad words, QEMU's end, the deadline) and checks them.
   */
  async verify(
    save: SaveResult,
    minAfter: number,
    timeoutMs: number,
  ): Promise<ContinuationVerdict & { error?: ProductError; firstSeenAt?: number }> {
    let after: Marker = { ticks: [], passes: [] };
    let error: ProductError | undefined;
    // When the poll first saw a tick after the restore (±1 s: the poll interval).
    let firstSeenAt: number | undefined;
    const enough = (m: Marker) => {
      if (m.ticks.length && firstSeenAt === undefined) firstSeenAt = performance.now();
      return m.passes.some((p) => !p.ok) || (m.ticks.length >= minAfter && passAfterRestore(save.before, m) !== undefined);
    };
    try {
      after = await this.waitMarker(
        enough,
        timeoutMs,
        `${minAfter} ticks and a full pass over the pattern after the restore`,
        save.logBytesAtStop,
      );
    } catch (e) {
      if (!(e instanceof ProductError)) throw e;
      error = e;
      after = parseMarker(await this.serialLog(), save.logBytesAtStop);
    }
    const verdict = verifyContinuation({ before: save.before, after, expected: this.expected, minAfter });
    return { ...verdict, firstSeenAt, ...(error ? { error } : {}) };
  }

  async waitQemuGone(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (await this.qemuRunning()) {
      if (Date.now() > deadline)
        throw new LabError('lab-timeout', `the guest QEMU is still running ${timeoutMs} ms after quit`, { host: this.host.name });
      await sleep(200);
    }
  }

  /** Ends the guest's QEMU if it still runs (teardown). */
  async stop(): Promise<void> {
    if (!(await this.qemuRunning().catch(() => false))) return;
    await this.withQmp((q) => q.execute('quit', undefined, { timeoutMs: 10_000 })).catch(() => undefined);
    await this.waitQemuGone(30_000).catch(() => undefined);
    await stopStaleGuests(this.host, this.spec.qmpSocket.replace(/\/[^/]*$/, ''));
  }
}

/** QEMUs a previous run left behind: pidfiles in workDir whose process still names workDir. */
export async function stopStaleGuests(host: Host, workDir: string): Promise<void> {
  const dir = shellQuote(workDir);
  await host.run(
    `for f in ${dir}/*.pid; do [ -f "$f" ] || continue; p=$(cat "$f"); ` +
      `if grep -q ${dir} /proc/$p/cmdline 2>/dev/null; then kill $p; i=0; while [ -d /proc/$p ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; kill -9 $p 2>/dev/null; fi; rm -f "$f"; done; true`,
    { timeoutMs: 30_000 },
  );
}
