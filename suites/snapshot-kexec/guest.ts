/**
 * The nested guest of the snapshot → kexec → restore procedure: a busybox initramfs whose
 * init runs the marker (marker.ts), and the QEMU command line that puts all its RAM on pmem
 * (seed 003: memory-backend-file share=on, -numa node,memdev=…, a qcow2 disk for savevm).
 * Pure: the argv is built from a typed spec, and the same argv starts the guest cold and
 * again for the restore.
 */
import { LabError } from '../../drivers/errors.js';
import { newcArchive, type CpioEntry } from '../../images/cpio.js';

/** PID 1 of the guest. Forks are slow under nested TCG: builtins wherever busybox has one. */
export function guestInit(): string {
  return `#!/bin/sh
mount -t proc proc /proc
read -r cmdline < /proc/cmdline
seed=; kib=
for a in $cmdline; do
  case "$a" in
    labrig.seed=*) seed="\${a#labrig.seed=}";;
    labrig.pattern_kib=*) kib="\${a#labrig.pattern_kib=}";;
  esac
done
yes "labrig-pattern $seed" | head -c $((kib * 1024)) > /pattern
read -r b < /proc/sys/kernel/random/boot_id
echo "labrig-guest ready: seed $seed, pattern $kib KiB, boot_id $b"
n=0
while :; do
  n=$((n + 1))
  set -- $(sha256sum /pattern)
  read -r b < /proc/sys/kernel/random/boot_id
  echo "labrig-tick $n $b $1"
  sleep 1
done
`;
}

const APPLETS = ['sh', 'mount', 'yes', 'head', 'sha256sum', 'sleep', 'echo'];

/** True for an ELF executable with no program interpreter (PT_INTERP): it runs with no libraries. */
export function isStaticElf(file: Buffer): boolean {
  if (file.length < 64 || file.readUInt32BE(0) !== 0x7f454c46 || file[4] !== 2) return false;
  const phoff = Number(file.readBigUInt64LE(0x20));
  const phentsize = file.readUInt16LE(0x36);
  const phnum = file.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > file.length) return false;
    if (file.readUInt32LE(at) === 3) return false;
  }
  return true;
}

/** The initramfs: a static busybox (from the runner), its applet links and /init. */
export function guestInitramfs(staticBusybox: Buffer): Buffer {
  const entries: CpioEntry[] = [
    ...['bin', 'proc', 'dev'].map((path): CpioEntry => ({ type: 'dir', path, mode: 0o755 })),
    { type: 'file', path: 'bin/busybox', mode: 0o755, data: staticBusybox },
    ...APPLETS.map((a): CpioEntry => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    { type: 'file', path: 'init', mode: 0o755, data: Buffer.from(guestInit()) },
    // The kernel opens /dev/console for init before anything could mount devtmpfs.
    { type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
  ];
  return newcArchive(entries);
}

export type PmemMode = 'devdax' | 'fsdax';

export interface GuestSpec {
  name: string;
  qemu: string;
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
  if (value.includes(',')) throw new LabError('config', `${what} "${value}" contains a comma, which QEMU's -object/-drive syntax cannot carry`);
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
    '-name', s.name,
    '-machine', 'pc',
    '-accel', s.accel,
    '-m', `${s.memoryMiB}M`,
    '-smp', '1',
    '-nodefaults',
    '-display', 'none',
    // A guest that dies after a bad restore must end QEMU, not boot again unnoticed.
    '-no-reboot',
    '-object', backend,
    '-numa', 'node,memdev=pmem0',
    '-kernel', s.kernel,
    '-initrd', s.initrd,
    '-append', s.append,
    '-drive', `if=none,id=disk0,format=qcow2,file=${optionSafe('disk', s.disk)}`,
    '-device', 'virtio-blk-pci,drive=disk0',
    '-chardev', `file,id=serial0,path=${optionSafe('serial log', s.serialLog)},append=on`,
    '-serial', 'chardev:serial0',
    '-qmp', `unix:${optionSafe('QMP socket', s.qmpSocket)},server=on,wait=off`,
    '-pidfile', s.pidFile,
    '-daemonize',
    // Paused until the suite says `cont` (cold) or `loadvm` + `cont` (restore).
    '-S',
  ];
}

/** The guest's kernel command line: the configured one plus the marker's parameters. */
export function guestAppend(base: string, seed: string, patternKiB: number): string {
  return `${base} panic=1 labrig.seed=${seed} labrig.pattern_kib=${patternKiB}`.trim();
}
