/**
 * The emulated lab's VM hosts. Each is a recipe (an image built from Debian packages), a
 * QEMU spec, what its console shows when it is ready, and how it appears in the lab
 * config. emu-x86-pmem, emu-xen and emu-arm64 join this list the same way emu-mini did.
 */

import type { BuiltImage } from '../../images/cache.js';
import type { Progress } from '../../images/debs.js';
import type { LabInput } from '../schema.js';
import type { BmcRecord } from './bmc.js';
import { emuMini } from './emu-mini.js';
import { emuX86Pmem } from './emu-x86-pmem.js';
import { emuXen } from './emu-xen.js';
import type { VmSpec } from './qemu-vm.js';
import type { Ser2netRecord } from './ser2net.js';

export type HostInput = LabInput['hosts'][number];

/** What state.json records of a running VM host; enough to rebuild its lab entry. */
export interface VmHostRecord {
  kind: 'qemu';
  name: string;
  pid: number;
  argv: string[];
  qmpSocket: string;
  labQmpSocket: string;
  pidFile: string;
  consoleLog: string;
  qemuLog: string;
  pty: string;
  ttyLink: string;
  sshPort: number;
  identityFile: string;
  knownHosts: string;
  hostKey: string;
  imageDir: string;
  /** Powers the VM on again after a QMP `quit`. */
  startArgv: string[];
  startedAt: string;
  /** Where SSH (and the BMC, ser2net) listen: a loopback address of this machine. */
  address?: string;
  /** The host's BMC (ipmi_sim): its power, and its console through SOL. QEMU's PID then changes with every power on. */
  bmc?: BmcRecord;
  /** ser2net serving the host's serial console over telnet. */
  ser2net?: Ser2netRecord;
}

/**
 * How the lab reaches a host beside SSH: its pty and QMP (the default), a BMC (ipmi_sim:
 * IPMI power, SOL console), or ser2net (telnet console; QMP power).
 */
export type HostAccess = { kind: 'pty' } | { kind: 'bmc' } | { kind: 'ser2net' };

export interface EmulatedVmHost {
  name: string;
  defaultSshPort: number;
  /** Loopback address of the host's SSH, BMC and console server (default 127.0.0.1). */
  address?: string;
  access?: HostAccess;
  /** The cached image, built first if needed. */
  image(progress: Progress): Promise<BuiltImage>;
  vm(image: BuiltImage, opts: { sshPort: number }): VmSpec;
  /** Console text that means the guest finished booting. */
  readyPattern: RegExp;
  readyTimeoutMs: number;
  labHost(record: VmHostRecord): HostInput;
}

export const vmHosts: readonly EmulatedVmHost[] = [emuMini, emuXen, emuX86Pmem];

export function vmHost(name: string): EmulatedVmHost | undefined {
  return vmHosts.find((h) => h.name === name);
}
