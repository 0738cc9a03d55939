import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { ConfigError } from '../../runtime/config.js';

/** The API's certificate (with any intermediates after it) and private key, PEM, checked to belong together. */
export interface TlsCertificate {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  /** Of the first certificate in TLS_CERT_FILE, for the log. */
  fingerprint256: string;
  validTo: string;
}

/**
 * Reads TLS_CERT_FILE and TLS_KEY_FILE; throws ConfigError naming the variable whose file cannot
 * be read or is no PEM certificate / private key, or both when the key is not the certificate's.
 */
export function readTlsCertificate(certFile: string, keyFile: string): TlsCertificate {
  const cert = readPem('TLS_CERT_FILE', certFile);
  const key = readPem('TLS_KEY_FILE', keyFile);
  let first: X509Certificate;
  try {
    first = new X509Certificate(cert);
  } catch (error) {
    throw new ConfigError(`TLS_CERT_FILE ${certFile} is not a PEM certificate (${(error as Error).message})`);
  }
  try {
    createPrivateKey(key);
  } catch (error) {
    throw new ConfigError(
      `TLS_KEY_FILE ${keyFile} is not an unencrypted PEM private key (${(error as Error).message})`,
    );
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new ConfigError(
      `TLS_KEY_FILE ${keyFile} is not the key of the certificate in TLS_CERT_FILE ${certFile} ` +
        `(${(error as Error).message})`,
    );
  }
  return { certFile, keyFile, cert, key, fingerprint256: first.fingerprint256, validTo: first.validTo };
}

function readPem(variable: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${variable} ${file} cannot be read (${(error as NodeJS.ErrnoException).code})`);
  }
}
