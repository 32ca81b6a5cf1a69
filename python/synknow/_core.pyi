# Hand-written stubs for the Rust extension synknow._core (rust/synknow-py).
from collections.abc import Callable
from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "CorpusError",
    "Sampler",
    "__version__",
    "bayes_curve",
    "capacity_limited_loss",
    "closed_form_per_doc",
    "closed_form_total",
    "code_lengths",
    "compress",
    "decompress",
    "digamma",
    "expected_counts_of_counts",
    "expected_entities",
    "expected_entities_asymptotic",
    "expected_entity_entropy",
    "expected_new_probability",
    "expected_new_probability_asymptotic",
    "generate_part_to_dir",
    "generate_to_dir",
    "grammar_info",
    "merge_parts",
    "predictive_distributions",
    "sample",
    "save_arrays",
    "structure_function",
    "theta",
    "validate_config",
    "vocab",
    "xxh3_64",
]

__version__: str

class CorpusError(ValueError):
    """A corpus directory (or a set of arrays) that is truncated, altered or inconsistent."""

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
def generate_part_to_dir(
    config_json: str,
    n_docs: int,
    part: int,
    parts: int,
    path: str,
    shard_docs: int = 1_000_000,
    threads: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], object] | None = None,
) -> tuple[int, int, int, int, int]: ...
def merge_parts(
    part_dirs: list[str],
    path: str,
    overwrite: bool = False,
    progress: Callable[[int, int], object] | None = None,
) -> tuple[int, int, int]: ...

@final
class Sampler:
    """A streaming sampler: the documents of ``sample(config, n)`` batch after batch."""

    def __new__(cls, config_json: str, start: int = 0, threads: int | None = None) -> Sampler: ...
    @property
    def n_docs(self) -> int: ...
    @property
    def n_entities(self) -> int: ...
    def skip(self, n_docs: int) -> None: ...
    def next_batch(self, n_docs: int, stride: int = 1) -> dict[str, Any]: ...
    def entities(self) -> dict[str, np.ndarray]: ...

def xxh3_64(data: npt.NDArray[np.uint8]) -> str: ...
def expected_entities(n: float, alpha: float, beta: float) -> float: ...

# --- code lengths, learning curves, structure function, theory (rust/synknow-py/src/codelength.rs)
def code_lengths(
    config_json: str,
    tokens: npt.NDArray[np.uint16] | npt.NDArray[np.uint32],
    doc_offsets: npt.NDArray[np.uint64],
    keep_per_token: bool = True,
    threads: int | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> dict[str, Any]: ...
def closed_form_per_doc(
    config_json: str,
    doc_entity: npt.NDArray[np.uint32],
    sentence_attribute: npt.NDArray[np.uint16],
    sentence_template: npt.NDArray[np.uint16],
    entity_names: npt.NDArray[np.uint32],
    entity_values: npt.NDArray[np.uint32],
    n_docs: int,
) -> npt.NDArray[np.float64]: ...
def closed_form_total(
    config_json: str,
    doc_entity: npt.NDArray[np.uint32],
    sentence_attribute: npt.NDArray[np.uint16],
    sentence_template: npt.NDArray[np.uint16],
    entity_names: npt.NDArray[np.uint32],
    entity_values: npt.NDArray[np.uint32],
    n_docs: int,
) -> dict[str, float]: ...
def bayes_curve(
    config_json: str,
    tokens: npt.NDArray[np.uint16] | npt.NDArray[np.uint32],
    doc_offsets: npt.NDArray[np.uint64],
    n_train: int,
    n_test: int,
    checkpoints: list[int],
    threads: int | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> dict[str, Any]: ...
def structure_function(
    config_json: str,
    doc_entity: npt.NDArray[np.uint32],
    sentence_attribute: npt.NDArray[np.uint16],
    sentence_template: npt.NDArray[np.uint16],
    entity_names: npt.NDArray[np.uint32],
    entity_values: npt.NDArray[np.uint32],
    n_docs: int,
) -> dict[str, Any]: ...
def predictive_distributions(
    config_json: str,
    tokens: npt.NDArray[np.uint16] | npt.NDArray[np.uint32],
    doc_offsets: npt.NDArray[np.uint64],
    positions: npt.NDArray[np.uint64],
) -> npt.NDArray[np.float64]: ...
def expected_entities_asymptotic(n: float, alpha: float, beta: float) -> float: ...
def expected_new_probability(n: float, alpha: float, beta: float) -> float: ...
def expected_new_probability_asymptotic(n: float, alpha: float, beta: float) -> float: ...
def expected_counts_of_counts(n: int, c: int, alpha: float, beta: float) -> float: ...
def digamma(x: float) -> float: ...
def expected_entity_entropy(alpha: float, beta: float) -> float: ...
def capacity_limited_loss(
    config_json: str,
    tokens: npt.NDArray[np.uint16] | npt.NDArray[np.uint32],
    doc_offsets: npt.NDArray[np.uint64],
    n_train: int,
    n_test: int,
    checkpoints: list[int],
    capacities_bits: list[float],
    keep_doc_bits: bool = False,
    threads: int | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> dict[str, Any]: ...
def compress(
    config_json: str,
    tokens: npt.NDArray[np.uint16] | npt.NDArray[np.uint32],
    doc_offsets: npt.NDArray[np.uint64],
    progress: Callable[[int, int], object] | None = None,
) -> bytes: ...
def decompress(
    data: bytes,
    progress: Callable[[int, int], object] | None = None,
) -> dict[str, Any]: ...
