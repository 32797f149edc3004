"""spbot: run a family's self-hosted server from an end-to-end encrypted Matrix room."""
import sys

__version__ = "0.1.0"


def _crypto_through_ctypes() -> None:
    """pycryptodome (nio's attachment cipher) binds its C code through cffi whenever the cffi package is
    installed (PyNaCl brings it), and then parses C declarations with pycparser at every start: 0.15 to
    0.2 s of CPU and 1.3 MiB, a fifth of the bot's launch. Without cffi it binds them through ctypes,
    which works the same; the bot takes that (nothing of the bot's needs the cffi package itself)."""
    if "Crypto.Util._raw_api" in sys.modules or "cffi" in sys.modules:
        return
    sys.modules["cffi"] = None          # `import cffi` raises ImportError meanwhile
    try:
        import Crypto.Util._raw_api  # noqa: F401
    except ImportError:
        pass
    finally:
        del sys.modules["cffi"]


_crypto_through_ctypes()
