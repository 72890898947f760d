"""Method families, chosen by ``config.method.name``.

Each family is one module of this package with a ``Method`` subclass (see ``base``).
Adding a family: write the module, add its class to ``METHODS``, give it a paper config
under ``configs/papers/`` and tests.
"""

import ml_collections

from jaxsel.config_errors import choice
from jaxsel.methods.base import EpochChoice, FullData, Method
from jaxsel.methods.budgeted import Budgeted
from jaxsel.methods.coreset import Coreset
from jaxsel.methods.dynamics import TrainingDynamics
from jaxsel.methods.infobatch import InfoBatch
from jaxsel.methods.prioritization import Prioritization
from jaxsel.methods.rho_loss import IrreducibleLoss, RhoLoss
from jaxsel.methods.selective_backprop import SelectiveBackprop

METHODS: dict[str, type[Method]] = {
    FullData.name: FullData,
    Prioritization.name: Prioritization,
    TrainingDynamics.name: TrainingDynamics,
    Coreset.name: Coreset,
    Budgeted.name: Budgeted,
    SelectiveBackprop.name: SelectiveBackprop,
    InfoBatch.name: InfoBatch,
    IrreducibleLoss.name: IrreducibleLoss,
    RhoLoss.name: RhoLoss,
}


def get_method(name: str) -> type[Method]:
  """The method class called ``name``; UserError listing the valid names otherwise."""
  choice(name, "method.name", METHODS)
  return METHODS[name]


def default_config(name: str) -> ml_collections.ConfigDict:
  """``config.method`` of method ``name`` with its defaults."""
  return get_method(name).default_config()


__all__ = ["Budgeted", "Coreset", "EpochChoice", "FullData", "InfoBatch", "IrreducibleLoss",
           "METHODS", "Method", "Prioritization", "RhoLoss", "SelectiveBackprop",
           "TrainingDynamics", "default_config", "get_method"]
