'use strict';
// anonauth for Node.js: where the prebuilt SQLite extension of this platform
// is, and load(db) for better-sqlite3 and node:sqlite. The .so itself comes in
// an optional dependency per platform (anonauth-linux-x64, anonauth-linux-arm64),
// of which npm installs only the one whose os/cpu match.
const path = require('node:path');

const SUPPORTED = ['linux-x64', 'linux-arm64'];

function isMusl() {
  // glibc's version is in the process report; musl's Node has none.
  if (process.platform !== 'linux' || !process.report || !process.report.getReport) return false;
  const header = process.report.getReport().header || {};
  return !header.glibcVersionRuntime;
}

function getLoadablePath() {
  const platform = `${process.platform}-${process.arch}`;
  if (!SUPPORTED.includes(platform) || isMusl()) {
    throw new Error(`anonauth: no prebuilt extension for ${platform}${isMusl() ? ' (musl)' : ''}; ` +
      `built for ${SUPPORTED.join(', ')} with glibc. Build it from source (make) and load its anonauth.so.`);
  }
  const pkg = `anonauth-${platform}`;
  let dir;
  try {
    dir = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch (err) {
    throw new Error(`anonauth: the package ${pkg} is not installed (it is an optional dependency of ` +
      `anonauth: was it installed with --no-optional or --omit=optional?)`);
  }
  return path.join(dir, 'anonauth.so');
}

// better-sqlite3: db.loadExtension(path). node:sqlite (Node 22.5+):
// a DatabaseSync opened with { allowExtension: true } has loadExtension(path)
// and enableLoadExtension(bool); without allowExtension it refuses both.
function load(db) {
  if (!db || typeof db.loadExtension !== 'function') {
    throw new TypeError('anonauth.load(db): db must be a better-sqlite3 Database or a node:sqlite ' +
      'DatabaseSync opened with { allowExtension: true }');
  }
  const file = getLoadablePath();
  if (typeof db.enableLoadExtension === 'function') {
    try {
      db.enableLoadExtension(true);
    } catch (err) {
      throw new Error('anonauth.load(db): this node:sqlite DatabaseSync does not allow extensions; ' +
        `open it with new DatabaseSync(file, { allowExtension: true }) (${err.message})`);
    }
    try {
      db.loadExtension(file);
    } finally {
      db.enableLoadExtension(false);
    }
    return;
  }
  db.loadExtension(file);
}

exports.getLoadablePath = getLoadablePath;
exports.load = load;
