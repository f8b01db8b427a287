/**
 * The nested guest of the snapshot → kexec → restore procedure: a busybox initramfs whose
 * init runs the memory workload (mem-program.ts, marker.ts), and the QEMU command line that
 * puts all its RAM on pmem (seed 003: `-M q35`, memory-backend-file share=on, -numa
 * node,memdev=…, a qcow2 disk for savevm).
 * Pure: the argv is built from a typed spec, and the same argv starts the guest cold and
 * again for the restore.
 */
import { LabError } from '../../drivers/errors.js';

export type PmemMode = 'devdax' | 'fsdax';

export interface GuestSpec {
  name: string;
  qemu: string;
  /** A versioned machine type (pc-q35-7.2): the restoring QEMU, maybe newer, must build the same machine. */
  machine: string;
  accel: 'kvm' | 'tcg';
  memoryMiB: number;
  /** The RAM's backing: /dev/daxN.M (devdax) or a file on the -o dax mount (fsdax). */
  memPath: string;
  /** pmem=on: only where QEMU was built with libpmem (else it refuses to start). */
  pmemOn: boolean;
  /** align= of the backend: a devdax device maps only at its own alignment (2M). */
  align?: string;
  kernel: string;
  initrd: string;
  append: string;
  disk: string;
  qmpSocket: string;
  serialLog: string;
  pidFile: string;
}

/** QEMU's option parser splits on commas: a path holding one would silently mean something else. */
function optionSafe(what: string, value: string): string {
  if (value.includes(','))
    throw new LabError('config', `${what} "${value}" contains a comma, which QEMU's -object/-drive syntax cannot carry`);
  return value;
}

export function guestArgv(s: GuestSpec): string[] {
  const backend = [
    'memory-backend-file',
    'id=pmem0',
    `size=${s.memoryMiB}M`,
    `mem-path=${optionSafe('mem-path', s.memPath)}`,
    // x-ignore-shared skips RAM that is shared and file-backed: the point of the whole procedure.
    'share=on',
    ...(s.pmemOn ? ['pmem=on'] : []),
    ...(s.align ? [`align=${s.align}`] : []),
  ].join(',');
  return [
    s.qemu,
    '-name',
    s.name,
    '-machine',
    s.machine,
    '-accel',
    s.accel,
    '-m',
    `${s.memoryMiB}M`,
    '-smp',
    '1',
    '-nodefaults',
    '-display',
    'none',
    // A guest that dies after a bad restore must end QEMU, not boot again unnoticed.
    '-no-reboot',
    '-object',
    backend,
    '-numa',
    'node,memdev=pmem0',
    '-kernel',
    s.kernel,
    '-initrd',
    s.initrd,
    '-append',
    s.append,
    '-drive',
    `if=none,id=disk0,format=qcow2,file=${optionSafe('disk', s.disk)}`,
    '-device',
    'virtio-blk-pci,drive=disk0',
    '-chardev',
    `file,id=serial0,path=${optionSafe('serial log', s.serialLog)},append=on`,
    '-serial',
    'chardev:serial0',
    '-qmp',
    `unix:${optionSafe('QMP socket', s.qmpSocket)},server=on,wait=off`,
    '-pidfile',
    s.pidFile,
    '-daemonize',
    // Paused until the suite says `cont` (cold) or `loadvm` + `cont` (restore).
    '-S',
  ];
}

/** The guest's kernel command line: the configured one plus the marker's parameters. */
export function guestAppend(base: string, seed: string, patternMiB: number, verifyMsPerSecond: number): string {
  return `${base} panic=1 labrig.seed=${seed} labrig.pattern_mib=${patternMiB} labrig.verify_ms=${verifyMsPerSecond}`.trim();
}
