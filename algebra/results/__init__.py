"""Results: device frames labelled (``frames``), copied to the host as xarray (``arrays``),
and drawn (``plot``, the ``.ia`` accessor on xarray objects)."""
