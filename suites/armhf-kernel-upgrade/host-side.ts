/**
 * The host's half of the armhf kernel-upgrade suite, over the host's SSH shell: the boot-share
 * hook (saved, installed, restored), libvirtd restarts so libvirt notices the hook, the share
 * and disk, and the host's view of the share. Each action that makes a mess has its undo here.
 */

import type { CommandResult, HostCommands } from '../../drivers/command.js';
import { LabError, ProductError } from '../../drivers/errors.js';
import { type SshSession, shellQuote } from '../../drivers/ssh.js';
import { BOOT_LINKS, bootShareHook, HOOK_SIGNATURE, type HookLogEntry, parseHookLog } from './hook.js';
import type { ArmhfParams, ArmhfPaths } from './plan.js';
import { type HostView, hostViewCommand, parseHostView } from './share-view.js';

/** What the suite needs of a Host (targets/host.ts has all of it). */
export interface HostShell extends HostCommands {
  readonly ssh: Pick<SshSession, 'put' | 'openCommand'>;
}

const q = shellQuote;

export class ArmhfHostSide {
  private hookLogOffset = 0;
  private hookWasThere: boolean | undefined;
  private hookLogExisted = true;

  constructor(
    private readonly host: HostShell,
    readonly params: ArmhfParams,
    readonly paths: ArmhfPaths,
  ) {}

  private get saved(): string {
    return `${this.params.hookPath}.labrig-saved`;
  }

  private async sh(command: string, timeoutMs = 60_000): Promise<string> {
    return (await this.host.run(command, { timeoutMs, check: true })).stdout;
  }

  /** sha256 of the hook file, or 'absent': before and after prove the restore. */
  async hookFingerprint(): Promise<string> {
    const p = q(this.params.hookPath);
    return (await this.sh(`if [ -e ${p} ]; then sha256sum < ${p} | cut -c1-64; else echo absent; fi`)).trim();
  }

  /**
   * A run that died before its teardown leaves our hook in place (and the owner's saved beside
   * it): put things back first, or we would save our own hook as "what was there before".
   */
  async restoreLeftoverHook(): Promise<boolean> {
    const p = q(this.params.hookPath);
    const ours = (await this.host.run(`grep -qxF ${q(HOOK_SIGNATURE)} ${p} 2>/dev/null`)).code === 0;
    if (!ours) return false;
    await this.sh(`if [ -e ${q(this.saved)} ]; then mv -f ${q(this.saved)} ${p}; else rm -f ${p}; fi`);
    return true;
  }

  /** Installs the hook, chaining to the one that was there (kept aside, put back by restoreHook). */
  async installHook(): Promise<void> {
    const p = q(this.params.hookPath);
    this.hookWasThere = (await this.host.run(`[ -e ${p} ]`)).code === 0;
    this.hookLogExisted = (await this.host.run(`[ -e ${q(this.params.hookLog)} ]`)).code === 0;
    this.hookLogOffset = Number((await this.sh(`stat -c %s ${q(this.params.hookLog)} 2>/dev/null || echo 0`)).trim());
    const script = bootShareHook({
      shareRoot: this.params.shareRoot,
      logFile: this.params.hookLog,
      chainTo: this.hookWasThere ? this.saved : undefined,
    });
    if (this.hookWasThere) await this.sh(`cp -p ${p} ${q(this.saved)}`);
    await this.sh(`mkdir -p "$(dirname ${p})" ${q(this.params.hookLog.replace(/\/[^/]+$/, '') || '/')}`);
    // Written beside and renamed: libvirtd never sees half a script.
    await this.host.exec(
      `cat > ${q(`${this.params.hookPath}.labrig-new`)} && chmod 0755 ${q(`${this.params.hookPath}.labrig-new`)} && mv -f ${q(`${this.params.hookPath}.labrig-new`)} ${p}`,
      {
        input: script,
        check: true,
        timeoutMs: 30_000,
      },
    );
  }

  /** Puts back what was there before installHook (nothing, or the saved hook). */
  async restoreHook(): Promise<void> {
    const p = q(this.params.hookPath);
    if (this.hookWasThere === undefined) return;
    // If installHook failed before saving, the owner's hook was never moved: leave it.
    await this.sh(this.hookWasThere ? `if [ -e ${q(this.saved)} ]; then mv -f ${q(this.saved)} ${p}; fi` : `rm -f ${p}`);
    if (!this.hookLogExisted) await this.sh(`rm -f ${q(this.params.hookLog)}`);
    this.hookWasThere = undefined;
  }

  async restartLibvirtd(): Promise<number> {
    const t0 = performance.now();
    const r = await this.host.run(this.params.restartLibvirtd, { timeoutMs: 180_000 });
    if (r.code !== 0)
      throw new LabError('lab-setup', `restarting libvirtd failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-1000)}`, {
        host: this.host.name,
      });
    return Math.round(performance.now() - t0);
  }

  /** The hook's lines for our domain written since installHook. */
  async hookLog(): Promise<HookLogEntry[]> {
    const text = await this.sh(`tail -c +${this.hookLogOffset + 1} ${q(this.params.hookLog)} 2>/dev/null || true`);
    return parseHookLog(text, this.params.vm);
  }

  /** Runs the installed hook as libvirt does (arguments, domain XML on stdin). */
  async runHook(vm: string, operation: string, xml: string): Promise<CommandResult> {
    // The hook is under test: its hang is the product's.
    return this.host.exec(`${q(this.params.hookPath)} ${q(vm)} ${q(operation)} begin -`, {
      input: xml,
      timeoutMs: 30_000,
      hangIsProduct: true,
    });
  }

  /** The share, writable by the QEMU user (mapped mode creates files as that user), and the disk. */
  async provision(
    uploads: ReadonlyArray<{ local: string; remote: string }>,
    copies: ReadonlyArray<{ from: string; to: string }>,
  ): Promise<void> {
    const { share, installDir } = this.paths;
    const user = q(this.params.qemuUser);
    await this.sh(`mkdir -p ${q(share)} ${q(installDir)} && chown ${user}: ${q(share)} && chmod 0755 ${q(share)}`);
    const dirs = [...new Set(uploads.map((u) => u.remote.replace(/\/[^/]+$/, '')))];
    if (dirs.length) await this.sh(`mkdir -p ${dirs.map(q).join(' ')}`);
    for (const u of uploads) await this.host.ssh.put(u.local, u.remote);
    // QEMU (the QEMU user) reads the repository share: whatever modes SFTP gave, it must be readable.
    await this.sh(`if [ -d ${q(this.paths.repo)} ]; then chmod -R a+rX ${q(this.paths.repo)}; fi`);
    for (const c of copies) await this.sh(`cp --sparse=always ${q(c.from)} ${q(c.to)}`, 600_000);
  }

  /** Removes share, disk, installer files and the serial log; quiet when they are gone already. */
  async unprovision(): Promise<void> {
    const { share, disk, installDir, serialLog, repo } = this.paths;
    await this.sh(`rm -rf ${q(share)} ${q(installDir)} ${q(repo)} && rm -f ${q(disk)} ${q(serialLog)}`, 120_000);
  }

  /** Whatever of ours is still on the host: empty when cleanup was complete. */
  async leftovers(): Promise<string[]> {
    const { share, disk, installDir, repo } = this.paths;
    const out = await this.sh(
      `for p in ${[share, disk, installDir, repo, this.saved].map(q).join(' ')}; do [ -e "$p" ] && echo "$p"; done; true`,
    );
    return out.split('\n').filter(Boolean);
  }

  async view(name: string): Promise<HostView> {
    const path = `${this.paths.share}/${name}`;
    return parseHostView(path, await this.sh(hostViewCommand(path)));
  }

  /** The host-side links as the hook left them; a ProductError if one does not resolve into the share. */
  async checkHookLinks(expectTargets: { vmlinuz: string; initrd: string }): Promise<HostView[]> {
    const views: HostView[] = [];
    for (const [guestName, hostName] of BOOT_LINKS) {
      const v = await this.view(hostName);
      const want = guestName === 'vmlinuz' ? expectTargets.vmlinuz : expectTargets.initrd;
      if (v.type !== 'symlink' || v.linkTarget !== want || !v.resolvesTo?.endsWith(`/${want}`))
        throw new ProductError(
          'mismatch',
          `${v.path}: expected a symlink to ${want} that resolves in the share, found ${v.type} -> ${v.linkTarget ?? '-'} (resolves to ${v.resolvesTo || 'nothing'})`,
          {
            host: this.host.name,
          },
        );
      views.push(v);
    }
    return views;
  }
}
