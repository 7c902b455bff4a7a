"""``Mitigation``: what ``Model.mitigate`` returns, an edited copy with its honest report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import xarray as xr

from ..kernels.accuracy import accuracy
from ..kernels.decision import decision_features
from ..kernels.mitigate import Mitigation as Fitted
from ..results.report import accuracy_report

if TYPE_CHECKING:
    from .model import Model


class Mitigation:
    """The result of :meth:`Model.mitigate`.

    Attributes
    ----------
    model : Model
        A new ``ia.Model`` over :attr:`module`, named ``"<name> (mitigated)"``.
    module : torch.nn.Module
        The edited copy: its decision layer is new; every other parameter and buffer is
        *shared* with the user's module (not copied), so changing the user's backbone in
        place changes the copy's too. The user's module itself is left as it was.
    report : xarray.Dataset
        Accuracies by ``version`` (``before``, ``after``, and ``control`` when asked for) on
        the data that chose the checkpoint (``val_data``, else ``data``): not held out;
        :meth:`evaluate` scores held-out data the same way.
    control_model, control_module
        The control (the same training without the retaining-ratio term), or ``None``.
    ratio : float
        The target retaining ratio o used.
    neurons : list of int
        The neurons the class was taught to rely less on.
    fitted
        The kernels' result (the fits, with every epoch's validation accuracy).
    """

    def __init__(self, fitted: Fitted, model: Model, control: Model | None, attrs: dict):
        self.fitted = fitted
        self.model = model
        self.module = fitted.module
        self.control_model = control
        self.control_module = fitted.control_module
        self.ratio = fitted.ratio
        self.neurons = fitted.neurons.tolist()
        self._attrs = attrs
        self.report = self._report(fitted.report.before, fitted.report.after, fitted.report.control)

    def __repr__(self) -> str:
        where = self.report.attrs["evaluated_on"]
        lines = [
            f"Mitigation of class {self._attrs['cls']} by neurons {self.neurons}; accuracy on "
            f"{where} (the data that chose the checkpoint)"
        ]
        lines.append(_table(self.report))
        return "\n".join(lines)

    def _report(self, before: Any, after: Any, control: Any, **extra: Any) -> xr.Dataset:
        versions = {"before": before, "after": after}
        if control is not None:
            versions["control"] = control
        return accuracy_report(versions, self.model.info, {**self._attrs, **extra})

    def evaluate(self, data: Any, groups: Any = None) -> xr.Dataset:
        """The report's accuracies on other (held-out) ``data``: an ``(inputs, labels)``
        pair or batches of them; ``groups`` gives one group id per sample.

        Parameters
        ----------
        data : (inputs, labels) or iterable of batches
        groups : sequence of int, optional

        Returns
        -------
        xarray.Dataset
            The same variables as :attr:`report`, with ``evaluated_on="evaluate"``.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> torch.manual_seed(0) is not None
        True
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).eval()
        >>> x, y = torch.randn(60, 4), torch.randint(0, 3, (60,))
        >>> fix = ia.model(net).mitigate([0, 1], 2, (x, y), epochs=2, control=True)
        >>> held_out = fix.evaluate((torch.randn(30, 4), torch.randint(0, 3, (30,))))
        >>> held_out.overall.version.values.tolist()
        ['before', 'after', 'control']
        """
        fitted = self.fitted
        decision = fitted.decision
        z, y = decision_features(self.module, decision, data, argument="data")
        if y is None:
            raise ValueError("data: labels are needed to measure accuracy; pass (inputs, labels)")
        if groups is not None:
            groups = torch.as_tensor(groups).to(y.device)

        def score(weight: torch.Tensor, bias: torch.Tensor) -> Any:
            return accuracy(weight, bias, z, y, groups)

        control = fitted.control_fit
        return self._report(
            score(decision.weight, decision.bias),
            score(fitted.fit.weight, fitted.fit.bias),
            None if control is None else score(control.weight, control.bias),
            evaluated_on="evaluate",
        )


def _table(report: xr.Dataset) -> str:
    """The report as a small text table, in percent."""
    names = [v for v in ("overall", "worst_class", "worst_group") if v in report]
    head = "version    " + "".join(f"{n:>13}" for n in names)
    rows = [head]
    for version in report.version.values.tolist():
        cells = "".join(f"{100 * float(report[n].sel(version=version)):>12.1f}%" for n in names)
        rows.append(f"{version:<11}{cells}")
    return "\n".join(rows)
