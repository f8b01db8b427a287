/**
 * What the ipmitool callers share (power, Serial-over-LAN): the argv that reaches one BMC and
 * the environment that carries its password. The password travels in IPMI_PASSWORD (`-E`),
 * never on a command line, where `ps` and the step log would show it.
 */
import { LabError } from './errors.js';

export interface IpmiAccess {
  address: string;
  port: number;
  user: string;
  passwordEnv: string;
  interface?: 'lanplus' | 'lan';
  cipherSuite?: number;
}

export const IPMI_DEFAULT_PORT = 623;

/** `ipmitool -I … -H … [-p …] [-C …] -U … -E`: everything before the subcommand. */
export function ipmitoolBase(c: IpmiAccess): string[] {
  return [
    'ipmitool',
    '-I',
    c.interface ?? 'lanplus',
    '-H',
    c.address,
    ...(c.port !== IPMI_DEFAULT_PORT ? ['-p', String(c.port)] : []),
    ...(c.cipherSuite !== undefined ? ['-C', String(c.cipherSuite)] : []),
    '-U',
    c.user,
    '-E',
  ];
}

/** IPMI_PASSWORD from the variable the config names; unset is a config error naming it. */
export function ipmiEnv(c: IpmiAccess, env: NodeJS.ProcessEnv, host: string | undefined, what: string): { IPMI_PASSWORD: string } {
  const v = env[c.passwordEnv];
  if (!v) throw new LabError('config', `${what}: environment variable ${c.passwordEnv} is not set (passwordEnv)`, { host });
  return { IPMI_PASSWORD: v };
}
