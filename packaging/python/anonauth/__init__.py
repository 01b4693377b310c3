"""anonauth: an authentication layer inside SQLite, as a loadable extension.

The wheel carries the prebuilt extension (anonauth.so) for one platform;
load(conn) loads it into a sqlite3 connection, loadable_path() says where it is.
"""
import os
import sqlite3

__version__ = "@version@"
__all__ = ["load", "loadable_path", "__version__"]


def loadable_path():
    """The absolute path of anonauth.so, for conn.load_extension() or .load."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "anonauth.so")


def load(conn: sqlite3.Connection) -> None:
    """Loads anonauth into conn. Extension loading is switched on for the load
    only. Some Python builds have no enable_load_extension (compiled without
    SQLite extension support): use Debian's /usr/bin/python3, or one built with
    --enable-loadable-sqlite-extensions."""
    if not hasattr(conn, "enable_load_extension"):
        raise RuntimeError("anonauth.load: this Python's sqlite3 module cannot load extensions "
                           "(built without --enable-loadable-sqlite-extensions)")
    conn.enable_load_extension(True)
    try:
        conn.load_extension(loadable_path())
    finally:
        conn.enable_load_extension(False)
