"""The compiled whole-buffer prefilter (Hyperscan) decides exactly what the Python prefilter decides."""

from __future__ import annotations

import platform
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.masking import detectors, scanner
from shared.masking.detectors import EMAIL_AT, STRUCTURED, candidate_kinds, candidates, python_kinds
from shared.pg.wire.messages import build_data_row

# Bytes that move the prefilter: digits, both separators, address and token characters, '@', bytes
# outside every class, and a length word's NUL.
ALPHABET = list(b"0123456789 -@._%+/=:aZk\x00\xff\n")
# Longer than one value, so candidates() and candidate_kinds() take the buffer path.
BUFFERS = st.lists(st.sampled_from(ALPHABET), min_size=513, max_size=1500).map(bytes)

needs_hyperscan = pytest.mark.skipif(not scanner.AVAILABLE, reason="no hyperscan wheel for this platform")


def test_hyperscan_is_installed_where_its_wheel_exists() -> None:
    """Where the dependency marker installs it, a missing wheel is a broken install, not a fallback."""
    if sys.platform == "linux" and platform.machine() == "x86_64":
        assert scanner.AVAILABLE
        assert detectors._BUFFER_SCANNER is not None


@needs_hyperscan
@given(BUFFERS)
@settings(max_examples=400, deadline=None)
@example(b"." * 600 + b"4111 1111")
@example(b"." * 600 + b"123-45-6789")
@example(b"." * 600 + b"2024-05-01 12:00:00.123456+00")
@example(b"@" + b"." * 600)
@example(b"." * 600 + b"a@b")
@example(b"." * 600 + b"k" * 19 + b":" + b"k" * 19)
@example(b"." * 600 + b"k" * 20)
def test_compiled_prefilter_equals_the_python_prefilter(data: bytes) -> None:
    assert candidate_kinds(data) == python_kinds(data, first=False)
    assert candidates(data) == (python_kinds(data, first=True) != 0)


@needs_hyperscan
def test_each_kind_is_reported_and_a_clean_result_buffer_is_not() -> None:
    clean = b"".join(
        build_data_row([str(100000 + i).encode(), b"2024-05-01 12:00:00.123456+00", b"delivered", b"-12.50"])
        for i in range(200)
    )
    assert candidate_kinds(clean) == 0
    assert not candidates(clean)
    assert candidate_kinds(clean + build_data_row([b"card 4111-1111-1111-1111"])) == STRUCTURED
    assert candidate_kinds(clean + build_data_row([b"ssn 123 45 6789"])) == STRUCTURED
    assert candidate_kinds(clean + build_data_row([b"AKIAIOSFODNN7EXAMPLE"])) == STRUCTURED
    assert candidate_kinds(clean + build_data_row([b"mail alice@example.com"])) == EMAIL_AT
    both = clean + build_data_row([b"alice@example.com 4111111111111111"])
    assert candidate_kinds(both) == STRUCTURED | EMAIL_AT
    assert candidates(both)


def test_byte_class_escapes_every_byte() -> None:
    assert scanner.byte_class(b"-a]") == rb"[\x2d\x5d\x61]"
