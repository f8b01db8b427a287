/**
 * A second runner in its own process, for tests where a runner dies (SIGKILL): takes the lease
 * given as JSON in argv[2] over the SshConfig in argv[3], prints "held <holder pid>", then waits.
 * Run: node --import tsx test/helpers/lease-runner.ts '<LeaseOptions without recorder>' '<SshConfig>'
 */
import { silentRecorder } from '../../drivers/recorder.js';
import { SshSession } from '../../drivers/ssh.js';
import { sshOptionsSchema } from '../../drivers/ssh-options.js';
import { acquireLease, type LeaseOptions } from '../../targets/lease.js';

const o = JSON.parse(process.argv[2]!) as Omit<LeaseOptions, 'recorder'>;
const lease = await acquireLease(new SshSession('runner-process', sshOptionsSchema.parse(JSON.parse(process.argv[3]!))), {
  ...o,
  recorder: silentRecorder,
});
process.stdout.write(`held ${lease.holder.pid}\n`);
setInterval(() => undefined, 60_000);
