/**
 * The PV domU as an admin installs one to boot with `bootloader = "pygrub"`: an ext4 disk
 * image whose /boot holds the same kernel and initramfs as the kernel= guest, and a GRUB 2
 * menu (/boot/grub/grub.cfg) that pygrub reads in dom0 to pick them. The menu entry's own
 * argument `labrig.boot=pygrub` reaches the guest's /proc/cmdline only through pygrub, so
 * the suite can tell a kernel pygrub chose from one given by path.
 */
import { copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../drivers/errors.js';
import { runLocal } from '../drivers/local.js';

/** On the guest's command line only when pygrub took it from the disk's grub.cfg. */
export const PYGRUB_BOOT_ARGUMENT = 'labrig.boot=pygrub';

export interface GrubMenuEntry {
  title: string;
  /** Paths inside the disk's filesystem. */
  kernel: string;
  initrd: string;
  args: string;
}

/** A GRUB 2 menu of one entry, in the subset pygrub's GrubConf parser reads. */
export function grubMenu(entry: GrubMenuEntry, timeoutS = 1): string {
  for (const [k, v] of Object.entries(entry))
    if (/['\n{}]/.test(v)) throw new Error(`grub.cfg: ${k} ${JSON.stringify(v)} cannot go into a menu entry`);
  return [
    'set default="0"',
    `set timeout=${timeoutS}`,
    '',
    `menuentry '${entry.title}' {`,
    `\tlinux ${entry.kernel} ${entry.args}`.trimEnd(),
    `\tinitrd ${entry.initrd}`,
    '}',
    '',
  ].join('\n');
}

/**
 * Writes the disk image to `outFile`: /boot/vmlinuz-<v>, /boot/initrd.img-<v> and
 * /boot/grub/grub.cfg on ext4, sized to its content. Returns the size in MiB.
 */
export async function buildDomuBootDisk(
  workDir: string,
  outFile: string,
  o: { kernel: string; initrd: string; kernelVersion: string; args: string },
): Promise<number> {
  const tree = join(workDir, 'domu-disk');
  await mkdir(join(tree, 'boot/grub'), { recursive: true });
  const kernel = `/boot/vmlinuz-${o.kernelVersion}`;
  const initrd = `/boot/initrd.img-${o.kernelVersion}`;
  await copyFile(o.kernel, join(tree, kernel));
  await copyFile(o.initrd, join(tree, initrd));
  const menu = grubMenu({
    title: `Debian GNU/Linux, with Linux ${o.kernelVersion}`,
    kernel,
    initrd,
    args: `${o.args} ${PYGRUB_BOOT_ARGUMENT}`,
  });
  await writeFile(join(tree, 'boot/grub/grub.cfg'), menu);
  const bytes = (await stat(o.kernel)).size + (await stat(o.initrd)).size;
  const mib = Math.ceil((bytes * 1.25) / 2 ** 20) + 8;
  const r = await runLocal(
    ['mke2fs', '-q', '-F', '-t', 'ext4', '-L', 'labrig-domu', '-E', 'root_owner=0:0', '-d', tree, outFile, `${mib}M`],
    { timeoutMs: 120_000, check: false },
  );
  if (r.code !== 0) throw new LabError('lab-setup', `mke2fs could not make the domU boot disk: ${(r.stderr || r.stdout).trim()}`);
  return mib;
}
