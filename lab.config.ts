/**
 * The default lab: the emulated one, built and booted on this machine by `npx labrig lab up`
 * (the README's main command does it for you). Its hosts' SSH host keys are generated at
 * image build time and pinned here from the lab's state.
 *
 * To run against real hardware, copy labs/seed-lab.config.ts, edit it, and point
 * LABRIG_CONFIG at it.
 */
import { emulatedLab } from './targets/emulated/lab.js';

export const lab = () => emulatedLab();
