/**
 * Undo actions registered where the mess is made, run in reverse on pass and fail; every one
 * runs even when an earlier one failed, and the failures are reported together.
 */
import { LabError } from '../../drivers/errors.js';
import type { Recorder } from '../../drivers/recorder.js';

export class Teardown {
  private readonly actions: Array<{ title: string; run: () => Promise<void> }> = [];

  push(title: string, run: () => Promise<void>): void {
    this.actions.push({ title, run });
  }

  /** Runs everything registered, newest first; throws one LabError naming each failure. */
  async run(recorder: Recorder, host: string): Promise<void> {
    const failures: string[] = [];
    while (this.actions.length) {
      const a = this.actions.pop()!;
      try {
        await recorder.step(`teardown: ${a.title}`, {}, a.run);
      } catch (e) {
        failures.push(`${a.title}: ${(e as Error).message}`);
      }
    }
    if (failures.length) throw new LabError('lab-setup', `cleanup incomplete:\n${failures.join('\n')}`, { host });
  }
}
