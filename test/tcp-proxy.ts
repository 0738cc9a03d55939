/**
 * A TCP proxy on loopback in front of a real server (PostgreSQL, Redis, the API server), that a
 * test can cut and restore: cut closes every open connection and refuses new ones, as a stopped
 * server does; restore listens again on the same port; hold keeps back what the server sends until
 * release. Nothing is faked beyond the outage or the delay itself.
 */
import { createServer, connect, type Server, type Socket, type AddressInfo } from 'node:net';

export class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private holding = false;
  private held: Array<() => void> = [];

  private constructor(
    private readonly target: { host: string; port: number },
    public port: number,
  ) {}

  /** A proxy on a free port of 127.0.0.1 to `targetUrl`'s host and port. */
  static async start(targetUrl: string, defaultPort: number): Promise<TcpProxy> {
    const url = new URL(targetUrl);
    const proxy = new TcpProxy({ host: url.hostname || '127.0.0.1', port: Number(url.port || defaultPort) }, 0);
    await proxy.listen();
    return proxy;
  }

  /** `url` with its host and port replaced by the proxy's. */
  via(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(this.port);
    return parsed.toString();
  }

  /** The server is gone: open connections are cut and new ones refused. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The server is back, on the same port. */
  async restore(): Promise<void> {
    if (!this.server) await this.listen();
  }

  /** What the server sends waits in the proxy until `release` (a slow or stalled stream). */
  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    for (const send of this.held.splice(0)) send();
  }

  async close(): Promise<void> {
    await this.cut();
  }

  private async listen(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => {
          this.sockets.delete(socket);
          client.destroy();
          upstream.destroy();
        });
      }
      client.on('data', (chunk: Buffer) => upstream.write(chunk));
      upstream.on('data', (chunk: Buffer) => {
        if (this.holding) this.held.push(() => client.write(chunk));
        else client.write(chunk);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }
}
