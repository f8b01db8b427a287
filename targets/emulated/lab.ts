/**
 * The emulated lab's lifecycle: `labUp` brings up `emu-arm64` (a real OpenSSH sshd + libvirt) and the VM
 * hosts, `labDown` stops by PID whatever the state lists, `labStatus` checks each host for
 * real (process ours, QEMU running, SSH answering with the pinned key). A host that fails
 * any check is stopped and started again by labUp, never reused as it is.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabError } from '../../drivers/errors.js';
import { acquireLock, isOurProcess, stopProcess } from '../../drivers/proc.js';
import { Qmp } from '../../drivers/qmp.js';
import { type Recorder, silentRecorder } from '../../drivers/recorder.js';
import { clientKey } from '../../images/cache.js';
import { type Progress, stderrProgress } from '../../images/debs.js';
import type { LabInput } from '../schema.js';
import { accessHealthy, accessPorts, bootThroughBmc, exportBmcPassword, stopAccess, vmPid } from './access.js';
import type { BmcRecord } from './bmc.js';
import { daemonsHealthy, EMU_ARM64, emuArm64LabHost, startEmuArm64, stopDaemons } from './emu-arm64.js';
import { type EmulatedVmHost, type HostAccess, type HostInput, type VmHostRecord, vmHost, vmHosts } from './hosts.js';
import { assertPortFree, sshBootId, waitForSsh, writeKnownHosts } from './probe.js';
import { launchVm, logTail, type RunningVm, waitForConsole } from './qemu-vm.js';
import { type Ser2netRecord, startSer2net } from './ser2net.js';
import { ensureRunDir, type HostRecord, type LabState, markerOf, readState, removeState, runDirOf, writeState } from './state.js';

export const EMU_ARM64_SSH_PORT = 2222;
/** The emulated lab's hosts: what `lab up` brings up when no host is named. */
/**
 * Hosts of the emulated lab tested at once on a 2-core runner (LABRIG_WORKERS overrides): with 4,
 * the nested (TCG-in-TCG) pmem guest stalled past its 420 s boot deadline twice (see the note).
 */
export const EMULATED_PARALLEL_HOSTS = 1;

export const labHostNames: readonly string[] = [EMU_ARM64, ...vmHosts.map((h) => h.name)];

export interface LabUpOptions {
  hosts?: readonly string[];
  recorder?: Recorder;
  progress?: Progress;
  runDir?: string;
  /** SSH port per host (default: the port it had last time, else 2222 / the host's default). */
  ports?: Readonly<Record<string, number>>;
  /** How a host is reached beside SSH (default: as it was last time, else the host's own; tests pin 'pty'). */
  access?: Readonly<Record<string, HostAccess['kind']>>;
  signal?: AbortSignal;
}

export interface HostStatus {
  name: string;
  state: 'up' | 'down' | 'broken';
  detail: string;
}

function checkNames(names: readonly string[]): void {
  const unknown = names.filter((n) => !labHostNames.includes(n));
  if (unknown.length) throw new LabError('config', `unknown emulated host(s) ${unknown.join(', ')}; known: ${labHostNames.join(', ')}`);
}

const lockOf = (runDir: string) => acquireLock(join(runDir, 'lab.lock'), { timeoutMs: 30 * 60_000, what: 'the emulated lab' });

/** How the QMP power controller starts a VM again after `quit`: `lab up <host>`. */
function startArgv(runDir: string, host: string): string[] {
  const cli = fileURLToPath(new URL('./cli.ts', import.meta.url));
  const env = [`LABRIG_RUN_DIR=${runDir}`, ...(process.env.LABRIG_CACHE ? [`LABRIG_CACHE=${process.env.LABRIG_CACHE}`] : [])];
  return ['/usr/bin/env', ...env, process.execPath, '--import', import.meta.resolve('tsx'), cli, 'up', host];
}

async function startVm(
  def: EmulatedVmHost,
  runDir: string,
  port: number,
  access: HostAccess['kind'],
  recorder: Recorder,
  progress: Progress,
): Promise<VmHostRecord> {
  const image = await def.image(progress);
  // A pty host keeps 127.0.0.1 (what it always had); the BMC and console-server hosts live on their own address.
  const address = access === 'pty' ? '127.0.0.1' : (def.address ?? '127.0.0.1');
  await assertPortFree(def.name, port, address);
  const spec = { ...def.vm(image, { sshPort: port }), sshForwardAddress: address };
  let vm: RunningVm | undefined;
  let bmc: BmcRecord | undefined;
  let ser2net: Ser2netRecord | undefined;
  const knownHosts = join(runDir, `${def.name}.known_hosts`);
  const identityFile = (await clientKey()).privateKey;
  try {
    if (access === 'bmc')
      ({ vm, bmc } = await recorder.step(`${def.name}: power on through its BMC (ipmi_sim)`, { address }, () =>
        bootThroughBmc(spec, runDir, port, address, recorder),
      ));
    else vm = await launchVm(spec, runDir, { recorder });
    const booted = vm;
    await recorder.step(`${def.name}: wait for the login prompt`, { log: booted.paths.consoleLog }, () =>
      waitForConsole(booted, def.readyPattern, 'login prompt', def.readyTimeoutMs),
    );
    await writeKnownHosts(knownHosts, [{ address, port, publicKey: image.manifest.hostKey.publicKey }]);
    const target = { address, port, user: 'root', identityFile, knownHosts };
    await recorder.step(`${def.name}: wait for SSH`, { address, port }, async () => {
      try {
        await waitForSsh(def.name, target, 60_000, () => isOurProcess(booted.pid, booted.paths.qmpSocket));
      } catch (e) {
        throw new LabError('unreachable', (e as Error).message.replace(/^\[lab:\S+\] (host \S+: )?/, ''), {
          host: def.name,
          evidence: booted.paths.consoleLog,
          tail: await logTail(booted.paths.consoleLog),
        });
      }
    });
    if (access === 'ser2net')
      ser2net = await recorder.step(`${def.name}: ser2net on ${address}`, {}, () =>
        startSer2net({
          host: def.name,
          dir: join(runDir, `${def.name}-ser2net`),
          device: booted.paths.ttyLink,
          address,
          port: accessPorts(port).ser2net,
        }),
      );
  } catch (e) {
    if (vm) await stopProcess(vm.pid, vm.paths.qmpSocket);
    if (bmc) await stopAccess({ bmc } as VmHostRecord);
    throw e;
  }
  return {
    kind: 'qemu',
    name: def.name,
    pid: vm.pid,
    argv: vm.argv,
    ...vm.paths,
    pty: vm.pty,
    sshPort: port,
    identityFile,
    knownHosts,
    hostKey: image.manifest.hostKey.fingerprint,
    imageDir: image.dir,
    startArgv: startArgv(runDir, def.name),
    startedAt: new Date().toISOString(),
    address,
    ...(bmc ? { bmc } : {}),
    ...(ser2net ? { ser2net } : {}),
  };
}

/** Checks a host for real; `detail` says what failed. */
async function checkHost(r: HostRecord): Promise<HostStatus> {
  const broken = (detail: string): HostStatus => ({ name: r.name, state: 'broken', detail });
  const pid = r.kind === 'qemu' ? vmPid(r) : r.pid;
  if (!isOurProcess(pid, markerOf(r))) return broken(`process ${pid} is gone`);
  const daemons = r.kind === 'sshd' ? daemonsHealthy(r) : accessHealthy(r);
  if (daemons) return broken(daemons);
  if (r.kind === 'qemu') {
    const qmp = await Qmp.connect(r.labQmpSocket, { timeoutMs: 3000, name: r.name }).catch((e: Error) => e);
    if (qmp instanceof Error) return broken(`the lab's QMP does not answer: ${qmp.message}`);
    const { status } = await qmp.execute<{ status: string }>('query-status').finally(() => qmp.close());
    if (status !== 'running') return broken(`QEMU is ${status}`);
  }
  const port = r.kind === 'qemu' ? r.sshPort : r.port;
  const address = r.kind === 'qemu' ? (r.address ?? '127.0.0.1') : '127.0.0.1';
  const ssh = await sshBootId({ address, port, user: 'root', identityFile: r.identityFile, knownHosts: r.knownHosts }, 15_000);
  if (!ssh.ok) return broken(`ssh ${address}:${port}: ${ssh.reason}`);
  const where =
    r.kind !== 'qemu'
      ? `ssh ${address}:${port}`
      : r.bmc
        ? `ssh ${address}:${port}, BMC (ipmi_sim ${r.bmc.pid}) ${r.bmc.address}:${r.bmc.lanPort}/udp with SOL, qmp ${r.qmpSocket}`
        : r.ser2net
          ? `ssh ${address}:${port}, console telnet ${r.ser2net.address}:${r.ser2net.port} (ser2net ${r.ser2net.pid}) → ${r.pty}, qmp ${r.qmpSocket}`
          : `ssh ${address}:${port}, console ${r.ttyLink} → ${r.pty}, qmp ${r.qmpSocket}`;
  return { name: r.name, state: 'up', detail: `${where}, pid ${pid}, boot_id ${ssh.bootId}` };
}

async function stopHost(r: HostRecord): Promise<void> {
  if (r.kind === 'sshd') await stopDaemons(r.daemons ?? []);
  // QEMU first: a BMC that outlived it would not start it again, but one stopped first leaves it running.
  await stopProcess(r.kind === 'qemu' ? vmPid(r) : r.pid, markerOf(r));
  if (r.kind === 'qemu') await stopAccess(r);
  if (r.kind === 'qemu') for (const p of [r.qmpSocket, r.labQmpSocket, r.ttyLink, r.pidFile]) await rm(p, { force: true });
}

export async function labUp(opts: LabUpOptions = {}): Promise<LabState> {
  const runDir = runDirOf(opts.runDir);
  const recorder = opts.recorder ?? silentRecorder;
  const progress = opts.progress ?? stderrProgress;
  const wanted = opts.hosts?.length ? opts.hosts : labHostNames;
  checkNames(wanted);
  ensureRunDir(runDir);
  const release = await lockOf(runDir);
  try {
    const state: LabState = readState(runDir) ?? { version: 1, runDir, hosts: {} };
    for (const name of wanted) {
      // Between hosts: an interrupted `lab up` stops starting more (the caller brings down what is up).
      opts.signal?.throwIfAborted();
      const previous = state.hosts[name];
      if (previous) {
        const check = await checkHost(previous);
        if (check.state === 'up') {
          recorder.log(`${name}: already up (${check.detail})`);
          continue;
        }
        recorder.log(`${name}: not healthy (${check.detail}): stopping what is left and starting it again`);
        await stopHost(previous);
        delete state.hosts[name];
        await writeState(state);
      }
      const prevPort = previous && (previous.kind === 'qemu' ? previous.sshPort : previous.port);
      const def = vmHost(name);
      const port = opts.ports?.[name] ?? prevPort ?? def?.defaultSshPort ?? EMU_ARM64_SSH_PORT;
      const prevAccess = previous?.kind === 'qemu' ? (previous.bmc ? 'bmc' : previous.ser2net ? 'ser2net' : 'pty') : undefined;
      const access = opts.access?.[name] ?? prevAccess ?? def?.access?.kind ?? 'pty';
      state.hosts[name] = await recorder.step<HostRecord>(`lab up: ${name}`, { port, access }, () =>
        def ? startVm(def, runDir, port, access, recorder, progress) : startEmuArm64(runDir, port),
      );
      await writeState(state);
    }
    return state;
  } finally {
    await release();
  }
}

export async function labDown(opts: { runDir?: string; hosts?: readonly string[]; recorder?: Recorder } = {}): Promise<HostStatus[]> {
  const runDir = runDirOf(opts.runDir);
  const recorder = opts.recorder ?? silentRecorder;
  if (!readState(runDir)) return labHostNames.map((name) => ({ name, state: 'down', detail: 'not running' }));
  const release = await lockOf(runDir);
  try {
    const state = readState(runDir) ?? { version: 1, runDir, hosts: {} };
    const names = (opts.hosts?.length ? opts.hosts : Object.keys(state.hosts)).slice().reverse();
    const out: HostStatus[] = [];
    for (const name of names) {
      const r = state.hosts[name];
      if (!r) continue;
      await recorder.step(`lab down: ${name}`, { pid: r.pid }, () => stopHost(r));
      delete state.hosts[name];
      out.push({ name, state: 'down', detail: `stopped pid ${r.pid}` });
    }
    if (Object.keys(state.hosts).length) await writeState(state);
    else await removeState(runDir);
    return out.reverse();
  } finally {
    await release();
  }
}

export async function labStatus(opts: { runDir?: string } = {}): Promise<HostStatus[]> {
  const state = readState(runDirOf(opts.runDir));
  const names = [...new Set([...labHostNames, ...Object.keys(state?.hosts ?? {})])];
  return Promise.all(
    names.map((name) => {
      const r = state?.hosts[name];
      return r ? checkHost(r) : Promise.resolve<HostStatus>({ name, state: 'down', detail: 'not running' });
    }),
  );
}

/**
 * The lab definition of the running emulated lab. A VM that is merely powered off stays
 * listed (its QMP power controller can start it); no state, or no live host, is an error.
 */
export function emulatedLab(opts: { runDir?: string } = {}): LabInput {
  const state = readState(runDirOf(opts.runDir));
  const records = Object.values(state?.hosts ?? {});
  if (
    !records.some(
      (r) => isOurProcess(r.kind === 'qemu' ? vmPid(r) : r.pid, markerOf(r)) || (r.kind === 'qemu' && r.bmc && !accessHealthy(r)),
    )
  )
    throw new LabError('lab-setup', 'the emulated lab is not up: run `npx labrig lab up`');
  const hosts = records.map((r): HostInput => {
    if (r.kind === 'sshd') return emuArm64LabHost(r);
    const def = vmHost(r.name);
    if (!def) throw new LabError('lab-setup', `state.json lists ${r.name}, which this version does not know: run \`npx labrig lab down\``);
    return def.labHost(r);
  });
  exportBmcPassword(runDirOf(opts.runDir));
  // Every emulated host shares this machine's cores. Their VMs run under TCG: the VM hosts have
  // no KVM, and emu-arm64 (this machine) runs arm guests, which KVM on x86 cannot.
  return { name: 'emulated', parallelHosts: EMULATED_PARALLEL_HOSTS, hosts: hosts.map((h) => ({ ...h, accel: 'tcg' })) };
}
