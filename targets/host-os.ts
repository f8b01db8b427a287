/**
 * A host's OS family and boot identity, read over a command runner: the I/O around
 * platform.ts and boot-identity.ts, kept apart from Host so Host only asks.
 */
import { LabError } from '../drivers/errors.js';
import type { CommandResult } from '../drivers/local.js';
import { type BootReading, bootIdentityCommand, parseBootIdentity } from './boot-identity.js';
import { type OsFamily, osFamilyOf } from './platform.js';

type Run = (command: string) => Promise<CommandResult>;

/** `uname -s`; an OS the lab cannot drive is a config failure naming what the host said. */
export async function detectOsFamily(run: Run, host: string): Promise<OsFamily> {
  const r = await run('uname -s');
  // A command that did not finish (no exit status: the shell or the connection went away) says nothing about the OS.
  if (r.code !== 0)
    throw new LabError('unreachable', `\`uname -s\` did not succeed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 200)}`, {
      host,
    });
  const os = osFamilyOf(r.stdout);
  if (!os)
    throw new LabError(
      'config',
      `uname -s says ${JSON.stringify(r.stdout.trim().slice(0, 80) || r.stderr.trim().slice(0, 80))}: not an OS the lab drives (linux, freebsd)`,
      { host },
    );
  return os;
}

export async function readBootIdentity(run: Run, os: OsFamily, host: string): Promise<BootReading> {
  const command = bootIdentityCommand(os);
  const r = await run(command);
  const reading = r.code === 0 ? parseBootIdentity(os, r.stdout) : undefined;
  if (!reading)
    throw new LabError(
      'unreachable',
      `no boot identity from \`${command}\` (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 200)}`,
      { host },
    );
  return reading;
}
