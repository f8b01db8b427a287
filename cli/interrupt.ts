/**
 * Ctrl-C and SIGTERM for long commands: the first asks the work to end and tear down (tests end,
 * the lab goes down); a second one forces the exit at once.
 */
export function onInterrupt(graceful: (signal: NodeJS.Signals) => void): () => void {
  let count = 0;
  const handler = (signal: NodeJS.Signals) => {
    count += 1;
    if (count === 1) {
      process.stderr.write(`labrig: ${signal}: ending the work and tearing down (again to force)\n`);
      graceful(signal);
    } else {
      process.stderr.write(`labrig: ${signal} again: forced exit, nothing torn down\n`);
      process.exit(130);
    }
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
