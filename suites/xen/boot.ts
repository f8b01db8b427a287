/**
 * What Xen says it booted with, read from its serial console or `xl info`, against the
 * host's configured settings (DOMAIN.md §3: dom0_mem, dom0_max_vcpus, console=com1,
 * com1=115200,8n1, loglvl/guest_loglvl). Pure: tested on recorded boots.
 */

import type { HostConfig } from '../../targets/schema.js';

export type XenParams = NonNullable<HostConfig['suites']['xen']>;
export type XenBootSettings = Pick<XenParams, 'dom0Mem' | 'dom0MaxVcpus' | 'console' | 'com1' | 'loglvl' | 'guestLoglvl'>;

/** Xen's command line as options; a bare word (`noreboot`) maps to ''. The last one wins, as in Xen. */
export function parseXenCommandline(line: string): Map<string, string> {
  const opts = new Map<string, string>();
  for (const word of line.trim().split(/\s+/).filter(Boolean)) {
    const eq = word.indexOf('=');
    opts.set(eq < 0 ? word : word.slice(0, eq), eq < 0 ? '' : word.slice(eq + 1));
  }
  return opts;
}

const UNIT_SHIFT: Record<string, number> = { k: 10, m: 20, g: 30, t: 40 };

/** A Xen size (`512M`; no suffix means KiB, as Xen's parse_size_and_unit has it) in MiB. */
export function xenSizeMiB(size: string): number {
  const m = /^(\d+)([kKmMgGtT]?)$/.exec(size);
  if (!m) throw new Error(`not a Xen size: ${size}`);
  const shift = UNIT_SHIFT[(m[2] || 'k').toLowerCase()]!;
  return (Number(m[1]) * 2 ** shift) / 2 ** 20;
}

export interface Dom0Mem {
  /** The initial allocation (the bare amount). */
  amountMiB?: number;
  minMiB?: number;
  maxMiB?: number;
}

/** `dom0_mem=[min:<amt>,][max:<amt>,][<amt>]`, parts in any order. */
export function parseDom0Mem(value: string): Dom0Mem {
  const out: Dom0Mem = {};
  for (const part of value.split(',')) {
    const m = /^(?:(min|max):)?(.+)$/.exec(part.trim());
    if (!m) throw new Error(`bad dom0_mem part: ${part}`);
    const mib = xenSizeMiB(m[2]!);
    if (m[1] === 'min') out.minMiB = mib;
    else if (m[1] === 'max') out.maxMiB = mib;
    else out.amountMiB = mib;
  }
  return out;
}

/** What `xl list` should show for Domain-0: the initial amount, else the cap. */
export function expectedDom0MiB(settings: Pick<XenBootSettings, 'dom0Mem'>): number | undefined {
  const mem = parseDom0Mem(settings.dom0Mem);
  return mem.amountMiB ?? mem.maxMiB;
}

/** The options the settings put on Xen's command line, in Xen's spelling. */
export function requiredOptions(s: XenBootSettings): [string, string][] {
  const opts: [string, string | number | undefined][] = [
    ['dom0_mem', s.dom0Mem],
    ['dom0_max_vcpus', s.dom0MaxVcpus],
    ['console', s.console],
    ['com1', s.com1],
    ['loglvl', s.loglvl],
    ['guest_loglvl', s.guestLoglvl],
  ];
  return opts.filter((o): o is [string, string | number] => o[1] !== undefined).map(([k, v]) => [k, String(v)]);
}

/** Every configured option that the command line lacks or sets otherwise, as readable lines. */
export function commandlineMismatches(commandLine: string, s: XenBootSettings): string[] {
  const got = parseXenCommandline(commandLine);
  return requiredOptions(s)
    .filter(([k, v]) => got.get(k) !== v)
    .map(([k, v]) => `${k}: configured ${v}, Xen has ${got.has(k) ? got.get(k) || '(bare)' : '(absent)'}`);
}

export interface XenSerialBoot {
  /** "4.17.7" */
  version: string;
  /** The whole banner line after "(XEN) ". */
  banner: string;
  commandLine: string;
  /** "Dom0 has maximum N VCPUs", when Xen printed it. */
  dom0MaxVcpus?: number;
  /** Whether dom0 got the serial input ("*** Serial input to DOM0"). */
  serialInputToDom0: boolean;
}

/**
 * The first Xen boot in a console text. Console text may carry CRs and escapes, and other
 * output can interleave, so each fact is found on its own line.
 */
export function parseXenSerialBoot(text: string): XenSerialBoot | undefined {
  const clean = text.replace(/\r/g, '');
  const banner = /^\(XEN\) (Xen version (\d+\.\d+[^\s(]*) .*)$/m.exec(clean);
  if (!banner) return undefined;
  const after = clean.slice(banner.index);
  const cmd = /^\(XEN\) Command line: ?(.*)$/m.exec(after);
  const vcpus = /^\(XEN\) Dom0 has maximum (\d+) VCPUs?$/m.exec(after);
  return {
    version: banner[2]!,
    banner: banner[1]!.trim(),
    commandLine: (cmd?.[1] ?? '').trim(),
    ...(vcpus ? { dom0MaxVcpus: Number(vcpus[1]) } : {}),
    serialInputToDom0: /^\(XEN\) \*\*\* Serial input to DOM0/m.test(after),
  };
}

/**
 * Whether HVM guests can run, from `xl info` virt_caps: `hvm` (vmx/svm) is not enough, Xen
 * also needs a way to page for them, `hap` (EPT/NPT) or `shadow` (absent from builds without
 * CONFIG_SHADOW_PAGING, such as Debian's); without one libxl refuses with "neither hap nor
 * shadow paging available". Under Xen, dom0's /proc/cpuinfo hides vmx/svm: virt_caps is what counts.
 */
export function hvmSupport(virtCaps: readonly string[]): { usable: boolean; why: string } {
  const caps = `xl info virt_caps "${virtCaps.join(' ')}"`;
  if (!virtCaps.includes('hvm')) return { usable: false, why: `${caps}: no hvm (no usable vmx/svm)` };
  if (!virtCaps.includes('hap') && !virtCaps.includes('shadow'))
    return {
      usable: false,
      why: `${caps}: hvm without hap or shadow paging, so libxl refuses HVM guests (no EPT/NPT, and this Xen is built without shadow paging)`,
    };
  return { usable: true, why: `${caps}: hvm with ${virtCaps.includes('hap') ? 'hap' : 'shadow paging'}` };
}

export interface IommuState {
  /** Xen uses an IOMMU: `xl info` virt_caps has `hvm_directio`/`pv_directio` (passthrough possible). */
  enabled: boolean;
  /** Xen's own verdict line, `I/O virtualisation enabled|disabled`, when the text has it. */
  verdict?: 'enabled' | 'disabled';
  /** Xen's IOMMU lines (VT-d, AMD-Vi, IOMMU, I/O virtualisation), without the `(XEN) ` prefix. */
  lines: string[];
  summary: string;
}

/**
 * The IOMMU as Xen sees it, from `xl info` virt_caps and Xen's boot messages (`xl dmesg` or
 * the serial console). Under TCG (QEMU's `pc` without intel-iommu) Xen finds none and says
 * `I/O virtualisation disabled`.
 */
export function iommuState(virtCaps: readonly string[], xenMessages: string): IommuState {
  const lines = xenMessages
    .replace(/\r/g, '')
    .split('\n')
    // Xen's own lines only: on the serial console dom0's kernel prints "iommu:" lines of its own
    .filter((l) => l.includes('(XEN) '))
    .map((l) => l.replace(/^.*?\(XEN\) /, '').trim())
    .filter((l) => /I\/O virtuali[sz]ation|IOMMU|VT-d|AMD-Vi|DMAR|IVRS/i.test(l));
  const v = lines
    .map((l) => /I\/O virtuali[sz]ation (enabled|disabled)/.exec(l)?.[1])
    .find((x): x is 'enabled' | 'disabled' => x !== undefined);
  const enabled = virtCaps.some((c) => /directio/.test(c));
  const caps = `virt_caps "${virtCaps.join(' ')}"`;
  const summary = `${enabled ? 'IOMMU in use' : 'no IOMMU'}: ${caps}${v ? `, Xen: I/O virtualisation ${v}` : ''}`;
  return { enabled, ...(v ? { verdict: v } : {}), lines, summary };
}
