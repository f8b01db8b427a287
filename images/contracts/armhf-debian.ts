/**
 * The real Debian armhf guest's contract with the kernel-upgrade suite (seed 000), for the guest
 * images/armhf-debian.ts builds with mmdebstrap: systemd, dpkg/apt and initramfs-tools; /boot is
 * the 9p share (tag virtio-boot) through an `x-systemd.automount` line of /etc/fstab; a second,
 * read-only 9p share (tag labrig-apt) is the apt repository of the kernels it can install, so
 * a kernel is installed by `apt-get install linux-image-<version>` and Debian's own postinst,
 * initramfs-tools and linux-update-symlinks (link_in_boot = yes) fill /boot.
 */
/** Root on the virtio disk; the console is the PL011 (systemd starts a getty on it). */
export const DEBIAN_GUEST_CMDLINE = 'console=ttyAMA0,115200 root=/dev/vda rw';
/** The 9p tag of the host's apt repository share, and where the guest's fstab mounts it. */
export const APT_SHARE_TAG = 'labrig-apt';
export const APT_SHARE_MOUNT = '/srv/labrig-apt';
/** The guest's only apt source: a flat repository (Packages, Release) in the share, trusted without a signature. */
export const APT_SOURCE_LINE = `deb [trusted=yes] file:${APT_SHARE_MOUNT} ./`;
/** root logs in on the console without a password. */
export const DEBIAN_GUEST_LOGIN = { user: 'root' } as const;

/** The command that installs (or upgrades to) a kernel: apt, from the share's repository. */
export function aptKernelInstall(version: string): string {
  const apt = 'DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Use-Pty=0';
  return `${apt} update && ${apt} install -y linux-image-${version}`;
}
