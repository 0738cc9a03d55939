import { createHash } from 'node:crypto';

/**
 * GenerateEscapedName (pkg/controller/controller_utils.go): a Kubernetes object name for an OSB
 * id. `[a-y0-9]`, and `.` or `-` where a DNS-1123 subdomain allows them, pass through; any other
 * character becomes `z<hex code point>z`; a result over 63 characters is cut to 30 (without a
 * trailing `.`), `-`, and the md5 of the id. A lowercase UUID passes through unchanged.
 */
export function escapedName(id: string): string {
  let out = '';
  let prevDot = false;
  let prevDash = false;
  const chars = [...id];
  chars.forEach((ch, i) => {
    const inside = i !== 0 && i !== chars.length - 1;
    if (/[a-y0-9]/.test(ch)) {
      out += ch;
      prevDot = prevDash = false;
    } else if (ch === '.' && inside && !prevDot && !prevDash) {
      // No ".." , "-." or ".-": each part of a DNS-1123 subdomain starts and ends alphanumeric.
      out += ch;
      prevDot = true;
      prevDash = false;
    } else if (ch === '-' && inside && !prevDot) {
      out += ch;
      prevDash = true;
      prevDot = false;
    } else {
      out += `z${ch.codePointAt(0)!.toString(16)}z`;
      prevDot = prevDash = false;
    }
  });
  if (out.length > 63) out = `${out.slice(0, 30).replace(/\.$/, '')}-${createHash('md5').update(id).digest('hex')}`;
  return out;
}

/** Label values of the original's lookup labels: sha224 hex of the field (pkg/util/sha_generator.go). */
export function labelValue(value: string): string {
  return createHash('sha224').update(value).digest('hex');
}
