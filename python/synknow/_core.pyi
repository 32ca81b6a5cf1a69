# Hand-written stubs for the Rust extension synknow._core (rust/synknow-py).
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

def validate_config(config_json: str) -> str: ...
def grammar_info(config_json: str) -> dict[str, Any]: ...
def vocab(config_json: str) -> list[str]: ...
def theta(config_json: str) -> list[list[float]]: ...
def sample(config_json: str, n_docs: int, threads: int | None = None) -> dict[str, np.ndarray]: ...
def save_arrays(
    path: str,
    config_json: str,
    arrays: list[tuple[str, str, list[int], npt.NDArray[np.uint8]]],
    overwrite: bool = False,
) -> None: ...
def generate_to_dir(
    config_json: str,
    n_docs: int,
    path: str,
    shard_docs: int = 1_000_000,
    threads: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], object] | None = None,
) -> tuple[int, int, int]: ...
def xxh3_64(data: npt.NDArray[np.uint8]) -> str: ...
def expected_entities(n: float, alpha: float, beta: float) -> float: ...
