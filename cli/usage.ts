/** A command used wrongly (unknown host, bad argument): exit 2, one line, nothing touched. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
