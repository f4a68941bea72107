"""The standard-library modules a workflow can import inside the sandbox.

componentize-py bundles its own CPython (3.14.0); a module it lacks (`ssl`,
`ctypes`, `bz2`, ...) fails only after a build of a minute or more. Measured, not guessed:
`tests/integration/test_preflight_build.py` builds a probe workflow that imports every
name in the guest's `sys.stdlib_module_names` at module level and checks this list against
what succeeded, so it cannot drift when componentize-py is upgraded. To regenerate it, run
that test's probe (`tests/workflows/sandbox_modules/probe.py`) with `durable run`.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: componentize-py's version this list was measured with.
MEASURED_WITH = "0.25.1"

#: Top-level standard-library modules that import inside a workflow component.
STDLIB: frozenset[str] = _words(
    """
    __future__ _abc _aix_support _android_support _apple_support _ast _ast_unparse
    _asyncio _bisect _blake2 _codecs _codecs_cn _codecs_hk _codecs_iso2022 _codecs_jp
    _codecs_kr _codecs_tw _collections _collections_abc _colorize _compat_pickle
    _contextvars _csv _datetime _decimal _elementtree _frozen_importlib
    _frozen_importlib_external _functools _heapq _hmac _imp _io _ios_support _json
    _locale _lsprof _markupbase _md5 _multibytecodec _opcode _opcode_metadata _operator
    _osx_support _pickle _py_abc _py_warnings _pydatetime _pydecimal _pyio _pylong
    _pyrepl _queue _random _sha1 _sha2 _sha3 _signal _sitebuiltins _socket _sqlite3 _sre
    _stat _statistics _string _strptime _struct _suggestions _symtable _sysconfig
    _thread _threading_local _tokenize _tracemalloc _types _typing _warnings _weakref
    _weakrefset _zoneinfo abc annotationlib antigravity argparse array ast asyncio
    atexit base64 bdb binascii bisect builtins cProfile calendar cmath cmd code codecs
    codeop collections colorsys compileall compression concurrent configparser
    contextlib contextvars copy copyreg csv dataclasses datetime dbm decimal difflib dis
    doctest email encodings ensurepip enum errno faulthandler filecmp fileinput fnmatch
    fractions ftplib functools gc genericpath getopt getpass gettext glob graphlib gzip
    hashlib heapq hmac html http idlelib imaplib importlib inspect io ipaddress
    itertools json keyword linecache locale logging mailbox marshal math mimetypes
    modulefinder multiprocessing netrc ntpath nturl2path numbers opcode operator
    optparse os pathlib pdb pickle pickletools pkgutil platform plistlib poplib posix
    posixpath pprint profile pstats py_compile pyclbr pydoc pydoc_data pyexpat queue
    quopri random re reprlib rlcompleter runpy sched secrets select selectors shelve
    shlex shutil signal site smtplib socket socketserver sqlite3 sre_compile
    sre_constants sre_parse stat statistics string stringprep struct subprocess symtable
    sys sysconfig tabnanny tarfile tempfile textwrap this threading time timeit token
    tokenize tomllib trace traceback tracemalloc turtledemo types typing unicodedata
    unittest urllib uuid venv warnings wave weakref webbrowser wsgiref xml xmlrpc zipapp
    zipfile zipimport zlib zoneinfo
    """
)

#: Standard-library modules the sandbox's Python does not have (the rest of
#: `sys.stdlib_module_names`), named in the error so it does not suggest a typo.
MISSING: frozenset[str] = _words(
    """
    _bz2 _ctypes _curses _curses_panel _dbm _gdbm _hashlib _interpchannels _interpqueues
    _interpreters _lzma _multiprocessing _overlapped _posixshmem _posixsubprocess
    _remote_debugging _scproxy _ssl _tkinter _uuid _winapi _wmi _zstd bz2 ctypes curses
    fcntl grp lzma mmap msvcrt nt pty pwd readline resource ssl syslog termios tkinter
    tty turtle winreg winsound
    """
)
