/**
 * `labrig lab up|down|status [host…]`: one line per host on stdout, progress on stderr.
 * Also runnable on its own (`node --import tsx targets/emulated/cli.ts up emu-mini`): that is
 * the start command QMP power uses to boot a VM again after `quit`.
 */
import { pathToFileURL } from 'node:url';
import { isLabError, type LabError } from '../../drivers/errors.js';
import { consoleRecorder } from '../../drivers/recorder.js';
import { type HostStatus, labDown, labStatus, labUp } from './lab.js';

function print(rows: readonly HostStatus[]): void {
  const width = Math.max(...rows.map((r) => r.name.length), 4);
  for (const r of rows) process.stdout.write(`${r.name.padEnd(width)}  ${r.state.padEnd(6)}  ${r.detail}\n`);
}

export async function labCommand(action: 'up' | 'down' | 'status', hosts?: string[], signal?: AbortSignal): Promise<number> {
  try {
    if (action === 'up') {
      await labUp({ hosts, recorder: consoleRecorder('lab: '), signal });
      const rows = (await labStatus()).filter((r) => !hosts?.length || hosts.includes(r.name));
      print(rows);
      return rows.every((r) => r.state === 'up') ? 0 : 3;
    }
    if (action === 'down') {
      const rows = await labDown({ hosts, recorder: consoleRecorder('lab: ') });
      print(rows.length ? rows : [{ name: 'lab', state: 'down', detail: 'nothing was running' }]);
      return 0;
    }
    const rows = (await labStatus()).filter((r) => !hosts?.length || hosts.includes(r.name));
    print(rows);
    return rows.every((r) => r.state === 'up') ? 0 : 3;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return signal?.aborted ? 3 : isLabError(e) && (e as LabError).kind === 'config' ? 2 : 3;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [action, ...hosts] = process.argv.slice(2);
  if (action !== 'up' && action !== 'down' && action !== 'status') {
    process.stderr.write('usage: cli.ts up|down|status [host…]\n');
    process.exit(2);
  }
  process.exitCode = await labCommand(action, hosts);
}
