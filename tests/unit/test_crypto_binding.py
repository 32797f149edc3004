"""The bot binds pycryptodome's C code through ctypes, not cffi (spbot/__init__.py: cffi parses C
declarations at every start), and nio's attachment cipher works through it, both ways."""
from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import spbot
import nio.crypto.attachments as attachments
from Crypto.Util import _raw_api
data = bytes(range(256)) * 400
ciphertext, keys = attachments.encrypt_attachment(data)
assert ciphertext != data
assert attachments.decrypt_attachment(ciphertext, keys["key"]["k"], keys["hashes"]["sha256"], keys["iv"]) == data
print(_raw_api.backend, "pycparser" in sys.modules)
"""


def test_the_attachment_cipher_works_through_ctypes_and_cffi_is_not_loaded():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ctypes", "False"]
