"""The one compiled piece: the framer's loop (shared/pgwire/_framing.c). Everything else is pyproject.toml.

``optional=True``: where no C compiler is at hand, the install carries on and the pure-Python twin of the
loop (``shared.pgwire.framing.scan_py``) runs instead, with the same behaviour."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("shared.pgwire._framing", ["shared/pgwire/_framing.c"], optional=True, extra_compile_args=["-O2"])
    ]
)
