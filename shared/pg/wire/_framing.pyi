def scan(
    data: bytes,
    pos: int,
    allowed: bytes | None,
    limit: int,
    small: bytes | None,
    small_limit: int,
    frames: list[tuple[int, int, int]] | None,
    watch: bytes | None,
    /,
) -> tuple[int, int, int, int, int]: ...
