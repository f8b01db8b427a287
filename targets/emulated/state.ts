/**
 * The running emulated lab, as `lab up` left it: `<run dir>/state.json` with every PID, port,
 * socket, pty and pinned host key. The run dir is `$LABRIG_RUN_DIR`, else `~/.cache/labrig/run`:
 * never a predictable /tmp path, and refused unless it is ours alone (private-dir.ts), because
 * its keys and state.json's startArgv are trusted. `lab down`, `lab status` and the lab config
 * all read it; nothing is trusted from it without checking the process is ours.
 */
import { lstatSync, readFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { LabError } from '../../drivers/errors.js';
import { checkPrivateDir, ensurePrivateDir } from '../../drivers/private-dir.js';
import type { VmHostRecord } from './hosts.js';

/** A daemon the lab needs on a host; stopped by the lab only when it started it. */
export interface DaemonRecord {
  name: string;
  bin: string;
  pidFile: string;
  ours: boolean;
}

/** emu-arm64: this machine over the lab's sshd, with libvirt. */
export interface Arm64HostRecord {
  kind: 'sshd';
  name: 'emu-arm64';
  pid: number;
  address: string;
  port: number;
  user: string;
  identityFile: string;
  hostKey: string;
  knownHosts: string;
  dir: string;
  /** sshd's config path: on its command line, so it identifies our sshd. */
  configFile: string;
  daemons: DaemonRecord[];
  startedAt: string;
}

export type HostRecord = Arm64HostRecord | VmHostRecord;

export interface LabState {
  version: 1;
  runDir: string;
  hosts: Record<string, HostRecord>;
}

export function runDirOf(explicit?: string): string {
  return resolve(explicit ?? process.env.LABRIG_RUN_DIR ?? join(homedir(), '.cache', 'labrig', 'run'));
}

/** Creates the run dir (0700) or checks the one there; a lab-setup error when it is not ours alone. */
export function ensureRunDir(runDir: string): string {
  return ensurePrivateDir(runDir, 'the emulated lab run directory');
}

export const statePath = (runDir: string) => join(runDir, 'state.json');

/** Synchronous, so a lab config can be computed where the runner loads it. */
export function readState(runDir: string): LabState | undefined {
  if (!checkPrivateDir(runDir, 'the emulated lab run directory')) return undefined;
  const path = statePath(runDir);
  let text: string;
  try {
    const st = lstatSync(path);
    if (!st.isFile() || st.uid !== (process.getuid?.() ?? 0))
      throw new LabError('lab-setup', `refusing ${path}: not a regular file of ours`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let parsed: LabState;
  try {
    parsed = JSON.parse(text) as LabState;
  } catch (e) {
    throw new LabError(
      'lab-setup',
      `${path} is not valid JSON (${(e as Error).message}): the emulated lab's state is unreadable; remove the file and stop what is left of the lab by hand`,
      {},
      { cause: e },
    );
  }
  return parsed.version === 1 ? parsed : undefined;
}

export async function writeState(state: LabState): Promise<void> {
  ensureRunDir(state.runDir);
  const tmp = `${statePath(state.runDir)}.${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, statePath(state.runDir));
}

export async function removeState(runDir: string): Promise<void> {
  await rm(statePath(runDir), { force: true });
}

/** The process marker that proves a PID is still the one we started. */
export function markerOf(r: HostRecord): string {
  return r.kind === 'sshd' ? r.configFile : r.qmpSocket;
}
