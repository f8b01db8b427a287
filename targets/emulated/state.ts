/**
 * The running emulated lab, as `lab up` left it: `${LABRIG_RUN_DIR:-/tmp/labrig-lab}/state.json`
 * with every PID, port, socket, pty and pinned host key. `lab down`, `lab status` and the
 * lab config all read it; nothing is trusted from it without checking the process is ours.
 */
import { readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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
  return explicit ?? process.env.LABRIG_RUN_DIR ?? '/tmp/labrig-lab';
}

export const statePath = (runDir: string) => join(runDir, 'state.json');

/** Synchronous, so a lab config can be computed where the runner loads it. */
export function readState(runDir: string): LabState | undefined {
  let text: string;
  try {
    text = readFileSync(statePath(runDir), 'utf8');
  } catch {
    return undefined;
  }
  const parsed = JSON.parse(text) as LabState;
  return parsed.version === 1 ? parsed : undefined;
}

export async function writeState(state: LabState): Promise<void> {
  await mkdir(state.runDir, { recursive: true });
  const tmp = `${statePath(state.runDir)}.${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(tmp, statePath(state.runDir));
}

export async function removeState(runDir: string): Promise<void> {
  await rm(statePath(runDir), { force: true });
}

/** The process marker that proves a PID is still the one we started. */
export function markerOf(r: HostRecord): string {
  return r.kind === 'sshd' ? r.configFile : r.qmpSocket;
}
