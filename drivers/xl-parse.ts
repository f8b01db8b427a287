/**
 * What xl prints, parsed: `xl list`, `xl list -l` and `xl create -n` (JSON), `xl info`, and
 * the one line of a failed command's output that says why. Pure, tested on outputs recorded
 * from Debian's Xen 4.17 (test/recorded/xen/).
 */
import { z } from 'zod';

export interface XlDomainState {
  running: boolean;
  blocked: boolean;
  paused: boolean;
  shutdown: boolean;
  crashed: boolean;
  dying: boolean;
}

export interface XlDomain {
  name: string;
  id: number;
  memMiB: number;
  vcpus: number;
  /** The six-letter column as printed: r b p s c d. */
  stateText: string;
  state: XlDomainState;
  cpuTimeS: number;
}

const ROW = /^(.*\S)\s+(\d+)\s+(\d+)\s+(\d+)\s+([rbpscd-]{6})\s+(\d+(?:\.\d+)?)\s*$/;

/** `xl list` (the name may hold spaces: the five numeric columns are taken from the right). */
export function parseXlList(text: string): XlDomain[] {
  const lines = text
    .replace(/\r/g, '')
    .split('\n')
    .filter((l) => l.trim());
  if (!lines.length || !/^Name\s+ID\s+Mem\s+VCPUs\s+State\s+Time\(s\)/.test(lines[0]!))
    throw new Error(`not xl list output (header missing): ${JSON.stringify(lines[0] ?? '')}`);
  return lines.slice(1).map((line) => {
    const m = ROW.exec(line);
    if (!m) throw new Error(`unparsed xl list row: ${JSON.stringify(line)}`);
    const s = m[5]!;
    return {
      name: m[1]!,
      id: Number(m[2]),
      memMiB: Number(m[3]),
      vcpus: Number(m[4]),
      stateText: s,
      state: {
        running: s[0] === 'r',
        blocked: s[1] === 'b',
        paused: s[2] === 'p',
        shutdown: s[3] === 's',
        crashed: s[4] === 'c',
        dying: s[5] === 'd',
      },
      cpuTimeS: Number(m[6]),
    };
  });
}

const longEntry = z.object({
  domid: z.number().int(),
  config: z
    .object({
      c_info: z.object({ type: z.string(), name: z.string(), uuid: z.string().optional() }).loose(),
      b_info: z
        .object({
          max_memkb: z.number().optional(),
          target_memkb: z.number().optional(),
          max_vcpus: z.number().optional(),
          kernel: z.string().optional(),
          ramdisk: z.string().optional(),
          cmdline: z.string().optional(),
          bootloader: z.string().optional(),
          // before 4.10 (and still accepted): the bootloader was a PV-only field
          type: z
            .object({ pv: z.object({ bootloader: z.string().optional() }).loose().optional() })
            .loose()
            .optional(),
        })
        .loose(),
      nics: z.array(z.object({ mac: z.string().optional(), bridge: z.string().optional() }).loose()).optional(),
      disks: z.array(z.object({ pdev_path: z.string().optional(), vdev: z.string().optional() }).loose()).optional(),
    })
    .loose(),
});

export interface XlDomainConfig {
  domid: number | undefined;
  name: string;
  type: string;
  uuid: string | undefined;
  maxMemKiB: number | undefined;
  targetMemKiB: number | undefined;
  maxVcpus: number | undefined;
  kernel: string | undefined;
  ramdisk: string | undefined;
  cmdline: string | undefined;
  /** `pygrub` when a bootloader in dom0 picks the kernel. */
  bootloader: string | undefined;
  nics: { mac?: string; bridge?: string }[];
  disks: { target?: string; vdev?: string }[];
  /** The whole JSON object, for attachments. */
  raw: unknown;
}

function toConfig(domid: number | undefined, c: z.infer<typeof longEntry>['config'], raw: unknown): XlDomainConfig {
  return {
    domid,
    name: c.c_info.name,
    type: c.c_info.type,
    uuid: c.c_info.uuid,
    maxMemKiB: c.b_info.max_memkb,
    targetMemKiB: c.b_info.target_memkb,
    maxVcpus: c.b_info.max_vcpus,
    kernel: c.b_info.kernel,
    ramdisk: c.b_info.ramdisk,
    cmdline: c.b_info.cmdline,
    bootloader: c.b_info.bootloader ?? c.b_info.type?.pv?.bootloader,
    nics: (c.nics ?? []).map((n) => ({ mac: n.mac, bridge: n.bridge })),
    disks: (c.disks ?? []).map((d) => ({ target: d.pdev_path, vdev: d.vdev })),
    raw,
  };
}

/** `xl list -l`: a JSON array of {domid, config}. */
export function parseXlListLong(text: string): XlDomainConfig[] {
  const json: unknown = JSON.parse(text);
  return z
    .array(z.unknown())
    .parse(json)
    .map((e) => {
      const entry = longEntry.parse(e);
      return toConfig(entry.domid, entry.config, e);
    });
}

/** `xl create -n <cfg>`: the domain config libxl would build, as JSON (no domain is made). */
export function parseXlDryRun(text: string): XlDomainConfig {
  const start = text.indexOf('{');
  if (start < 0) throw new Error(`xl create -n printed no JSON: ${text.slice(0, 200)}`);
  const json: unknown = JSON.parse(text.slice(start, text.lastIndexOf('}') + 1));
  return toConfig(undefined, longEntry.shape.config.parse(json), json);
}

export interface XlInfo {
  host: string;
  release: string;
  nrCpus: number;
  totalMemoryMiB: number;
  freeMemoryMiB: number;
  /** `pv hvm hap shadow …` — `hvm` present means HVM guests are possible. */
  virtCaps: string[];
  xenVersion: string;
  xenCaps: string[];
  xenScheduler: string;
  xenCommandline: string;
  fields: Record<string, string>;
}

/** `xl info`: `key : value` lines. */
export function parseXlInfo(text: string): XlInfo {
  const fields: Record<string, string> = {};
  for (const line of text.replace(/\r/g, '').split('\n')) {
    const m = /^([a-z_0-9]+)\s*:\s?(.*)$/.exec(line);
    if (m) fields[m[1]!] = m[2]!.trim();
  }
  const need = (k: string) => {
    const v = fields[k];
    if (v === undefined) throw new Error(`xl info has no ${k}`);
    return v;
  };
  const num = (k: string) => {
    const n = Number(need(k));
    if (!Number.isFinite(n)) throw new Error(`xl info ${k} is not a number: ${fields[k]}`);
    return n;
  };
  return {
    host: need('host'),
    release: need('release'),
    nrCpus: num('nr_cpus'),
    totalMemoryMiB: num('total_memory'),
    freeMemoryMiB: num('free_memory'),
    virtCaps: (fields.virt_caps ?? '').split(/\s+/).filter(Boolean),
    xenVersion: fields.xen_version ?? `${need('xen_major')}.${need('xen_minor')}${need('xen_extra')}`,
    xenCaps: (fields.xen_caps ?? '').split(/\s+/).filter(Boolean),
    xenScheduler: fields.xen_scheduler ?? '',
    xenCommandline: fields.xen_commandline ?? '',
    fields,
  };
}

/**
 * Why xl failed, in one line: the first error libxl or libxc reported. Later errors are
 * usually the clean-up failing after it ("Destruction of domain failed").
 */
export function xlFailureReason(output: string): string {
  const lines = output.replace(/\r/g, '').split('\n');
  const first = lines.find((l) => /^(libxl|xc|xencall|xl): error|^\S+: error:|^ERROR/i.test(l.trim()));
  return (first ?? lines.filter((l) => l.trim()).at(-1) ?? '').trim().slice(0, 400);
}
