import path from 'node:path';

/**
 * The package's root, the same from the sources (runtime/) and from the compiled build
 * (dist/runtime/): files that are not code (migrations, catalogs) are read from the sources' tree.
 */
const here = import.meta.dirname;
export const PACKAGE_ROOT = path.resolve(here, path.basename(path.dirname(here)) === 'dist' ? '../..' : '..');

/** A file or directory of the package, by its path from the root. */
export function packagePath(relative: string): string {
  return path.join(PACKAGE_ROOT, relative);
}
