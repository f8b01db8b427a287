/**
 * Whose failure is a host that did not come back: the console since the transition decides.
 * The texts follow what emu-mini's serial console printed when test/faults/return.test.ts provoked them.
 */
import { expect, test } from '@playwright/test';
import { judgeNoReturn } from '../targets/return-evidence.js';

const oldKernelGoing = 'reboot -f\r\n[  812.441201] reboot: Restarting system\r\n';
const newKernelBanner =
  '[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1 (2025-11-09)\r\n' +
  '[    0.000000] Command line: console=ttyS0,115200\r\n[    0.000000] ACPI: PM-Timer IO Port: 0x608\r\n[';

test('the new kernel printed its banner, then nothing: did-not-boot, the banner and the silence named', () => {
  const v = judgeNoReturn(oldKernelGoing + newKernelBanner, 26_400);
  expect(v.kind).toBe('did-not-boot');
  expect(v.evidence).toBe(
    "console shows 'Linux version 6.1.0-56-amd64 …', the last line '[', then nothing for 26 s: the kernel started booting and never answered SSH",
  );
  expect(v.tail).toContain('[    0.000000] ACPI: PM-Timer IO Port: 0x608');
  expect(v.tail).not.toContain('\r');
});

test('no banner but later boot output (a console opened late, or a low loglevel): did-not-boot', () => {
  const v = judgeNoReturn('[    1.912311] Run /init as init process\r\nLoading, please wait...\r\n', 60_000);
  expect(v).toMatchObject({ kind: 'did-not-boot' });
  expect(v.evidence).toMatch(
    /^console shows 'Run \/init as init process …', the last line 'Loading, please wait\.\.\.', then nothing for 60 s/,
  );
  expect(judgeNoReturn('[    1.912311] Run /init as init process\r\n(initramfs) ', 200).evidence).toMatch(
    /'\(initramfs\)', still printing at the deadline: /,
  );
});

test('only the old kernel going down, no new kernel: did-not-return, with what the console did show', () => {
  const v = judgeNoReturn(oldKernelGoing, 300_000);
  expect(v.kind).toBe('did-not-return');
  expect(v.evidence).toBe(
    "console printed 50 characters since the transition but no kernel banner (last line '[  812.441201] reboot: Restarting system'), then nothing for 300 s",
  );
});

test('nothing at all since the transition: did-not-return, silence named; no console: said so', () => {
  expect(judgeNoReturn('', 31_000)).toEqual({
    kind: 'did-not-return',
    evidence: 'console silent since the transition (nothing for 31 s)',
    tail: '',
  });
  expect(judgeNoReturn('\x1b[0m\r\n', 31_000).kind).toBe('did-not-return');
  expect(judgeNoReturn(undefined, 31_000)).toMatchObject({
    kind: 'did-not-return',
    evidence: expect.stringMatching(/^no console was open/),
  });
});
