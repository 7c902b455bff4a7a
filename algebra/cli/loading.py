"""Load a model and a batch of tensors from files, for the command line.

No file runs code from itself unless the caller trusts it (``trust_pickle=True``):

- TorchScript (``torch.jit.load``): its pickles are read by TorchScript's own unpickler,
  which builds TorchScript values only and resolves no Python names; the file's
  TorchScript code is compiled and runs on TorchScript's interpreter (torch operators).
- ``torch.export`` archives: ``torch.export.load`` can unpickle weights and constants,
  evaluate text as Python and call any function the graph names, so the archive is
  inspected first (:mod:`algebra.cli.archive`) and refused when it would.
- A module saved with ``torch.save(module, path)`` is a pickle: unpickling it runs
  whatever code the file names, so it loads only when trusted.

Tensor files load with ``weights_only=True`` (``.pt``) or ``allow_pickle=False``
(``.npy``, ``.npz``), which never run code.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .archive import archive_risks, foreign_calls

__all__ = ["load_model", "load_tensor"]

_INPUT_KEYS = ("inputs", "x")
_LABEL_KEYS = ("labels", "y")
_SAFE_FORMATS = (
    "save it with torch.export.save(torch.export.export(model, (example,)), 'model.pt2') "
    "or torch.jit.script(model).save(path) (TorchScript)"
)


def load_model(path: str | os.PathLike[str], trust_pickle: bool = False) -> torch.nn.Module:
    """Load a ``torch.nn.Module`` from a TorchScript, ``torch.export`` or pickle file.

    - TorchScript (``torch.jit.save``): loaded with ``torch.jit.load`` on the CPU.
    - ``torch.export`` archive (``torch.export.save``, usually ``.pt2``): inspected, then
      loaded with ``torch.export.load`` and unflattened (``torch.export.unflatten``) so that its
      submodules keep their names for layer queries and it accepts ``eval()``, which the
      module returned by ``ExportedProgram.module()`` refuses. Its graph fixed the
      train/eval behaviour at export time, so it is returned in eval mode.
    - a pickled module (``torch.save(module, path)``): unpickling runs code named in the
      file, so it loads only with ``trust_pickle=True``; so does an archive that would
      unpickle data or run code (see :func:`algebra.cli.archive.archive_risks`).

    The other formats come back in the mode they were saved in.

    Parameters
    ----------
    path
        The model file.
    trust_pickle
        Allow unpickling a module saved with ``torch.save(module, path)``, and loading a
        ``torch.export`` archive that unpickles or runs code. Only for files from a
        trusted source.

    Returns
    -------
    torch.nn.Module
        The module, on the CPU.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is a pickle (or an archive that would run code) and ``trust_pickle``
        is false, holds only weights (a state_dict), or is not a model file.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 2)).eval()
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     torch.jit.script(net).save(Path(tmp) / "net.pt")
    ...     scripted = load_model(Path(tmp) / "net.pt")
    ...     torch.save(net, Path(tmp) / "pickled.pt")
    ...     try:
    ...         load_model(Path(tmp) / "pickled.pt")
    ...     except ValueError as e:
    ...         print("refused:", "--trust-pickle" in str(e))
    ...     pickled = load_model(Path(tmp) / "pickled.pt", trust_pickle=True)
    refused: True
    >>> x = torch.rand(3, 4)
    >>> torch.equal(scripted(x), net(x)), torch.equal(pickled(x), net(x)), pickled.training
    (True, True, False)
    """
    path = _existing(path)
    names = _zip_names(path)
    if any(n.endswith("/constants.pkl") for n in names):
        return _torchscript(path)
    if any(n.endswith("/archive_format") for n in names):
        return _exported(path, trust_pickle)
    obj = _unpickle_model(path, trust_pickle)
    if isinstance(obj, torch.nn.Module):
        return obj
    if isinstance(obj, Mapping) and obj:
        keys = ", ".join(repr(k) for k in list(obj)[:5]) + (", ..." if len(obj) > 5 else "")
        raise ValueError(
            f"model file {str(path)!r} holds a dict of weights (a state_dict or checkpoint; "
            f"keys {keys}), not a model: a state_dict has no architecture to run. Build "
            f"the model in Python, load the weights into it, and {_SAFE_FORMATS}"
        )
    raise ValueError(
        f"model file {str(path)!r} holds a {type(obj).__name__}, not a torch.nn.Module; "
        f"{_SAFE_FORMATS}"
    )


def load_tensor(path: str | os.PathLike[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Load a batch of inputs, and labels when the file has them.

    - ``.pt`` / ``.pth`` (``torch.save``, read with ``weights_only=True``): a tensor, a
      dict with ``inputs`` or ``x`` and optionally ``labels`` or ``y``, or a tuple
      ``(inputs, labels)``.
    - ``.npy`` (read with ``allow_pickle=False``): one array, the inputs.
    - ``.npz``: arrays ``inputs`` or ``x`` and optionally ``labels`` or ``y``; a file with
      a single array holds the inputs.

    A dict with a single tensor (whatever its key) also holds the inputs. Files with
    another extension are recognised by their content. ``float64`` inputs become
    ``float32``, the precision models use; other dtypes are kept.

    Parameters
    ----------
    path
        The tensor file.

    Returns
    -------
    tuple of torch.Tensor and (torch.Tensor or None)
        The inputs, and the labels or ``None``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file cannot be read safely, or it holds no inputs under a known key (the
        message lists the keys found), or the labels do not match the inputs' length.

    Examples
    --------
    >>> import tempfile, numpy as np, torch
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     np.savez(Path(tmp) / "batch.npz", x=np.zeros((2, 3)), y=np.array([0, 1]))
    ...     x, y = load_tensor(Path(tmp) / "batch.npz")
    ...     torch.save(torch.ones(4, 1, 8, 8), Path(tmp) / "images.pt")
    ...     images, labels = load_tensor(Path(tmp) / "images.pt")
    >>> x.dtype, x.shape, y.tolist()
    (torch.float32, torch.Size([2, 3]), [0, 1])
    >>> images.shape, labels
    (torch.Size([4, 1, 8, 8]), None)
    """
    path = _existing(path)
    kind = _tensor_kind(path)
    if kind == "npy":
        inputs, labels = _read_npy(path), None
    elif kind == "npz":
        inputs, labels = _pick(path, _read_npz(path))
    else:
        inputs, labels = _pick(path, _read_pt(path))
    if inputs.dtype == torch.float64:
        inputs = inputs.float()
    if labels is not None and (labels.ndim != 1 or len(labels) != len(inputs)):
        raise ValueError(
            f"tensor file {str(path)!r}: labels have shape {list(labels.shape)}, expected "
            f"one label per input ([{len(inputs)}])"
        )
    return inputs, labels


def _existing(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file")
    if path.stat().st_size == 0:
        raise ValueError(f"{str(path)!r} is empty")
    return path


def _zip_names(path: Path) -> list[str]:
    # torch.save, TorchScript and torch.export all write zip archives; their entries tell
    # the formats apart without loading anything.
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _torchscript(path: Path) -> torch.nn.Module:
    try:
        with warnings.catch_warnings():
            # recent torch deprecates TorchScript; the file format is the user's choice
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # torch reports damaged archives as bare RuntimeErrors
        raise ValueError(f"cannot load TorchScript model {str(path)!r}: {_reason(e)}") from e


def _exported(path: Path, trust_pickle: bool) -> torch.nn.Module:
    refuse = (
        f"model file {str(path)!r} is a torch.export archive that runs code from the file "
        "when loaded ({}). Pass --trust-pickle (trust_pickle=True) only if you trust its "
        "source, or export the model again with plain tensor weights"
    )
    try:
        risks = [] if trust_pickle else archive_risks(path)
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise ValueError(f"cannot load torch.export archive {str(path)!r}: {_reason(e)}") from e
    if risks:
        raise ValueError(refuse.format(_listed(risks)))
    try:
        with warnings.catch_warnings():
            # torch's own deprecation notices while deserializing concern torch, not the user
            warnings.simplefilter("ignore", FutureWarning)
            with path.open("rb") as f:  # a file object: torch.export.load wants a .pt2 name
                program = torch.export.load(f)
            calls = [] if trust_pickle else foreign_calls(program)
            if calls:  # checked before unflatten generates and compiles the graph's code
                raise _Refused(refuse.format("its graph calls " + _listed(calls)))
            module = torch.export.unflatten(program)
    except _Refused as e:
        raise ValueError(str(e)) from None
    except Exception as e:
        raise ValueError(f"cannot load torch.export archive {str(path)!r}: {_reason(e)}") from e
    # The exported graph fixed the train/eval behaviour at export time; eval() only sets
    # the flags, so the library does not warn about a training-mode model.
    return module.eval()


class _Refused(Exception):
    """An archive refused after loading, kept apart from torch's own errors."""


def _unpickle_model(path: Path, trust_pickle: bool) -> Any:
    not_a_model = (
        f"{str(path)!r} is not a model file: expected TorchScript, a torch.export archive "
        "(.pt2) or a module saved with torch.save"
    )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = _unsafe_globals(path, e)
        if unsafe is None:  # torch's advice to retry without weights_only is wrong here
            raise ValueError(f"{not_a_model} (it is damaged or in another format)") from None
        if not trust_pickle:
            raise ValueError(
                f"model file {str(path)!r} is a pickled module ({_listed(unsafe)}): loading it "
                "runs code from the file. Pass --trust-pickle (trust_pickle=True) only if you "
                f"trust its source, or {_SAFE_FORMATS}"
            ) from None
    except Exception as e:  # EOFError, RuntimeError: truncated or foreign files
        raise ValueError(f"{not_a_model} ({_reason(e)})") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # the pickle names a class that is not importable here, ...
        raise ValueError(f"cannot unpickle model {str(path)!r}: {_reason(e)}") from e


def _unsafe_globals(path: Path, error: Exception) -> list[str] | None:
    """The classes and functions a torch.save pickle names, or None if it is no such pickle."""
    try:
        # Reads the pickle's opcodes without executing them (zip format only).
        return torch.serialization.get_unsafe_globals_in_checkpoint(path) or None
    except Exception:
        pass
    # Legacy (non-zip) torch.save files: weights_only names the global it refused.
    message = str(error)
    marker = "Unsupported global: GLOBAL "
    if marker in message:
        return [message.split(marker, 1)[1].split()[0]]
    return None


def _listed(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def _reason(error: BaseException) -> str:
    """The first sentence of an error: torch's messages go on with advice that misleads here."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()  # ANSI colours in torch's text
    if not text:
        return type(error).__name__
    first = text.splitlines()[0]
    return first.split(". ", 1)[0].rstrip(".")


def _tensor_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return suffix[1:]
    if suffix in (".pt", ".pth"):
        return "pt"
    with path.open("rb") as f:  # another extension: recognise the content
        head = f.read(6)
    if head == b"\x93NUMPY":
        return "npy"
    names = _zip_names(path)
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "pt"


def _read_npy(path: Path) -> torch.Tensor:
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as e:  # object arrays need pickle; damaged headers
        raise ValueError(f"cannot read {str(path)!r} as .npy: {_reason(e)}") from e
    return _as_tensor(path, "the array", array)


def _read_npz(path: Path) -> dict[str, torch.Tensor]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as e:
        raise ValueError(f"cannot read {str(path)!r} as .npz: {_reason(e)}") from e
    return {key: _as_tensor(path, repr(key), value) for key, value in arrays.items()}


def _read_pt(path: Path) -> Any:
    names = _zip_names(path)
    if any(n.endswith(("/constants.pkl", "/archive_format")) for n in names):
        raise ValueError(f"{str(path)!r} holds a model (TorchScript or torch.export), not tensors")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = _unsafe_globals(path, e)
        if unsafe is None:
            raise ValueError(
                f"cannot read {str(path)!r}: expected a .pt file saved with torch.save, a .npy "
                "or a .npz file (it is damaged or in another format)"
            ) from None
        raise ValueError(
            f"cannot read {str(path)!r} safely: it holds pickled objects ({_listed(unsafe)}) "
            "besides tensors, and loading them runs code from the file; save only tensors, "
            "e.g. torch.save({'inputs': x, 'labels': y}, path)"
        ) from None
    except Exception as e:
        raise ValueError(
            f"cannot read {str(path)!r}: expected a .pt file saved with torch.save, a .npy "
            f"or a .npz file ({_reason(e)})"
        ) from e


def _pick(path: Path, obj: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The inputs and labels from a loaded tensor, dict, or tuple."""
    if isinstance(obj, torch.Tensor):
        return obj, None
    if isinstance(obj, (tuple, list)) and 1 <= len(obj) <= 2:
        inputs = _as_tensor(path, "item 0", obj[0])
        labels = _as_tensor(path, "item 1", obj[1]) if len(obj) == 2 else None
        return inputs, labels
    if isinstance(obj, Mapping):
        found = [k for k in _INPUT_KEYS if k in obj]
        if len(found) > 1:
            raise ValueError(
                f"tensor file {str(path)!r} has both {found[0]!r} and {found[1]!r}: "
                "keep one of them for the inputs"
            )
        if found:
            inputs = _as_tensor(path, repr(found[0]), obj[found[0]])
        elif len(obj) == 1:  # a single array is the inputs, whatever its key
            (key,) = obj
            return _as_tensor(path, repr(key), obj[key]), None
        else:
            keys = ", ".join(repr(k) for k in obj) or "none"
            raise ValueError(
                f"tensor file {str(path)!r} has no inputs: expected a key 'inputs' or 'x' "
                f"(and optionally 'labels' or 'y'); keys found: {keys}"
            )
        label_keys = [k for k in _LABEL_KEYS if k in obj]
        labels = _as_tensor(path, repr(label_keys[0]), obj[label_keys[0]]) if label_keys else None
        return inputs, labels
    raise ValueError(
        f"tensor file {str(path)!r} holds a {type(obj).__name__}: expected a tensor, a dict "
        "with 'inputs' or 'x' (and optionally 'labels' or 'y'), or a tuple (inputs, labels)"
    )


def _as_tensor(path: Path, what: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        array = np.asarray(value)
        if array.dtype.byteorder not in ("=", "|"):  # torch reads native byte order only
            array = array.astype(array.dtype.newbyteorder("="))
        return torch.from_numpy(np.ascontiguousarray(array))
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"tensor file {str(path)!r}: {what} is not a numeric array ({_reason(e)})"
        ) from e
