import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * JSON logs. Anything that could carry a secret is redacted by path, as a second line of
 * defence: the code never logs credentials, passwords or request parameters on purpose.
 */
export function createLogger(level: string, name = 'depot', destination?: DestinationStream): Logger {
  const options = {
    name,
    level,
    redact: {
      paths: [
        'password',
        '*.password',
        'credentials',
        '*.credentials',
        'parameters',
        '*.parameters',
        'req.headers.authorization',
        'req.headers["x-broker-api-originating-identity"]',
      ],
      censor: '[redacted]',
    },
    // Database errors carry `where`, `detail` and `internalQuery`, which can quote the data
    // of the statement: only what identifies the error is kept.
    serializers: { err: errorSummary },
  };
  return destination ? pino(options, destination) : pino(options);
}

function errorSummary(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
  const code = (error as { code?: unknown }).code;
  return {
    type: error.name,
    message: error.message,
    ...(typeof code === 'string' ? { code } : {}),
    stack: error.stack,
  };
}
