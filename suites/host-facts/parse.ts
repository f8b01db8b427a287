/** Pure readers of host-fact outputs, per seeds/001: each takes the text a command printed. */
import { XMLParser } from 'fast-xml-parser';

/** `dmidecode -t 4`: the nominal frequency is Current Speed; Max Speed is the board's limit. */
export function currentSpeedMhz(dmidecode: string): number | undefined {
  const speeds = [...dmidecode.matchAll(/^\s*Current Speed:\s*(\d+)\s*MHz/gm)].map((m) => Number(m[1]));
  return speeds.length ? Math.max(...speeds) : undefined;
}

export type KvmEvidence = { kvm: boolean; how: string };

/** x86: a vendor module (kvm_intel / kvm_amd / …) is loaded, as lsmod or /sys/module shows. */
export function kvmOnX86(lsmodOrSysModule: string, devKvm: boolean): KvmEvidence {
  const vendor = /^(kvm_\w+)\b/m.exec(lsmodOrSysModule)?.[1];
  if (!vendor) return { kvm: false, how: 'no kvm_* vendor module loaded' };
  return { kvm: devKvm, how: `${vendor} loaded${devKvm ? ', /dev/kvm present' : ', but no /dev/kvm'}` };
}

/** arm64: KVM is built in, not a module; the kernel log says whether it came up. */
export function kvmOnArm64(dmesg: string): KvmEvidence {
  const line = /kvm \[\d+\]: (VHE mode initialized successfully|Hyp mode initialized successfully)/.exec(dmesg);
  if (line) return { kvm: true, how: `dmesg: ${line[0]}` };
  const failed = /kvm \[\d+\]: .*(error|not available|disabled).*/i.exec(dmesg);
  return { kvm: false, how: failed ? `dmesg: ${failed[0]}` : 'no "VHE/Hyp mode initialized" in dmesg' };
}

export interface CpuModel {
  name: string;
  usable: 'yes' | 'no' | 'unknown';
}

export interface DomCapabilities {
  arch: string;
  machine: string;
  domainTypes: string;
  cpuModes: string[];
  models: CpuModel[];
  loaders: string[];
}

const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** `virsh domcapabilities`: the CPU modes offered and each custom model with its usability. */
export function parseDomCapabilities(xml: string): DomCapabilities {
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', textNodeName: '#text' }).parse(xml) as {
    domainCapabilities?: Record<string, unknown>;
  };
  const caps = doc.domainCapabilities as
    | {
        arch?: string;
        machine?: string;
        domain?: string;
        cpu?: {
          mode?:
            | Array<{ '@name': string; '@supported': string; model?: unknown }>
            | { '@name': string; '@supported': string; model?: unknown };
        };
        os?: { loader?: { value?: string | string[] } };
      }
    | undefined;
  if (!caps) throw new Error('not a <domainCapabilities> document');
  const modes = asArray(caps.cpu?.mode);
  const custom = modes.find((m) => m['@name'] === 'custom');
  const models = asArray(
    custom?.model as Array<{ '#text': string; '@usable'?: string }> | { '#text': string; '@usable'?: string } | undefined,
  ).map((m) => ({
    name: String(m['#text']),
    usable: (m['@usable'] ?? 'unknown') as CpuModel['usable'],
  }));
  return {
    arch: String(caps.arch ?? ''),
    machine: String(caps.machine ?? ''),
    domainTypes: String(caps.domain ?? ''),
    cpuModes: modes.filter((m) => m['@supported'] === 'yes').map((m) => m['@name']),
    models,
    loaders: asArray(caps.os?.loader?.value).map(String),
  };
}
