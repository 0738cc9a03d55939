/** A floor (bench/floors/*.ts) as its own process, with the broker's test credentials. */
import path from 'node:path';
import { PASSWORD, USERNAME, freePort } from '../../test/helpers.js';
import { nodeProcess, spawnCommand, waitUntilAnswering } from './processes.js';

export interface Floor {
  baseUrl: string;
  pid: number;
  stop(): Promise<void>;
}

export async function startFloor(file: string, logDir: string, env: Record<string, string> = {}): Promise<Floor> {
  const port = await freePort();
  const child = spawnCommand(
    `exec node --import tsx bench/floors/${file}`,
    { PORT: String(port), BROKER_USERNAME: USERNAME, BROKER_PASSWORD: PASSWORD, ...env },
    path.join(logDir, `floor-${path.basename(file, '.ts')}.log`),
  );
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitUntilAnswering(`${baseUrl}/readyz`, child, 30_000);
  } catch (error) {
    await child.stop();
    throw error;
  }
  return { baseUrl, pid: nodeProcess(child), stop: () => child.stop() };
}
