"""Results made storable: netCDF3 takes neither ``None``, booleans, object arrays nor
integers beyond float64's exact range in attributes and coordinates."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

_EXACT_FLOAT = 2**53  # integers up to this magnitude survive a float64 round trip
_INT32 = np.iinfo(np.int32)


def serialisable(result: xr.DataArray) -> xr.DataArray:
    """A copy of ``result`` that netCDF3 (the ``scipy`` engine) can store.

    See :meth:`ResultAccessor.to_netcdf` for the conversions.

    Parameters
    ----------
    result
        Any ``DataArray``.

    Returns
    -------
    xarray.DataArray
        The converted copy; ``result`` is not changed.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(
    ...     np.zeros(2, np.float16), dims="sample", coords={"sample": [2**40, 1]},
    ...     attrs={"abs": True, "layer": None},
    ... )
    >>> out = serialisable(da)
    >>> out.dtype, out["sample"].dtype, out.attrs
    (dtype('float32'), dtype('float64'), {'abs': 1, 'layer': ''})
    """
    out = result.copy(data=_storable(result.name, result.values))
    out.attrs = _attrs(result.attrs)
    # Encodings of a result read from a file name the old dtypes; the writer picks anew.
    out.encoding = {}
    coords = {
        name: xr.Variable(coord.dims, _storable(name, coord.values), _attrs(coord.attrs))
        for name, coord in result.coords.items()
    }
    return out.assign_coords(coords)


def serialisable_dataset(result: xr.Dataset) -> xr.Dataset:
    """A copy of a ``Dataset`` that netCDF3 can store: each variable as :func:`serialisable`
    makes it (booleans as 0/1 bytes), the attributes likewise.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"flipped": ("sample", np.array([True, False]))},
    ...                 attrs={"insufficient": [3, 1], "where": None})
    >>> out = serialisable_dataset(ds)
    >>> out.flipped.dtype, out.attrs["insufficient"].tolist(), out.attrs["where"]
    (dtype('int8'), [3, 1], '')
    """
    variables = {}
    for name, variable in result.data_vars.items():
        if variable.dtype == bool:
            variable = variable.astype(np.int8)
        variables[name] = serialisable(variable)
    return xr.Dataset(variables, attrs=_attrs(result.attrs))


def _storable(name: Any, values: np.ndarray) -> np.ndarray:
    """``values`` in a type netCDF3 holds (byte, short, int, float, double, char)."""
    kind = values.dtype.kind
    if kind == "f" and values.dtype.itemsize < 4:
        return values.astype(np.float32)
    if kind in "iu" and values.dtype not in (np.int8, np.int16, np.int32):
        if values.size == 0 or (values.min() >= _INT32.min and values.max() <= _INT32.max):
            return values.astype(np.int32)
        if np.abs(values.astype(np.float64)).max() <= _EXACT_FLOAT:
            return values.astype(np.float64)
        raise ValueError(
            f"cannot write {name!r} to netCDF: integers beyond 2**53 fit neither int32 nor "
            "an exact float64"
        )
    if kind == "O" and not all(isinstance(v, str) for v in values.ravel()):
        # Mixed objects would come back changed: write text, with "" for a missing name
        # (xarray holds None in an object coordinate as NaN).
        text = ["" if v is None or v != v else str(v) for v in values.ravel()]
        return np.array(text, dtype=object).reshape(values.shape)
    return values


def _attrs(attrs: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, (bool, np.bool_)):  # netCDF has no boolean type
            value = int(value)
        elif value is None:
            value = ""
        elif isinstance(value, (list, tuple)):
            numbers = all(
                isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
                for v in value
            )
            value = np.asarray(value) if numbers and value else repr(value)
        elif not isinstance(value, (str, int, float, np.number, np.ndarray, bytes)):
            value = repr(value)
        out[str(key)] = value
    return out
