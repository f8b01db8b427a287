/**
 * A BMC for an emulated host: OpenIPMI's ipmi_sim, reached the way a real one is (IPMI 2.0
 * lanplus on UDP, Serial-over-LAN), whose chassis power starts and stops the host's QEMU
 * through `startcmd`. QEMU talks to it over `ipmi-bmc-extern` (the VM codec, TCP). Its config
 * holds the password, so it lives in the private run dir (0600), never in the repo or a log.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../../drivers/errors.js';
import { ipmitoolBase } from '../../drivers/ipmi.js';
import { runLocal } from '../../drivers/local.js';
import { isOurProcess, spawnDetached, stopProcess } from '../../drivers/proc.js';

export interface BmcSpec {
  host: string;
  /** Private directory for config, state and log. */
  dir: string;
  address: string;
  /** UDP port of the LAN channel. */
  lanPort: number;
  /** TCP port QEMU's ipmi-bmc-extern connects to. */
  vmPort: number;
  /** `tcp:<addr>:<port>`: the serial line SOL carries (QEMU's serial chardev, listening). */
  solDevice?: string;
  /** What chassis power on runs: written to a script, each word quoted. */
  startArgv?: readonly string[];
  /** Where the started command's stdout and stderr go. */
  startLog?: string;
  user: string;
  password: string;
}

export interface BmcRecord {
  pid: number;
  /** On ipmi_sim's command line: identifies our process. */
  configFile: string;
  address: string;
  lanPort: number;
  vmPort: number;
  user: string;
  log: string;
}

/** ipmitool -C 3: ipmi_sim does not answer Get Channel Cipher Suites, which costs ipmitool 10 s per call. */
export const BMC_CIPHER_SUITE = 3;

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** QEMU's side of the BMC (x86 ISA KCS, as on most x86 servers; QEMU 7.2 docs/specs/ipmi). */
export function bmcQemuArgs(address: string, vmPort: number): string[] {
  return [
    '-chardev',
    `socket,id=ipmi0,host=${address},port=${vmPort},reconnect=10`,
    '-device',
    'ipmi-bmc-extern,id=bmc0,chardev=ipmi0',
    '-device',
    'isa-ipmi-kcs,bmc=bmc0',
  ];
}

export function lanConf(spec: BmcSpec, startScript: string | undefined): string {
  for (const [field, v] of [
    ['password', spec.password],
    ['user', spec.user],
    ['dir', spec.dir],
  ] as const)
    if (/["\s\\]/.test(v))
      throw new LabError('config', `BMC of ${spec.host}: the ${field} must not hold quotes, spaces or backslashes`, { host: spec.host });
  if (spec.password.length > 20)
    throw new LabError('config', `BMC of ${spec.host}: an IPMI 2.0 password has at most 20 characters`, { host: spec.host });
  const auths = 'none md2 md5 straight';
  return [
    `name "${spec.host}"`,
    'set_working_mc 0x20',
    '  startlan 1',
    `    addr ${spec.address} ${spec.lanPort}`,
    '    priv_limit admin',
    ...['callback', 'user', 'operator', 'admin'].map((p) => `    allowed_auths_${p} ${auths}`),
    '    guid a123456789abcdefa123456789abcdef',
    '  endlan',
    `  serial 15 ${spec.address} ${spec.vmPort} codec VM`,
    ...(startScript ? [`  startcmd "${startScript}"`, '  startnow false', '  poweroff_wait 3', '  kill_wait 5'] : []),
    `  user 2 true "${spec.user}" "${spec.password}" admin 10 md5`,
    ...(spec.solDevice ? [`  sol "${spec.solDevice}" 115200`] : []),
    '',
  ].join('\n');
}

const EMU = [
  'mc_setbmc 0x20',
  'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr',
  'sel_enable 0x20 1000 0x0a',
  'mc_enable 0x20',
  '',
].join('\n');

export async function startBmc(spec: BmcSpec, timeoutMs = 20_000): Promise<BmcRecord> {
  await mkdir(join(spec.dir, 'state'), { recursive: true, mode: 0o700 });
  let script: string | undefined;
  if (spec.startArgv) {
    script = join(spec.dir, 'power-on.sh');
    await writeFile(
      script,
      `#!/bin/sh\n# chassis power on (ipmi_sim startcmd)\nexec ${spec.startArgv.map(quote).join(' ')}${spec.startLog ? ` >>${quote(spec.startLog)} 2>&1` : ''}\n`,
      { mode: 0o700 },
    );
  }
  const configFile = join(spec.dir, 'lan.conf');
  await writeFile(configFile, lanConf(spec, script), { mode: 0o600 });
  const emuFile = join(spec.dir, 'bmc.emu');
  await writeFile(emuFile, EMU, { mode: 0o600 });
  const log = join(spec.dir, 'ipmi_sim.log');
  // -n: no console on stdio; detached, so it outlives `lab up`.
  const pid = await spawnDetached(['ipmi_sim', '-n', '-c', configFile, '-f', emuFile, '-s', join(spec.dir, 'state')], log, {
    what: 'ipmi_sim (Debian package openipmi)',
    host: spec.host,
  });
  const record: BmcRecord = {
    pid,
    configFile,
    address: spec.address,
    lanPort: spec.lanPort,
    vmPort: spec.vmPort,
    user: spec.user,
    log,
  };
  const deadline = Date.now() + timeoutMs;
  const argv = [
    ...ipmitoolBase({
      address: spec.address,
      port: spec.lanPort,
      user: spec.user,
      passwordEnv: 'IPMI_PASSWORD',
      cipherSuite: BMC_CIPHER_SUITE,
    }),
    'mc',
    'info',
  ];
  for (;;) {
    if (!isOurProcess(pid, configFile))
      throw new LabError('lab-setup', `ipmi_sim of ${spec.host} exited during start-up`, { host: spec.host, evidence: log });
    const r = await runLocal(argv, { env: { IPMI_PASSWORD: spec.password }, timeoutMs: 10_000, check: false }).catch(() => undefined);
    if (r?.code === 0) return record;
    if (Date.now() > deadline) {
      await stopBmc(record);
      throw new LabError(
        'lab-setup',
        `ipmi_sim of ${spec.host} does not answer on ${spec.address}:${spec.lanPort} within ${timeoutMs} ms: ${r?.stderr.trim() ?? ''}`,
        { host: spec.host, evidence: log },
      );
    }
    await sleep(200);
  }
}

export async function stopBmc(r: BmcRecord): Promise<void> {
  await stopProcess(r.pid, r.configFile);
}

export const bmcHealthy = (r: BmcRecord): string | undefined =>
  isOurProcess(r.pid, r.configFile) ? undefined : `ipmi_sim ${r.pid} is gone`;
