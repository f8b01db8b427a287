/**
 * The ways the emulated lab reaches a VM host beside SSH, as real servers are reached: a BMC
 * (ipmi_sim: IPMI power, SOL console) or ser2net (telnet console), on a loopback address of
 * its own. The BMC's password comes from LABRIG_EMU_BMC_PASSWORD, else one is made at
 * `lab up` and kept in the private run dir, from where the lab config passes it on in the
 * same variable: it never appears in a config, an argv or a log.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../../drivers/errors.js';
import { createPower } from '../../drivers/power.js';
import { powerOptionsSchema } from '../../drivers/power-options.js';
import { isOurProcess } from '../../drivers/proc.js';
import type { Recorder } from '../../drivers/recorder.js';
import { BMC_CIPHER_SUITE, type BmcRecord, bmcHealthy, bmcQemuArgs, startBmc, stopBmc } from './bmc.js';
import type { HostInput, VmHostRecord } from './hosts.js';
import { assertPortFree } from './probe.js';
import { qemuArgv, type RunningVm, type VmSpec, vmPaths } from './qemu-vm.js';
import { ser2netHealthy, stopSer2net } from './ser2net.js';

export const BMC_PASSWORD_ENV = 'LABRIG_EMU_BMC_PASSWORD';
export const BMC_USER = 'labrig';

/** Port plan of a host from its SSH port, so two labs (two run dirs) with distinct SSH ports never collide. */
export const accessPorts = (sshPort: number) => ({ lan: sshPort + 100, vm: sshPort + 200, sol: sshPort + 300, ser2net: sshPort + 100 });

const passwordFile = (runDir: string) => join(runDir, 'bmc-password');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The password the BMCs of this run dir use (set at lab up). */
export async function bmcPassword(runDir: string): Promise<string> {
  const pw =
    process.env[BMC_PASSWORD_ENV] ||
    (await readFile(passwordFile(runDir), 'utf8').catch(() => '')).trim() ||
    randomBytes(8).toString('hex');
  await writeFile(passwordFile(runDir), `${pw}\n`, { mode: 0o600 });
  return pw;
}

/** For the lab config: the runner's ipmitool finds the password where the config says, in LABRIG_EMU_BMC_PASSWORD. */
export function exportBmcPassword(runDir: string): void {
  if (process.env[BMC_PASSWORD_ENV]) return;
  try {
    const pw = readFileSync(passwordFile(runDir), 'utf8').trim();
    if (pw) process.env[BMC_PASSWORD_ENV] = pw;
  } catch {
    /* no BMC in this lab: nothing to pass on */
  }
}

export function bmcPowerConfig(b: BmcRecord): NonNullable<HostInput['power']> & { kind: 'ipmi' } {
  return {
    kind: 'ipmi',
    address: b.address,
    port: b.lanPort,
    user: b.user,
    passwordEnv: BMC_PASSWORD_ENV,
    cipherSuite: BMC_CIPHER_SUITE,
    interface: 'lanplus',
    minOffMs: 1000,
  };
}

/** takeOver: a SOL session left by a killed run of ours must not lock the host's console. */
export function solConsoleConfig(b: BmcRecord): NonNullable<HostInput['console']> {
  return {
    kind: 'ipmi-sol',
    address: b.address,
    port: b.lanPort,
    user: b.user,
    passwordEnv: BMC_PASSWORD_ENV,
    cipherSuite: BMC_CIPHER_SUITE,
    takeOver: true,
    login: { user: 'root' },
  };
}

/** QEMU's PID now: a BMC's power on starts a new QEMU, which writes its -pidfile. */
export function vmPid(r: VmHostRecord): number {
  if (!r.bmc) return r.pid;
  try {
    const pid = Number(readFileSync(r.pidFile, 'utf8').trim());
    if (isOurProcess(pid, r.qmpSocket)) return pid;
  } catch {
    /* no pidfile: QEMU never started or was powered off */
  }
  return r.pid;
}

export function accessHealthy(r: VmHostRecord): string | undefined {
  return (r.bmc && bmcHealthy(r.bmc)) || (r.ser2net && ser2netHealthy(r.ser2net)) || undefined;
}

export async function stopAccess(r: VmHostRecord): Promise<void> {
  if (r.ser2net) await stopSer2net(r.ser2net);
  if (r.bmc) await stopBmc(r.bmc);
}

/**
 * Boots a host the way a BMC does: ipmi_sim is started with QEMU's argv as its power-on
 * command, and `ipmitool chassis power on` (the lab's ipmi power driver) starts QEMU.
 */
export async function bootThroughBmc(
  spec: VmSpec,
  runDir: string,
  sshPort: number,
  address: string,
  recorder: Recorder,
): Promise<{ vm: RunningVm; bmc: BmcRecord }> {
  const ports = accessPorts(sshPort);
  for (const p of [ports.vm, ports.sol]) await assertPortFree(spec.name, p, address);
  const paths = vmPaths(runDir, spec.name);
  const full: VmSpec = {
    ...spec,
    paused: false,
    serialTcp: { address, port: ports.sol },
    extraArgs: [...(spec.extraArgs ?? []), ...bmcQemuArgs(address, ports.vm)],
  };
  const argv = qemuArgv(full, paths);
  for (const p of [paths.qmpSocket, paths.labQmpSocket, paths.pidFile]) await rm(p, { force: true });
  const consoleOffset = await stat(paths.consoleLog).then(
    (s) => s.size,
    () => 0,
  );
  const password = await bmcPassword(runDir);
  const bmc = await startBmc({
    host: spec.name,
    dir: join(runDir, `${spec.name}-bmc`),
    address,
    lanPort: ports.lan,
    vmPort: ports.vm,
    solDevice: `tcp:${address}:${ports.sol}`,
    startArgv: argv,
    startLog: paths.qemuLog,
    user: BMC_USER,
    password,
  });
  try {
    await createPower(powerOptionsSchema.parse(bmcPowerConfig(bmc)), recorder, {
      host: spec.name,
      env: { [BMC_PASSWORD_ENV]: password },
    }).on();
    const deadline = Date.now() + 30_000;
    for (;;) {
      const pid = Number((await readFile(paths.pidFile, 'utf8').catch(() => '')).trim());
      if (isOurProcess(pid, paths.qmpSocket)) return { vm: { name: spec.name, pid, argv, paths, pty: '', consoleOffset }, bmc };
      if (Date.now() > deadline)
        throw new LabError('lab-setup', `BMC power on of ${spec.name}: no QEMU pidfile within 30 s`, {
          host: spec.name,
          evidence: paths.qemuLog,
        });
      await sleep(100);
    }
  } catch (e) {
    await stopBmc(bmc);
    throw e;
  }
}
