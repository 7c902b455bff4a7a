"""Where the command line writes: checked before anything runs, never over an input or an
existing file (unless ``--force``), and nothing half-written left behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path


class OutputError(ValueError):
    """An output path that cannot be written as asked."""


def png_path(value: str) -> Path:
    """The file a ``--png`` value names: ``.png`` is added when it has no suffix.

    Examples
    --------
    >>> str(png_path("heat")), str(png_path("maps/heat.png"))
    ('heat.png', 'maps/heat.png')
    """
    path = Path(value)
    if path.suffix or path.is_dir():  # a directory is refused by check_outputs, as named
        return path
    return path.with_name(path.name + ".png")


def check_outputs(
    outputs: dict[str, Path], inputs: Sequence[str], force: bool = False
) -> dict[str, Path]:
    """Refuse outputs that would overwrite an input, each other, a directory, or (without
    ``force``) an existing file; ``outputs`` maps each flag to its path.

    Examples
    --------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> check_outputs({"--out": Path(folder)}, [])
    Traceback (most recent call last):
    algebra.cli.outputs.OutputError: --out: ... is a directory; give a file name, e.g. .../result
    >>> check_outputs({"--out": Path(folder, "a.nc"), "--png": Path(folder, "a.nc")}, [])
    Traceback (most recent call last):
    algebra.cli.outputs.OutputError: --png: ... is also the --out file; give each its own path
    """
    seen: dict[Path, str] = {}
    read = {Path(p).resolve() for p in inputs if p}
    for flag, path in outputs.items():
        where = path.resolve()
        if path.is_dir():
            raise OutputError(
                f"{flag}: {str(path)!r} is a directory; give a file name, e.g. "
                f"{os.path.join(str(path), 'result')}"
            )
        if where in read:
            raise OutputError(f"{flag}: {str(path)!r} is an input of this command; not overwritten")
        if where in seen:
            raise OutputError(
                f"{flag}: {str(path)!r} is also the {seen[where]} file; give each its own path"
            )
        if path.exists() and not force:
            raise OutputError(f"{flag}: {str(path)!r} exists; pass --force to overwrite it")
        seen[where] = flag
    return outputs


@contextlib.contextmanager
def all_or_nothing(paths: Sequence[Path]) -> Iterator[None]:
    """Remove the files among ``paths`` this block created, if the block fails.

    Files that existed before (overwritten with ``--force``) are left as they are.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp(), "x.nc")
    >>> try:
    ...     with all_or_nothing([target]):
    ...         _ = target.write_text("half")
    ...         raise RuntimeError("the second file failed")
    ... except RuntimeError:
    ...     pass
    >>> target.exists()
    False
    """
    new = [p for p in paths if not p.exists()]
    try:
        yield
    except BaseException:
        for path in new:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
