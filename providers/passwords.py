"""Strong generated passwords that can be read off a phone and typed on another.

    from spbot.providers.passwords import generate_password
    generate_password()        # 'k7mq-x3vd-p9tr-w4hn-c2jf': 20 characters, about 99 bits

Characters come from `secrets` over 31 lowercase letters and digits without the look-alikes
(0/o, 1/l/i), in groups of four separated by `-`: no shift key, no symbols keyboards hide,
nothing that reads two ways in a chat client's font.
"""
from __future__ import annotations

import math
import secrets

__all__ = ["ALPHABET", "MIN_BITS", "entropy_bits", "generate_password"]

ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
MIN_BITS = 80


def entropy_bits(groups: int = 5, group_size: int = 4) -> float:
    """Bits of randomness in a password of `groups` × `group_size` characters."""
    return groups * group_size * math.log2(len(ALPHABET))


def generate_password(groups: int = 5, group_size: int = 4) -> str:
    """A new random password; refuses shapes weaker than MIN_BITS bits."""
    if groups < 1 or group_size < 1 or entropy_bits(groups, group_size) < MIN_BITS:
        raise ValueError(f"a generated password needs at least {MIN_BITS} bits; "
                         f"{groups}×{group_size} characters give "
                         f"{max(entropy_bits(max(groups, 0), max(group_size, 0)), 0):.0f}")
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(group_size))
                    for _ in range(groups))
