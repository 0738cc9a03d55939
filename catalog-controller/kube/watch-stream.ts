import http from 'node:http';
import https from 'node:https';
import { DeadlineExceededError, ResponseTooLargeError, type CallLimits } from '../call-limits.js';

/** One event of a watch: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR, and its object. */
export type WatchEventHandler = (type: string, object: unknown) => void;

/** Called once when a watch ends: null when the server closed it, else why it failed or was aborted. */
export type WatchDone = (error: Error | null) => void;

export interface WatchHandle {
  /** Ends the watch; `done` gets an AbortError. */
  abort(): void;
}

/** The HTTP status of a watch the server refused (410 Gone and others), for the informer. */
export class WatchRefusedError extends Error {
  override name = 'WatchRefusedError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A watch request (newline-delimited JSON events), bounded like any other read: its headers
 * within `limits.timeoutMs`, each event within `limits.maxResponseBytes`, and the whole stream
 * within the watch's `timeoutSeconds` (after which the server should have closed it) plus the
 * request timeout: a connection that went quiet without closing is ended, not waited
 * on for ever. Past a limit the request is destroyed and `done` gets the limit's error.
 */
export function openWatch(
  options: https.RequestOptions,
  limits: CallLimits,
  timeoutSeconds: number,
  onEvent: WatchEventHandler,
  done: WatchDone,
): WatchHandle {
  const stream: CallLimits = {
    ...limits,
    timeoutMs: timeoutSeconds * 1000 + limits.timeoutMs,
    names: { ...limits.names, timeout: `the watch's timeoutSeconds=${timeoutSeconds} and ${limits.names.timeout}` },
  };
  const call = `WATCH ${options.path ?? ''}`;
  const transport = options.protocol === 'https:' ? https : http;
  let ended = false;
  const end = (error: Error | null): void => {
    if (ended) return;
    ended = true;
    clearTimeout(headersTimer);
    clearTimeout(streamTimer);
    if (error) req.destroy();
    done(error);
  };
  const headersTimer = setTimeout(() => end(new DeadlineExceededError(limits, call)), limits.timeoutMs);
  const streamTimer = setTimeout(() => end(new DeadlineExceededError(stream, call)), stream.timeoutMs);
  const req = transport.request(options, (res) => {
    clearTimeout(headersTimer);
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      end(new WatchRefusedError(status, `${call}: ${status} ${res.statusMessage ?? ''}`.trim()));
      return;
    }
    let partial = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of [...lines, partial]) {
        // An event's size (in characters, near enough to bytes for JSON).
        if (line.length > limits.maxResponseBytes) {
          end(new ResponseTooLargeError(limits, status, call));
          return;
        }
      }
      for (const line of lines) {
        if (ended) return;
        if (!line.trim()) continue;
        let event: { type?: unknown; object?: unknown };
        try {
          event = JSON.parse(line) as { type?: unknown; object?: unknown };
        } catch {
          continue;
        }
        if (typeof event.type === 'string') onEvent(event.type, event.object);
      }
    });
    res.on('end', () => end(null));
    res.on('error', (error) => end(error));
    res.on('close', () => end(null));
  });
  req.on('error', (error) => end(error));
  req.end();
  return {
    abort: () => {
      const aborted = new Error('the watch was aborted');
      aborted.name = 'AbortError';
      end(aborted);
    },
  };
}
