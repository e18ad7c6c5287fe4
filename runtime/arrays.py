"""Array types shared by the stages: a graph's outputs by name, one row per feature."""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

Array = npt.NDArray[Any]
Outputs = dict[str, Array]
