/** Anything with loadExtension(path): a better-sqlite3 Database, or a
 *  node:sqlite DatabaseSync opened with { allowExtension: true }. */
export interface ExtensionLoadingDatabase {
  loadExtension(path: string, ...rest: any[]): unknown;
  enableLoadExtension?(allow: boolean): void;
}

/** The absolute path of the prebuilt anonauth.so for this platform.
 *  Throws when the platform has no prebuilt extension (only linux-x64 and
 *  linux-arm64 with glibc) or its package was not installed. */
export function getLoadablePath(): string;

/** Loads anonauth into one connection. Every connection that uses anonauth
 *  loads it once; loading it twice on one connection is harmless. */
export function load(db: ExtensionLoadingDatabase): void;
