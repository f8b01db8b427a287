/** `labrig console <host>`: the console on this terminal, raw, until Ctrl-]. */
import { Host } from '../targets/host.js';
import type { Lab } from '../targets/schema.js';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const DETACH = 0x1d; // Ctrl-]

export async function attachConsole(lab: Lab, name: string): Promise<number> {
  const config = lab.hosts.find((h) => h.name === name);
  if (!config) {
    process.stderr.write(`labrig console: no host "${name}" in lab ${lab.name} (hosts: ${lab.hosts.map((h) => h.name).join(', ')})\n`);
    return 2;
  }
  const host = new Host(config, { logDir: join(tmpdir(), 'labrig-console') });
  const console = await host.console();
  process.stderr.write(`labrig: attached to ${name} (${console.where}); log ${console.logPath}; detach with Ctrl-]\n`);
  const stop = console.onBytes((chunk) => process.stdout.write(chunk));
  const stdin = process.stdin;
  if (stdin.isTTY) stdin.setRawMode(true);
  await new Promise<void>((resolve) => {
    stdin.on('data', (d: Buffer) => {
      const i = d.indexOf(DETACH);
      if (i >= 0) {
        if (i > 0) void console.write(d.subarray(0, i));
        resolve();
      } else void console.write(d);
    });
    stdin.once('end', () => resolve());
  });
  if (stdin.isTTY) stdin.setRawMode(false);
  stdin.pause();
  stop();
  await host.close();
  process.stderr.write('\nlabrig: detached\n');
  return 0;
}
