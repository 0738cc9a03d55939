/**
 * Typed configuration from the environment, shared by the broker and the controller: each
 * parser reads one variable, checks it, and throws ConfigError naming it.
 */

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type Env = Record<string, string | undefined>;

/** A whole number within [min, max]; unset or empty means the fallback. */
export function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

/** A whole number within [min, max], or undefined when unset or empty. */
export function optionalInteger(env: Env, name: string, min: number, max: number): number | undefined {
  return env[name] ? integer(env, name, min, min, max) : undefined;
}

export function url(env: Env, name: string, fallback: string, protocols: string[]): string {
  const raw = env[name] === undefined || env[name] === '' ? fallback : env[name]!;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a valid URL`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')}`);
  }
  return raw;
}

/** An `enabled` / `disabled` switch; unset or empty means the fallback. */
export function switchedOn(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'enabled') return true;
  if (raw === 'disabled') return false;
  throw new ConfigError(`${name} must be "enabled" or "disabled", got "${raw}"`);
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
/** LOG_LEVEL, one of pino's levels (default `info`). */
export function logLevel(env: Env): string {
  const level = env.LOG_LEVEL || 'info';
  if (!LOG_LEVELS.includes(level)) throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
  return level;
}

/** A host name or IP address to listen on; unset or empty means the fallback. */
export function host(env: Env, name: string, fallback: string): string {
  const raw = env[name] || fallback;
  if (!/^[A-Za-z0-9.:_-]+$/.test(raw) || raw.length > 253) {
    throw new ConfigError(`${name} must be a host name or an IP address, got "${raw}"`);
  }
  return raw;
}
