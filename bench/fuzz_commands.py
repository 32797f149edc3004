"""Fuzz the command parse path as the bot runs it: ≥ 100,000 seeded random command lines through the
real registry (every declared command) and the parse step (spbot/parsing.py), then each accepted command's
policy. Prints the figures; an internal error (any exception other than a clear refusal) is a bug.

    .venv/bin/python bench/fuzz_commands.py [--inputs 100000] [--seed 13]
"""
from __future__ import annotations

import argparse
import random
import shlex
import sys
import time
import traceback
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spbot import commands  # noqa: E402
from spbot.parsing import parse_command  # noqa: E402
from spbot.registry import MAX_LINE_CHARS, REGISTRY, _base_type, split_words  # noqa: E402
from spbot.render import Reply  # noqa: E402

HOSTILE = ["99999999999999999999", "-1", "0", "1e999", "nan", "inf", "-inf", "1_000", "١٢", "１２",
           "99999999999d", "1e308d", "never", "7d", "0.5h", "\x00", "a\x00b", "/", "/srv/\x00", "--",
           "--admin=yes", "-x", "'", '"', "\\", "'a b'", '"c \\" d"', "é", "🙂", "\u202e", "\t", "\n"]
ALPHABET = "abcxyz019 -_/.:@!#'\"\\=\t\néß🙂\x00\u200b"


def random_word(rng: random.Random, spec) -> str:
    roll = rng.random()
    if roll < 0.3:
        return rng.choice(HOSTILE)
    if roll < 0.5 and spec is not None:
        own = [p.flag for p in spec.params if p.kind == "option"]
        own += [str(c) for p in spec.params if typing.get_origin(_base_type(p.type)) is typing.Literal
                for c in typing.get_args(_base_type(p.type))]
        if own:
            return rng.choice(own)
    if roll < 0.65:
        return rng.choice([str(rng.randint(-10, 10**6)), str(rng.getrandbits(128)),
                           f"{rng.randint(0, 9)}.{rng.randint(0, 999)}e{rng.randint(-5, 400)}"])
    if roll < 0.68:
        return rng.choice("ax/9'\"") * rng.randint(1000, 6000)          # a huge token
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))


def random_line(rng: random.Random, specs: list) -> str:
    spec = rng.choice(specs) if rng.random() < 0.9 else None
    head = spec.name if spec is not None else random_word(rng, None)
    words = [random_word(rng, spec) for _ in range(rng.randint(0, 6))]
    quote = rng.random()
    if quote < 0.5:
        words = [shlex.quote(w) if rng.random() < 0.3 else w for w in words]
    return "!" + " ".join([head] + words)


def main(inputs: int, seed: int) -> int:
    commands.load_all()
    specs = list(REGISTRY.commands.values())
    rng = random.Random(seed)
    accepted = refused = internal = too_long = 0
    slowest, slowest_line = 0.0, ""
    first_errors: list[str] = []
    started = time.perf_counter()
    for n in range(inputs):
        line = random_line(rng, specs)
        one = time.perf_counter()
        try:
            parsed = parse_command(line, REGISTRY, "!")
            if isinstance(parsed, Reply):
                refused += 1
                too_long += "characters long; the limit is" in parsed.body
                assert len(parsed.body) < 1000, "a refusal never echoes the whole input"
            else:
                spec, args = parsed
                spec.policy_for(args)
                spec.masked(args)
                accepted += 1
        except Exception:
            internal += 1
            if len(first_errors) < 5:
                first_errors.append(f"{line[:120]!r}\n{traceback.format_exc()}")
        took = time.perf_counter() - one
        if took > slowest:
            slowest, slowest_line = took, line
    elapsed = time.perf_counter() - started

    print(f"inputs:              {inputs:,} (seed {seed})")
    print(f"accepted:            {accepted:,}")
    print(f"refused, clear error: {refused:,} (of which over the {MAX_LINE_CHARS:,}-character limit: {too_long:,})")
    print(f"internal errors:     {internal:,}  (must be 0)")
    print(f"time:                {elapsed:.1f} s, {elapsed / inputs * 1e6:.0f} µs per input; slowest "
          f"{slowest * 1000:.2f} ms ({len(slowest_line):,} characters)")
    print("splitter, one plain token:", splitter_figures())
    for error in first_errors:
        print("\n--- internal error ---\n" + error)
    return 1 if internal else 0


def splitter_figures() -> str:
    """Time to split one token of 4 KiB and of 64 KiB, ours and shlex's (linear: ×16 for 16× the size)."""
    figures = []
    for name, split in (("ours", _split_unbounded), ("shlex", shlex.split)):
        for size in (4096, 65536):
            line = "a" * size
            start = time.perf_counter()
            for _ in range(20):
                split(line)
            figures.append(f"{name} {size // 1024} KiB {(time.perf_counter() - start) / 20 * 1e3:.2f} ms")
    return ", ".join(figures)


def _split_unbounded(line: str) -> list[str]:
    from spbot import registry
    saved, registry.MAX_LINE_CHARS = registry.MAX_LINE_CHARS, 10**9
    try:
        return split_words(line)
    finally:
        registry.MAX_LINE_CHARS = saved


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    sys.exit(main(args.inputs, args.seed))
