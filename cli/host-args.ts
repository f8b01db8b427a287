/**
 * What every host command shares: a host name resolved against the lab (an unknown one is a
 * usage error naming the known hosts, never a silent pass) and the CLI's exit codes —
 * 0 ok, 1 a product failure, 2 a usage or config error, 3 a lab failure.
 */
import { isLabError, LabError, ProductError } from '../drivers/errors.js';
import type { HostConfig, Lab } from '../targets/schema.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function pickHosts(lab: Lab, names: readonly string[]): HostConfig[] {
  const unknown = names.filter((n) => !lab.hosts.some((h) => h.name === n));
  if (unknown.length)
    throw new UsageError(
      `no host ${unknown.map((n) => `"${n}"`).join(', ')} in lab ${lab.name} (hosts: ${lab.hosts.map((h) => h.name).join(', ')})`,
    );
  return names.length ? names.map((n) => lab.hosts.find((h) => h.name === n)!) : lab.hosts;
}

export function pickHost(lab: Lab, name: string): HostConfig {
  return pickHosts(lab, [name])[0]!;
}

export function exitCodeFor(e: unknown): 1 | 2 | 3 {
  if (e instanceof UsageError || (e instanceof LabError && e.kind === 'config')) return 2;
  if (e instanceof ProductError) return 1;
  return isLabError(e) ? 3 : 1;
}

/** Runs a command's body; a failure is one line on stderr (`labrig <command>: …`) and its exit code. */
export async function commandAction(command: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    process.stderr.write(`labrig ${command}: ${(e as Error).message}\n`);
    return exitCodeFor(e);
  }
}
