/** The command line is wrong (an unknown command or flag, a bad value): usage is printed, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** What was asked cannot be done (an unknown instance, an operation that cannot be retried): exit 1. */
export class AdminError extends Error {
  override name = 'AdminError';
}
