/**
 * ser2net for an emulated host: its serial line (QEMU's pty) served over telnet on a TCP port,
 * as a lab's console server does. One client at a time: a second is told "Port already in use".
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { LabError } from '../../drivers/errors.js';
import { isOurProcess, spawnDetached, stopProcess } from '../../drivers/proc.js';

export interface Ser2netSpec {
  host: string;
  dir: string;
  device: string;
  address: string;
  port: number;
}

export interface Ser2netRecord {
  pid: number;
  configFile: string;
  address: string;
  port: number;
  log: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function ser2netYaml(spec: Ser2netSpec): string {
  if (/[\s,"']/.test(spec.device))
    throw new LabError('config', `ser2net of ${spec.host}: device path ${spec.device} must not hold spaces, commas or quotes`, {
      host: spec.host,
    });
  return [
    `connection: &${spec.host}`,
    `  accepter: telnet(rfc2217=false),tcp,${spec.address},${spec.port}`,
    `  connector: serialdev,${spec.device},115200n81,local`,
    '  options:',
    '    kickolduser: false',
    '    max-connections: 1',
    '',
  ].join('\n');
}

const listening = (address: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect({ host: address, port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

export async function startSer2net(spec: Ser2netSpec, timeoutMs = 10_000): Promise<Ser2netRecord> {
  await mkdir(spec.dir, { recursive: true, mode: 0o700 });
  const configFile = join(spec.dir, 'ser2net.yaml');
  await writeFile(configFile, ser2netYaml(spec), { mode: 0o600 });
  const log = join(spec.dir, 'ser2net.log');
  const pid = await spawnDetached(['ser2net', '-n', '-c', configFile], log, { what: 'ser2net (Debian package ser2net)', host: spec.host });
  const record: Ser2netRecord = { pid, configFile, address: spec.address, port: spec.port, log };
  const deadline = Date.now() + timeoutMs;
  // A probe connection is a client too: ser2net opens the device for it, then closes it again.
  while (!(await listening(spec.address, spec.port))) {
    if (!isOurProcess(pid, configFile) || Date.now() > deadline) {
      await stopSer2net(record);
      throw new LabError('lab-setup', `ser2net of ${spec.host} is not listening on ${spec.address}:${spec.port}`, {
        host: spec.host,
        evidence: log,
      });
    }
    await sleep(100);
  }
  return record;
}

export async function stopSer2net(r: Ser2netRecord): Promise<void> {
  await stopProcess(r.pid, r.configFile);
}

export const ser2netHealthy = (r: Ser2netRecord): string | undefined =>
  isOurProcess(r.pid, r.configFile) ? undefined : `ser2net ${r.pid} is gone`;
