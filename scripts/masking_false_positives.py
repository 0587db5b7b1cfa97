"""How often the card detector takes a random number for a card number (not a test: a measurement).

Feeds N random values of each distribution through the masker's value paths: an int8 in binary format,
a numeric in text format (the strict test numbers get: no sign, no fraction, an issuer's principal
length, Luhn), and the same digits as free text (the lenient test text gets: any issuer length 13-19).

    .venv/bin/python scripts/masking_false_positives.py [--n 200000] [--seed 19]
"""

from __future__ import annotations

import argparse
import random
import struct
from collections.abc import Callable

from shared.masking.actions import Tokenizer
from shared.masking.rules import MaskAction, MaskingPolicy
from shared.pg.masking.values import Mode, ValueMasker

DISTRIBUTIONS: dict[str, Callable[[random.Random], int]] = {
    "int8, uniform over its range": lambda r: r.randrange(-(2**63), 2**63),
    "int8, positive": lambda r: r.randrange(0, 2**63),
    "13-19 digits, uniform length": lambda r: r.randrange(10 ** (k := r.randrange(12, 19)), 10 ** (k + 1)),
    "16 digits (worst case)": lambda r: r.randrange(10**15, 10**16),
    "negative 16 digits": lambda r: -r.randrange(10**15, 10**16),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=19)
    args = ap.parse_args()
    detectors = {k: MaskAction(v) for k, v in MaskingPolicy().detectors.items()}
    values = ValueMasker(detectors, Tokenizer(b"k" * 32))
    print(f"{'distribution':32} {'int8 binary':>14} {'numeric text':>14} {'as free text':>14}   (n = {args.n:,})")
    for label, draw in DISTRIBUTIONS.items():
        rng = random.Random(args.seed)
        binary = numeric = text = 0
        for _ in range(args.n):
            n = draw(rng)
            digits = str(n).encode()
            if -(2**63) <= n < 2**63 and values.scan(Mode.INT_BINARY, struct.pack("!q", n)) is not None:
                binary += 1
            if values.scan(Mode.NUMBER_TEXT, digits) is not None:
                numeric += 1
            if values.scan(Mode.TEXT, digits) is not None:
                text += 1
            values.found.clear()
        print(f"{label:32} {binary / args.n:14.6%} {numeric / args.n:14.6%} {text / args.n:14.6%}")


if __name__ == "__main__":
    main()
