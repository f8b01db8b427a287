/**
 * The text files of emu-x86-pmem's root disk and of its per-kernel initramfs. Pure, so the
 * boot chain can be read in one place: QEMU -kernel/-initrd (or `kexec -l … --initrd`) →
 * the initramfs loads the disk drivers of *that* kernel and switch_roots onto /dev/vda →
 * busybox init → rcS loads that kernel's pmem and NIC modules → sshd and a getty.
 */

/** The initramfs's /init: the drivers that reach the root disk, then switch_root. */
export function initramfsInit(): string {
  return `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do insmod "$m" || echo "initramfs: insmod $m failed"; done < /etc/modules.order
root=/dev/vda
for arg in $(cat /proc/cmdline); do case "$arg" in root=*) root="\${arg#root=}";; esac; done
i=0; while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /newroot
if ! mount -t ext4 -o rw "$root" /newroot; then
  echo "initramfs: cannot mount $root; dropping to a shell"
  exec sh
fi
umount /sys /proc
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
`;
}

/** inittab: sshd and a getty on the serial console, both respawned. */
export function inittab(): string {
  return `::sysinit:/etc/init.d/rcS
ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100
::respawn:/usr/sbin/sshd -D -e -f /etc/ssh/sshd_config 2>>/var/log/sshd.log
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
`;
}

/**
 * rcS: the modules of the running kernel (its own list: after a kexec it is another
 * kernel's), then the network. QEMU user networking: guest 10.0.2.15, gateway 10.0.2.2.
 */
export function rcS(hostName: string): string {
  return `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
grep -q ' /dev devtmpfs ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/sshd /var/lock
chmod 0755 /run/sshd
hostname -F /etc/hostname
k=$(uname -r)
while read -r m; do insmod "$m" || echo "rcS: insmod $m failed"; done < /lib/modules/$k/labrig-modules.order
ip link set lo up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
ip link set eth0 up
i=0; while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "rcS: ${hostName} up, kernel $k, boot_id $(cat /proc/sys/kernel/random/boot_id), pmem: $(ls /dev/pmem* /dev/dax* 2>/dev/null | tr '\\n' ' ')"
`;
}

/**
 * OpenSSH rather than dropbear: dropbear 2022.83 has no direct-streamlocal, and the suites
 * reach the nested guest's QMP socket through SSH unix-socket forwarding, as on a real host.
 */
export function sshdConfig(hostKeyPath: string): string {
  return `Port 22
HostKey ${hostKeyPath}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile .ssh/authorized_keys
AllowStreamLocalForwarding yes
PidFile /run/sshd.pid
Subsystem sftp internal-sftp
`;
}
