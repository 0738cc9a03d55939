import type { Duplex } from 'node:stream';

/** Largest request head (request line and headers) the OSB listener reads. */
export const MAX_HEADER_BYTES = 64 * 1024;

/**
 * The answer to a request Node's HTTP parser refuses before any route sees it (a head above
 * MAX_HEADER_BYTES, broken framing): a JSON error like every other answer, instead of Node's
 * empty one, then the connection is closed (the parser cannot read on after such a request).
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason, description] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', `The request headers are larger than ${MAX_HEADER_BYTES} bytes.`]
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'The request did not arrive in time.']
        : [400, 'Bad Request', 'The request is not valid HTTP/1.1.'];
  const body = JSON.stringify({ description });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
