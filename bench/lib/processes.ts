/**
 * Child processes of the bench: npm scripts run as `npm run` would (the command read from
 * package.json at run time, so a changed start command is what gets measured), their resident
 * memory and CPU time read from /proc, and a wait until they are idle.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, readdirSync, closeSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
export const ROOT = path.resolve(import.meta.dirname, '../..');

export interface Child {
  process: ChildProcess;
  /** Resolves with the exit code (or signal) once the process has ended. */
  exited: Promise<number | string | null>;
  stop(): Promise<void>;
}

/**
 * Runs `command` through sh in the repository (as npm does, with node_modules/.bin on PATH);
 * stdout and stderr go to `logFile`, so that writing a log costs what it does in production
 * without this process reading it.
 */
export function spawnCommand(command: string, env: Record<string, string>, logFile: string): Child {
  const fd = openSync(logFile, 'a');
  const child = spawn('sh', ['-c', command], {
    cwd: ROOT,
    // Only what a login shell has, and `env`: nothing of this process's own settings leaks in.
    env: {
      PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env.PATH ?? ''}`,
      HOME: process.env.HOME ?? '/tmp',
      ...env,
    },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const exited = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  return {
    process: child,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        for (const pid of [...descendants(child.pid!), child.pid!]) killQuietly(pid, 'SIGTERM');
      }
      const killer = setTimeout(() => {
        for (const pid of [...descendants(child.pid!), child.pid!]) killQuietly(pid, 'SIGKILL');
      }, 15_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Every process below `pid` (children, their children, …). */
export function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = Number(statFields(Number(entry))?.[1]);
    if (!parents.has(ppid)) parents.set(ppid, []);
    parents.get(ppid)!.push(Number(entry));
  }
  const out: number[] = [];
  const walk = (parent: number) => {
    for (const child of parents.get(parent) ?? []) {
      out.push(child);
      walk(child);
    }
  };
  walk(pid);
  return out;
}

function command(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The processes whose command name (/proc/<pid>/comm) is `name`: e.g. kube-apiserver. */
export function processesNamed(name: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry) && command(Number(entry)) === name)
    .map(Number);
}

/**
 * The node process a script runs: the child itself when the script `exec`s node, else the
 * node process below it (npm, a shell) with the most memory.
 */
export function nodeProcess(child: Child): number {
  const pid = child.process.pid!;
  if (command(pid) === 'node') return pid;
  const nodes = descendants(pid).filter((p) => command(p) === 'node');
  return nodes.sort((a, b) => memory(b).rssKb - memory(a).rssKb)[0] ?? pid;
}

export interface Memory {
  /** VmRSS: resident now. */
  rssKb: number;
  /** VmHWM: the most it was resident since it started. */
  peakKb: number;
}

export function memory(pid: number): Memory {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return { rssKb: 0, peakKb: 0 };
  }
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rssKb: field('VmRSS'), peakKb: field('VmHWM') };
}

/** CPU time (user + system) the process has used, in clock ticks (1/100 s on Linux). */
export function cpuTicks(pid: number): number {
  const fields = statFields(pid);
  // After the command name: utime and stime are fields 12 and 13 (0-based 11, 12).
  return fields ? Number(fields[11]) + Number(fields[12]) : 0;
}

/**
 * Waits until the processes use less than 5% of a core over 200 ms (at most `maxMs`), so that
 * work one round left queued (jobs, garbage collection) is not charged to the next.
 */
export async function settle(pids: number[], maxMs = 10_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  for (;;) {
    const before = pids.reduce((sum, pid) => sum + cpuTicks(pid), 0);
    await sleep(200);
    const used = pids.reduce((sum, pid) => sum + cpuTicks(pid), 0) - before;
    if (used <= 1 || Date.now() > deadline) return;
  }
}

/** Waits until `url` answers 2xx, or fails after `timeoutMs` (or when the child exits). */
export async function waitUntilAnswering(url: string, child: Child, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.process.exitCode !== null || child.process.signalCode !== null) {
      throw new Error(`the process exited before ${url} answered`);
    }
    const ok = await fetch(url).then(
      (res) => res.ok,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await sleep(25);
  }
}
