/**
 * Boots one emulated host: a typed spec becomes a QEMU argv (an array, never a shell
 * string), QEMU starts detached and paused (-S) with QMP on a unix socket and the serial
 * console on a pty whose chardev `logfile=` keeps the complete record; the pty is found
 * through QMP `query-chardev`, then the CPUs start with `cont`. A console opened on the pty
 * before `cont` therefore loses nothing, and the log has everything even if none is.
 */
import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rename, rm, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../../drivers/errors.js';
import { isOurProcess, stopProcess } from '../../drivers/proc.js';
import { Qmp } from '../../drivers/qmp.js';
import { type Recorder, silentRecorder } from '../../drivers/recorder.js';

export interface VmSpec {
  /** Host name; names the files in the run directory. */
  name: string;
  binary: string;
  machine: string;
  cpu: string;
  memoryMiB: number;
  smp: number;
  kernel?: string;
  initrd?: string;
  append?: string;
  /** Guest SSH reached on <sshForwardAddress>:<port> through QEMU user networking. */
  sshForwardPort?: number;
  /** A loopback address of this machine (default 127.0.0.1). */
  sshForwardAddress?: string;
  /** Start with the CPUs stopped (-S) so launchVm can attach before `cont` (default true). */
  paused?: boolean;
  /** The serial line: a pty (default), or a TCP listener (what a BMC's SOL connects to). */
  serialTcp?: { address: string; port: number };
  /** NIC model of the user-network interface (a module the guest kernel must carry). */
  nicModel?: string;
  extraArgs?: readonly string[];
}

export interface VmPaths {
  /** QMP for the host's users (the power controller, suites). */
  qmpSocket: string;
  /** A second QMP monitor for the lab itself, so its checks never wait behind a user's session. */
  labQmpSocket: string;
  pidFile: string;
  consoleLog: string;
  /** QEMU's own stdout/stderr. */
  qemuLog: string;
  /** A stable symlink to the current pty, which changes with every QEMU start. */
  ttyLink: string;
}

export function vmPaths(runDir: string, name: string): VmPaths {
  return {
    qmpSocket: join(runDir, `${name}.qmp`),
    labQmpSocket: join(runDir, `${name}.lab.qmp`),
    pidFile: join(runDir, `${name}.pid`),
    consoleLog: join(runDir, `${name}-console.log`),
    qemuLog: join(runDir, `${name}-qemu.log`),
    ttyLink: join(runDir, `${name}.tty`),
  };
}

export function qemuArgv(spec: VmSpec, paths: VmPaths): string[] {
  const argv = [
    spec.binary,
    '-name',
    spec.name,
    '-machine',
    spec.machine,
    // KVM guests hang on these machines (FIELD-NOTES): TCG always.
    '-accel',
    'tcg',
    '-cpu',
    spec.cpu,
    '-m',
    `${spec.memoryMiB}M`,
    '-smp',
    String(spec.smp),
    '-nodefaults',
    '-display',
    'none',
    ...(spec.paused === false ? [] : ['-S']),
    '-pidfile',
    paths.pidFile,
    '-qmp',
    `unix:${paths.qmpSocket},server=on,wait=off`,
    '-qmp',
    `unix:${paths.labQmpSocket},server=on,wait=off`,
    '-chardev',
    spec.serialTcp
      ? `socket,id=con0,host=${spec.serialTcp.address},port=${spec.serialTcp.port},server=on,wait=off,logfile=${paths.consoleLog},logappend=on`
      : `pty,id=con0,logfile=${paths.consoleLog},logappend=on`,
    '-serial',
    'chardev:con0',
  ];
  if (spec.kernel) argv.push('-kernel', spec.kernel);
  if (spec.initrd) argv.push('-initrd', spec.initrd);
  if (spec.append) argv.push('-append', spec.append);
  if (spec.sshForwardPort)
    argv.push(
      '-nic',
      `user,model=${spec.nicModel ?? 'e1000'},hostfwd=tcp:${spec.sshForwardAddress ?? '127.0.0.1'}:${spec.sshForwardPort}-:22`,
    );
  argv.push(...(spec.extraArgs ?? []));
  return argv;
}

export interface RunningVm {
  name: string;
  pid: number;
  argv: string[];
  paths: VmPaths;
  /** The pty QEMU allocated this time (also reachable as paths.ttyLink). */
  pty: string;
  /** Size of the console log when this boot started: this boot's output begins there. */
  consoleOffset: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The last lines of a log, for error messages. */
export async function logTail(path: string, lines = 30): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .replace(/\r/g, '')
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .split('\n')
    .slice(-lines)
    .join('\n');
}

export interface LaunchOptions {
  timeoutMs?: number;
  recorder?: Recorder;
  /** Called while QEMU is still paused, with the pty: attach a console reader here. */
  beforeCont?: (pty: string) => Promise<void>;
}

export async function launchVm(spec: VmSpec, runDir: string, opts: LaunchOptions = {}): Promise<RunningVm> {
  const recorder = opts.recorder ?? silentRecorder;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const paths = vmPaths(runDir, spec.name);
  const argv = qemuArgv(spec, paths);
  return recorder.step(`qemu start ${spec.name}`, { binary: spec.binary, ssh: spec.sshForwardPort }, async () => {
    await mkdir(runDir, { recursive: true });
    for (const p of [paths.qmpSocket, paths.labQmpSocket]) await rm(p, { force: true });
    await rm(paths.pidFile, { force: true });
    const consoleOffset = await stat(paths.consoleLog).then(
      (s) => s.size,
      () => 0,
    );
    const log = await open(paths.qemuLog, 'a');
    await log.write(`--- ${new Date().toISOString()} ${JSON.stringify(argv)}\n`);
    // Detached, in its own session, so it outlives the process that started it (lab up).
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', log.fd, log.fd] });
    child.unref();
    await log.close();
    const pid = child.pid;
    const fail = async (what: string, cause?: unknown) => {
      if (pid) await stopProcess(pid, paths.qmpSocket, 2000).catch(() => {});
      return new LabError(
        'lab-setup',
        `QEMU of ${spec.name}: ${what}`,
        { host: spec.name, evidence: paths.qemuLog, tail: await logTail(paths.qemuLog, 15) },
        { cause },
      );
    };
    if (!pid) throw await fail('did not start');
    const deadline = Date.now() + timeoutMs;
    let qmp: Qmp | undefined;
    while (!qmp) {
      if (!isOurProcess(pid, paths.qmpSocket)) throw await fail('exited during start-up');
      if (Date.now() > deadline) throw await fail(`no QMP socket within ${timeoutMs} ms`);
      qmp = await Qmp.connect(paths.labQmpSocket, { timeoutMs: 5000, name: spec.name, recorder }).catch(() => undefined);
      if (!qmp) await sleep(100);
    }
    try {
      const chardevs = await qmp.execute<{ label: string; filename: string }[]>('query-chardev');
      const con = chardevs.find((c) => c.label === 'con0');
      const pty = con?.filename.replace(/^pty:/, '');
      if (!pty?.startsWith('/dev/')) throw await fail(`query-chardev shows no pty for con0: ${JSON.stringify(chardevs)}`);
      const tmpLink = `${paths.ttyLink}.${process.pid}`;
      await rm(tmpLink, { force: true });
      await symlink(pty, tmpLink);
      await rename(tmpLink, paths.ttyLink);
      if (opts.beforeCont) await opts.beforeCont(pty);
      await qmp.execute('cont');
      return { name: spec.name, pid, argv, paths, pty, consoleOffset };
    } finally {
      await qmp.close();
    }
  });
}

/**
 * Waits until the console log, from `offset`, matches `pattern`. Fails at the deadline, or
 * at once if QEMU is gone, with the console tail and the log's path.
 */
export async function waitForConsole(vm: RunningVm, pattern: RegExp, what: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const buf = await readFile(vm.paths.consoleLog).catch(() => Buffer.alloc(0));
    const text = buf.subarray(vm.consoleOffset).toString('utf8');
    const m = text.match(pattern);
    if (m) return text;
    const gone = !isOurProcess(vm.pid, vm.paths.qmpSocket);
    if (gone || Date.now() > deadline) {
      throw new LabError(
        gone ? 'lab-setup' : 'lab-timeout',
        gone ? `QEMU exited while waiting for ${what}` : `no ${what} on the console within ${timeoutMs} ms`,
        {
          host: vm.name,
          evidence: vm.paths.consoleLog,
          tail: (await logTail(vm.paths.consoleLog)).trim() || '(nothing on the console yet)',
        },
      );
    }
    await sleep(200);
  }
}
