import http from 'node:http';
import https from 'node:https';
import { DeadlineExceededError, ResponseTooLargeError, type CallLimits } from './call-limits.js';

export interface BoundedResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * One HTTP(S) request bounded as a whole. It fails with DeadlineExceededError when connecting,
 * sending, the headers and the whole body take longer than `limits.timeoutMs` (a server that
 * trickles a byte a second is cut off like one that never answers), and with
 * ResponseTooLargeError as soon as the Content-Length or the bytes received pass
 * `limits.maxResponseBytes`. Either way the request and its socket are destroyed: nothing more
 * is read, and the connection does not go back to the keep-alive pool.
 */
export function boundedRequest(
  options: https.RequestOptions,
  payload: Buffer | undefined,
  limits: CallLimits,
  /** What is asked, to start the errors' messages with ("GET /api/v1/…"); none for broker calls. */
  call?: string,
): Promise<BoundedResponse> {
  const transport = options.protocol === 'https:' ? https : http;
  return new Promise<BoundedResponse>((resolve, reject) => {
    let settled = false;
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(error);
    };
    const timer = setTimeout(() => fail(new DeadlineExceededError(limits, call)), limits.timeoutMs);
    const req = transport.request(options, (res) => {
      const status = res.statusCode ?? 0;
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > limits.maxResponseBytes) {
        fail(new ResponseTooLargeError(limits, status, call));
        return;
      }
      const chunks: Buffer[] = [];
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > limits.maxResponseBytes) {
          chunks.length = 0;
          fail(new ResponseTooLargeError(limits, status, call));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ status, headers: res.headers, body: Buffer.concat(chunks) });
      });
      res.on('error', fail);
      // A server that closes the connection in the middle of the body.
      res.on('close', () => fail(new Error('the connection closed before the response was complete')));
    });
    req.on('error', fail);
    req.end(payload);
  });
}
