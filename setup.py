"""The compiled pieces: the framer's loop (shared/pg/wire/_framing.c) and a session recording's hot path
(shared/recording/_tape.c). Everything else is pyproject.toml.

``optional=True``: where no C compiler is at hand, the install carries on and the pure-Python twins
(``shared.pg.wire.framing.scan_py``, ``shared.recording.tape.TapePy``) run instead, with the same
behaviour."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("shared.pg.wire._framing", ["shared/pg/wire/_framing.c"], optional=True, extra_compile_args=["-O2"]),
        Extension("shared.recording._tape", ["shared/recording/_tape.c"], optional=True, extra_compile_args=["-O2"]),
    ]
)
