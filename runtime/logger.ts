import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/**
 * JSON logs, or readable lines when they go to a terminal (no `destination`, and standard output
 * is a TTY: `npm start` in a shell). Anything that could carry a secret is redacted by path,
 * either way, as a second line of defence: the code never logs credentials, passwords or request
 * parameters on purpose.
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
  if (destination) return pino(options, destination);
  return process.stdout.isTTY ? pino(options, readableLines()) : pino(options, jsonLines());
}

/**
 * Standard output written asynchronously, so no request waits for its log line to be written;
 * pino flushes what is buffered when the process exits.
 */
function jsonLines(): DestinationStream {
  return pino.destination({ dest: 1, sync: false });
}

/**
 * pino-pretty as a stream in this process (not a transport worker), writing synchronously so a
 * line logged just before `process.exit` is not lost.
 */
function readableLines(): DestinationStream {
  return pretty({
    colorize: pretty.isColorSupported,
    sync: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
  });
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
