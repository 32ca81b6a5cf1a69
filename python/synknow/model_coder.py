"""The transformer coder and the two-part code: a corpus's token stream coded with a trained
model's next-token probabilities (docs/compression.md#transformer-coder).

Every document is coded on its own, from its ``BOS`` (given, not coded) to its ``EOS`` (coded:
it tells the decoder where the document ends), with the model's context: token ``t`` is coded
with the model's distribution after ``tokens[:t]``, positions from 0, as the evaluation scores
a test document. A document longer than ``context_length + 1`` tokens is refused: the model
never conditions on more than its context (training refuses documents longer than it).

Bit-exact decoding: the decoder must compute the encoder's probabilities bit for bit. Both run
the same computation in the same order: the model in float32 on the CPU, one thread,
deterministic algorithms, documents in batches of ``batch_docs``, one position at a time with
the attention keys and values of earlier positions kept (finished documents padded with
``PAD``), the softmax in float64 from the float32 logits. The encoder does not use the cheaper
teacher-forced pass, whose different shapes could round differently; it computes that pass as
well, as the model's measured loss, and refuses to write a file when the two disagree by more
than float32 rounding. The probabilities go to ``constriction``'s range coder through its leaky
categorical model (24-bit fixed point, every token at least ``2^-24``), which quantises
identically on both sides.

The file is self-checking: a SHA-256 of everything after it, the SHA-256 of the model weights
(the state dict in sorted-name order: name, dtype, shape, raw bytes) and of the vocabulary, and
one of the original tokens, so a different model, a damaged file or a decoder whose arithmetic
differs (another torch build or CPU) is refused with a one-line ``synknow.CorpusError``.

Size bound: the range coder's payload is at most the coding pass's ``sum -log2 p`` plus
``n log2(2^24 / (2^24 - V))`` for ``n`` coded tokens over a vocabulary of ``V`` (the leaky
quantisation) plus 64 bits (the final flush): :attr:`ModelCode.bound_bits`. It is smaller than
``sum -log2 p`` only through the quantisation's floor, by at most what
:attr:`ModelCode.floor_bits` says.

Example (``run_dir`` is a training run, docs/training.md):

    data = compress_with_model(run_dir, corpus, split="test")
    out = decompress_with_model(data, run_dir)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import lzma
import math
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synknow.corpus import Corpus, CorpusError, load_corpus
from synknow.extras import missing
from synknow.tokens import BOS, EOS, PAD

if TYPE_CHECKING:
    import torch

    from synknow.train.model import GPT

__all__ = [
    "PRECISION_BITS",
    "SPLITS",
    "WEIGHT_BITS",
    "ModelCode",
    "ModelDecompressed",
    "TwoPartCode",
    "compress_with_model",
    "decompress_any_model_file",
    "decompress_two_part",
    "decompress_with_model",
    "is_model_file",
    "is_two_part_file",
    "load_model",
    "measured_loss_bits",
    "model_code",
    "quantise_weights",
    "two_part_code",
    "vocab_sha256",
    "weights_sha256",
]

PRECISION_BITS = 24
"""Fixed-point precision of constriction's categorical models (Python bindings)."""
SPLITS = ("test", "train", "all")
WEIGHT_BITS = (8, 16, 32)
_MAGIC_MODEL = b"SKTCODE1"
_MAGIC_TWO_PART = b"SKTWOPT1"
_FLUSH_BITS = 64  # the range coder ends on whole 32-bit words: at most two more than needed
_BATCH_DOCS = 64
_CODING_PASS_RTOL = 1e-4


# ---- model and corpus identity ----------------------------------------------------------------


def _constriction() -> Any:
    try:
        import constriction
    except ImportError:
        raise missing("constriction", "the transformer coder") from None
    return constriction


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a model's state dict: per entry in sorted-name order its name, dtype, shape
    and raw (native little-endian) bytes."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def vocab_sha256(strings: list[str] | tuple[str, ...]) -> str:
    """SHA-256 of a vocabulary's display strings; its first 16 hex digits are the run record's
    ``vocab_hash`` (:func:`synknow.train.rundir.vocab_hash`)."""
    return hashlib.sha256("\n".join(strings).encode()).hexdigest()


def load_model(run_dir: str | os.PathLike[str]) -> tuple[GPT, dict[str, Any]]:
    """The latest checkpoint's model of a run (float32, CPU, eval mode) and the run record,
    without opening the run's corpus (the decoder may not have it)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise missing("torch", "the transformer coder") from None
    from synknow.train.checkpoint import latest_checkpoint, read_state, restore_checkpoint
    from synknow.train.model import GPT
    from synknow.train.rundir import read_run_record

    run = Path(run_dir)
    stored, cfg = read_run_record(run)
    checkpoint = latest_checkpoint(run)
    if checkpoint is None:
        raise ValueError(f"run {run} has no complete checkpoint")
    state = read_state(checkpoint)
    model = GPT(cfg.model)
    restore_checkpoint(checkpoint, state, model, None)
    model = model.float().cpu().eval()
    stored = {**stored, "step": int(state["step"]), "n_train": cfg.data.n_train}
    return model, stored


def _split_docs(stored: dict[str, Any], corpus: Corpus, split: str) -> tuple[int, int]:
    """``(first, stop)`` document indices of a run's split of ``corpus``."""
    n_test = int(stored["n_test"])
    n = corpus.n_docs
    if split == "all":
        return 0, n
    if n_test >= n:
        raise ValueError(f"the run's n_test={n_test} leaves no training documents in {n}")
    if split == "test":
        return n - n_test, n
    if split == "train":
        n_train = stored.get("n_train") or n - n_test
        return 0, min(int(n_train), n - n_test)
    raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


def _documents(corpus: Corpus, first: int, stop: int, context_length: int) -> list[np.ndarray]:
    offsets = np.asarray(corpus.doc_offsets, dtype=np.int64)
    tokens = np.asarray(corpus.tokens)
    docs = []
    for d in range(first, stop):
        doc = tokens[offsets[d] : offsets[d + 1]].astype(np.int64)
        if len(doc) < 2 or doc[0] != BOS or doc[-1] != EOS or (doc[1:-1] == EOS).any():
            raise ValueError(
                f"document {d} is not BOS ... EOS with one EOS at its end; the transformer "
                "coder needs the EOS to mark where a document ends"
            )
        if len(doc) - 1 > context_length:
            raise ValueError(
                f"document {d} has {len(doc)} tokens; the model's context of {context_length} "
                f"codes documents of at most {context_length + 1}"
            )
        docs.append(doc)
    return docs


# ---- the coding pass ---------------------------------------------------------------------------


@contextlib.contextmanager
def _deterministic_cpu() -> Iterator[None]:
    """One thread and deterministic algorithms while coding; the caller's settings after."""
    import torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.no_grad():
            yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)


def _probabilities(logits: torch.Tensor) -> np.ndarray:
    z = logits.detach().double().numpy()
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    if not np.isfinite(z).all():
        raise ValueError("the model's logits are not finite: it cannot code (a diverged run?)")
    return z


# choose(batch_start, rows, t, probabilities of those rows) -> the tokens at position t
_Choose = Callable[[int, np.ndarray, int, np.ndarray], np.ndarray]


class _Incremental:
    """The model's forward pass one position at a time over a batch, with the attention keys
    and values of earlier positions kept (a KV cache), so that coding a document of ``T``
    tokens costs ``T`` one-token steps. It is the computation of :meth:`GPT.forward` (eval mode,
    positions from 0) taken apart; the encoder checks it against the model's own teacher-forced
    loss."""

    def __init__(self, model: GPT, batch: int):
        import torch

        cfg = model.config
        assert cfg.d_model is not None and cfg.n_head is not None
        self.model = model
        self.position = 0
        shape = (batch, cfg.n_head, cfg.context_length, cfg.d_model // cfg.n_head)
        self.keys = [torch.zeros(shape) for _ in model.blocks]
        self.values = [torch.zeros(shape) for _ in model.blocks]

    def step(self, tokens: np.ndarray) -> torch.Tensor:
        """Float32 logits ``(batch, V)`` after feeding ``tokens`` (one per row) at the next
        position."""
        import torch
        import torch.nn.functional as F

        from synknow.train.model import Attention, Block, _rotate

        m, p = self.model, self.position
        x = m.tok_emb(torch.from_numpy(np.ascontiguousarray(tokens))[:, None])
        b, _, d = x.shape
        rope = (m.rotary.cos[p : p + 1], m.rotary.sin[p : p + 1])
        for block, keys, values in zip(m.blocks, self.keys, self.values, strict=True):
            assert isinstance(block, Block) and isinstance(block.attn, Attention)
            attn = block.attn
            h = attn.n_head
            q, k, v = attn.qkv(block.norm1(x)).view(b, 1, 3, h, d // h).permute(2, 0, 3, 1, 4)
            keys[:, :, p : p + 1] = _rotate(k, *rope)
            values[:, :, p : p + 1] = v
            y = F.scaled_dot_product_attention(
                _rotate(q, *rope), keys[:, :, : p + 1], values[:, :, : p + 1]
            )
            x = x + attn.proj(y.transpose(1, 2).reshape(b, 1, d))
            x = x + block.mlp(block.norm2(x))
        self.position += 1
        return m.logits(m.norm_f(x)[:, -1])


def _coding_pass(model: GPT, n_docs: int, batch_docs: int, choose: _Choose) -> list[np.ndarray]:
    """The computation shared by encoder and decoder; returns the documents' tokens."""
    ctx = model.config.context_length
    docs: list[np.ndarray] = []
    for start in range(0, n_docs, batch_docs):
        b = min(batch_docs, n_docs - start)
        seqs = np.full((b, ctx + 1), PAD, dtype=np.int64)
        seqs[:, 0] = BOS
        length = np.zeros(b, dtype=np.int64)  # 0 while the document is open
        forward = _Incremental(model, b)
        t = 1
        while (length == 0).any():
            if t > ctx:
                raise CorpusError(
                    f"a decoded document reaches the context of {ctx} tokens without EOS: the "
                    "file is damaged or was coded with another model"
                )
            probs = _probabilities(forward.step(seqs[:, t - 1]))
            rows = np.flatnonzero(length == 0)
            chosen = choose(start, rows, t, probs[rows])
            seqs[rows, t] = chosen
            length[rows[chosen == EOS]] = t + 1
            t += 1
        docs.extend(seqs[i, : length[i]].copy() for i in range(b))
    return docs


def measured_loss_bits(model: GPT, docs: list[np.ndarray], batch_docs: int = _BATCH_DOCS) -> float:
    """The model's loss on the documents, ``sum -log2 p`` over every token after ``BOS``, from
    one teacher-forced forward pass per batch (the evaluation's computation, not the coder's)."""
    from synknow.train.eval import sequence_bits

    with _deterministic_cpu():
        return float(sequence_bits(model, docs, batch_rows=batch_docs).sum())


# ---- the file ----------------------------------------------------------------------------------


def _pack(magic: bytes, header: dict[str, Any], body: bytes) -> bytes:
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    rest = struct.pack("<I", len(text)) + text + body
    return magic + hashlib.sha256(rest).digest() + rest


def _unpack(data: bytes, magic: bytes, what: str) -> tuple[dict[str, Any], bytes]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[:8] != magic:
        raise CorpusError(f"not a {what} file (bad magic {data[:8]!r})")
    if len(data) < 44:
        raise CorpusError(f"{what} file is truncated ({len(data)} bytes)")
    rest = data[40:]
    if hashlib.sha256(rest).digest() != data[8:40]:
        raise CorpusError(f"{what} file is damaged: checksum mismatch (truncated or altered)")
    (n,) = struct.unpack("<I", rest[:4])
    try:
        header = json.loads(rest[4 : 4 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:  # only reachable with a forged sum
        raise CorpusError(f"{what} file has an unreadable header ({e})") from None
    return header, rest[4 + n :]


def is_model_file(data: bytes) -> bool:
    """Whether ``data`` was made by :func:`compress_with_model`."""
    return bytes(data[:8]) == _MAGIC_MODEL


def is_two_part_file(data: bytes) -> bool:
    """Whether ``data`` was made by :func:`two_part_code`."""
    return bytes(data[:8]) == _MAGIC_TWO_PART


def _tokens_sha256(docs: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for d in docs:
        h.update(struct.pack("<Q", len(d)))
        h.update(np.asarray(d, dtype="<i8").tobytes())
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class ModelCode:
    """A corpus coded with a model, and the numbers to check its size.

    Attributes:
        data: the file's bytes.
        header_bytes: everything but the range coder's payload.
        n_docs, n_tokens: documents and tokens (``BOS`` included) coded.
        coded_tokens: tokens that went through the coder (all but each ``BOS``).
        coding_bits: ``sum -log2 p`` of the coding pass's probabilities.
        floor_bits: ``sum -log2 min(1, p + 2^-23)``: the quantisation can raise a probability by
            at most ``2^-23``, so the payload is at least this (less the final flush). It is
            below ``coding_bits`` where the model gives a token less than about ``2^-23``: the
            coder's floor caps such a token near 24 bits, so the file can be *smaller* than
            the loss of a model that is badly wrong about some tokens.
        loss_bits: the model's measured loss on the same tokens
            (:func:`measured_loss_bits`, a separate teacher-forced pass).
        vocab_size: ``V`` of the model.
    """

    data: bytes
    header_bytes: int
    n_docs: int
    n_tokens: int
    coded_tokens: int
    coding_bits: float
    floor_bits: float
    loss_bits: float
    vocab_size: int

    @property
    def payload_bits(self) -> int:
        return 8 * (len(self.data) - self.header_bytes)

    @property
    def quantisation_bits_per_token(self) -> float:
        """``log2(2^24 / (2^24 - V))``: what the leaky quantisation may cost per coded token."""
        return -math.log2(1.0 - self.vocab_size / 2.0**PRECISION_BITS)

    @property
    def bound_bits(self) -> float:
        """Upper bound on the payload: coding bits + quantisation overhead + the final flush."""
        return self.coding_bits + self.coded_tokens * self.quantisation_bits_per_token + _FLUSH_BITS


def _encode(
    model: GPT, docs: list[np.ndarray], header: dict[str, Any], batch_docs: int
) -> tuple[bytes, int, float, float]:
    c = _constriction()
    family = c.stream.model.Categorical(perfect=False)
    encoder = c.stream.queue.RangeEncoder()
    bits = [0.0, 0.0]
    lift = 2.0 ** (1 - PRECISION_BITS)

    def choose(start: int, rows: np.ndarray, t: int, probs: np.ndarray) -> np.ndarray:
        symbols = np.array([docs[start + r][t] for r in rows], dtype=np.int32)
        encoder.encode(symbols, family, probs)
        p = probs[np.arange(len(rows)), symbols]
        bits[0] -= float(np.log2(p).sum())
        bits[1] -= float(np.log2(np.minimum(1.0, p + lift)).sum())
        return symbols

    with _deterministic_cpu():
        _coding_pass(model, len(docs), batch_docs, choose)
    payload = np.asarray(encoder.get_compressed(), dtype="<u4").tobytes()
    header = {**header, "payload_bytes": len(payload)}
    data = _pack(_MAGIC_MODEL, header, payload)
    return data, len(data) - len(payload), bits[0], bits[1]


def model_code(
    run_dir: str | os.PathLike[str],
    corpus: Corpus | str | os.PathLike[str],
    split: str = "test",
    *,
    batch_docs: int = _BATCH_DOCS,
    _model: tuple[GPT, dict[str, Any]] | None = None,
) -> ModelCode:
    """Codes a split (``test``: the run's last ``n_test`` documents, ``train``, ``all``) of
    ``corpus`` with the latest checkpoint of the run in ``run_dir``; the file and its numbers."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not isinstance(corpus, Corpus):
        corpus = load_corpus(corpus)
    if not 1 <= batch_docs <= 1 << 16:
        raise ValueError(f"batch_docs must be in [1, 65536], got {batch_docs}")
    from synknow.train.rundir import check_vocab

    model, stored = _model if _model is not None else load_model(run_dir)
    check_vocab(stored["corpus"], corpus, f"run {run_dir}")
    vocab_size = int(model.config.vocab_size or 0)
    if vocab_size >= 1 << (PRECISION_BITS - 1):
        raise ValueError(f"vocabulary of {vocab_size} tokens is too large for 24-bit coding")
    first, stop = _split_docs(stored, corpus, split)
    docs = _documents(corpus, first, stop, model.config.context_length)
    import torch

    header = {
        "format": 1,
        "weights_sha256": weights_sha256(model),
        "vocab_sha256": vocab_sha256(corpus.vocab.strings),
        "vocab_size": vocab_size,
        "context_length": model.config.context_length,
        "step": stored.get("step"),
        "split": split,
        "first_doc": first,
        "n_docs": len(docs),
        "n_tokens": int(sum(len(d) for d in docs)),
        "batch_docs": batch_docs,
        "precision_bits": PRECISION_BITS,
        "tokens_sha256": _tokens_sha256(docs),
        "token_dtype": np.asarray(corpus.tokens).dtype.str,
        "torch": torch.__version__,
    }
    data, header_bytes, coding_bits, floor_bits = _encode(model, docs, header, batch_docs)
    loss_bits = measured_loss_bits(model, docs, batch_docs)
    # The one-token steps and the teacher-forced pass differ only by float32 rounding (about
    # 1e-6 relative); more means the steps no longer compute the model (a changed GPT).
    if abs(coding_bits - loss_bits) > _CODING_PASS_RTOL * max(loss_bits, 1.0):
        raise ValueError(
            f"the coder's one-token forward disagrees with the model's loss ({coding_bits:.6g} "
            f"vs {loss_bits:.6g} bits): synknow.model_coder does not support this architecture"
        )
    return ModelCode(
        data=data,
        header_bytes=header_bytes,
        n_docs=len(docs),
        n_tokens=header["n_tokens"],
        coded_tokens=header["n_tokens"] - len(docs),
        coding_bits=coding_bits,
        floor_bits=floor_bits,
        loss_bits=loss_bits,
        vocab_size=vocab_size,
    )


def compress_with_model(
    run_dir: str | os.PathLike[str],
    corpus: Corpus | str | os.PathLike[str],
    split: str = "test",
    *,
    batch_docs: int = _BATCH_DOCS,
) -> bytes:
    """The bytes of a file coding ``split`` of ``corpus`` with the run's model
    (:func:`model_code` gives its size checks too)."""
    return model_code(run_dir, corpus, split, batch_docs=batch_docs).data


@dataclasses.dataclass(frozen=True)
class ModelDecompressed:
    """Decoded documents: ``tokens`` (the corpus's dtype), ``doc_offsets`` and the file's
    header (split, first document, step, hashes)."""

    tokens: np.ndarray
    doc_offsets: np.ndarray
    header: dict[str, Any]

    @property
    def n_docs(self) -> int:
        return len(self.doc_offsets) - 1


def _decode(model: GPT, header: dict[str, Any], payload: bytes) -> ModelDecompressed:
    c = _constriction()
    if len(payload) % 4 or len(payload) != header.get("payload_bytes"):
        raise CorpusError("transformer-coded file is truncated (payload length mismatch)")
    family = c.stream.model.Categorical(perfect=False)
    decoder = c.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))

    def choose(start: int, rows: np.ndarray, t: int, probs: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(decoder.decode(family, probs), dtype=np.int64)
        except Exception as e:  # constriction's error for data its coder never wrote
            raise CorpusError(f"transformer-coded payload cannot be decoded ({e})") from None

    with _deterministic_cpu():
        docs = _coding_pass(model, int(header["n_docs"]), int(header["batch_docs"]), choose)
    if _tokens_sha256(docs) != header["tokens_sha256"]:
        import torch

        raise CorpusError(
            "decoded tokens do not match the file's token checksum: this machine computes "
            f"different probabilities (coded with torch {header.get('torch')}, decoding with "
            f"torch {torch.__version__}; the coder needs the same torch build and CPU kind)"
        )
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(d) for d in docs])
    flat = np.concatenate(docs) if docs else np.zeros(0, dtype=np.int64)
    return ModelDecompressed(flat.astype(np.dtype(header["token_dtype"])), offsets, header)


def _check_model(header: dict[str, Any], model: GPT, stored: dict[str, Any], where: str) -> None:
    digest = weights_sha256(model)
    if digest != header.get("weights_sha256"):
        raise CorpusError(
            f"model mismatch: the file was coded with weights sha256 "
            f"{str(header.get('weights_sha256'))[:16]}..., {where} has {digest[:16]}..."
        )
    vocab = str(header.get("vocab_sha256", ""))
    if stored and vocab[:16] != stored["corpus"]["vocab_hash"]:
        raise CorpusError(
            f"vocabulary mismatch: the file's vocabulary hash {vocab[:16]} is not the one of "
            f"{where} ({stored['corpus']['vocab_hash']})"
        )


def decompress_with_model(
    data: bytes,
    run_dir: str | os.PathLike[str],
    *,
    _model: tuple[GPT, dict[str, Any]] | None = None,
) -> ModelDecompressed:
    """Decodes a file made by :func:`compress_with_model` with the same run's model; another
    model, a damaged file or different arithmetic raise ``synknow.CorpusError``."""
    header, payload = _unpack(data, _MAGIC_MODEL, "transformer-coded")
    model, stored = _model if _model is not None else load_model(run_dir)
    _check_model(header, model, stored, f"run {run_dir} (step {stored.get('step')})")
    return _decode(model, header, payload)


# ---- the two-part code -------------------------------------------------------------------------


def quantise_weights(model: GPT, bits: int) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """The model's parameters (each shared tensor once) at ``bits`` per weight: the raw
    quantised bytes, their description, and the float32 tensors they decode to.

    ``32``: the float32 bytes; ``16``: IEEE half precision; ``8``: symmetric per-tensor int8,
    ``round(w / s)`` with ``s = max|w| / 127`` (the scale kept as a float32).
    """
    import torch

    if bits not in WEIGHT_BITS:
        raise ValueError(f"weight_bits must be one of {WEIGHT_BITS}, got {bits}")
    raw = bytearray()
    tensors: list[dict[str, Any]] = []
    decoded: dict[str, Any] = {}
    for name, p in model.named_parameters():
        w = p.detach().float().cpu().contiguous()
        entry: dict[str, Any] = {"name": name, "shape": list(w.shape)}
        if bits == 32:
            q, back = w.numpy().astype("<f4"), w.clone()
        elif bits == 16:
            q = w.numpy().astype("<f2")
            back = torch.from_numpy(q.astype(np.float32))
        else:
            peak = float(w.abs().max()) if w.numel() else 0.0
            scale = float(np.float32(peak / 127.0)) if peak > 0 else 1.0
            q = np.clip(np.rint(w.numpy() / np.float32(scale)), -127, 127).astype(np.int8)
            back = torch.from_numpy(q.astype(np.float32) * np.float32(scale))
            entry["scale"] = scale
        raw += q.tobytes()
        tensors.append(entry)
        decoded[name] = back
    return bytes(raw), {"weight_bits": bits, "tensors": tensors}, decoded


def _dequantise(raw: bytes, description: dict[str, Any]) -> dict[str, Any]:
    import torch

    bits = int(description["weight_bits"])
    dtype = {32: "<f4", 16: "<f2", 8: "i1"}[bits]
    out: dict[str, Any] = {}
    offset = 0
    for entry in description["tensors"]:
        n = int(np.prod(entry["shape"], dtype=np.int64))
        size = n * np.dtype(dtype).itemsize
        if offset + size > len(raw):
            raise CorpusError("two-part file's weights are shorter than their description")
        q = np.frombuffer(raw, dtype=dtype, count=n, offset=offset).astype(np.float32)
        if bits == 8:
            q = q * np.float32(entry["scale"])
        out[entry["name"]] = torch.from_numpy(q.reshape(entry["shape"]).copy())
        offset += size
    return out


def _model_from(config: dict[str, Any], weights: dict[str, Any]) -> GPT:
    import torch

    from synknow.train.config import ModelConfig
    from synknow.train.model import GPT

    model = GPT(ModelConfig(**config)).float().eval()
    with torch.no_grad():
        params = dict(model.named_parameters())
        if set(params) != set(weights):
            raise CorpusError("two-part file's weights do not match its architecture")
        for name, p in params.items():
            if tuple(p.shape) != tuple(weights[name].shape):
                raise CorpusError(f"two-part file's weight {name} has the wrong shape")
            p.copy_(weights[name])
    return model


@dataclasses.dataclass(frozen=True)
class TwoPartCode:
    """A two-part code: the model (architecture and quantised weights, lzma-coded) and the data
    coded with that quantised model, beside the structure function.

    Attributes:
        data: the self-contained file's bytes (decoded by :func:`decompress_two_part`).
        weight_bits: bits per weight before lzma.
        n_weights: parameters coded (a shared tensor once).
        model_bits: the model part: architecture, tensor table and the lzma-coded weights.
        data_bits: the data part: the transformer-coded file of the documents.
        data_code: its :class:`ModelCode` (loss of the quantised model, bound).
        h_bits: ``h(C)`` at ``C = model_bits`` for the same documents, or None when they are
            not a prefix of the corpus (the structure function is defined on a prefix).
        mdl_bits: the shortest two-part code of the structure function's family (None likewise).
    """

    data: bytes
    weight_bits: int
    n_weights: int
    model_bits: int
    data_bits: int
    data_code: ModelCode
    h_bits: float | None
    mdl_bits: float | None

    @property
    def total_bits(self) -> int:
        return self.model_bits + self.data_bits


def two_part_code(
    run_dir: str | os.PathLike[str],
    corpus: Corpus | str | os.PathLike[str],
    split: str = "train",
    *,
    weight_bits: int = 16,
    batch_docs: int = _BATCH_DOCS,
) -> TwoPartCode:
    """The two-part code of a split of ``corpus`` under the run's model at ``weight_bits`` per
    weight: the quantised weights coded with lzma (preset 9, extreme), then the documents coded
    with the *quantised* model, so that the file decodes on its own."""
    if not isinstance(corpus, Corpus):
        corpus = load_corpus(corpus)
    model, stored = load_model(run_dir)
    raw, description, decoded = quantise_weights(model, weight_bits)
    config = dataclasses.asdict(model.config)
    quantised = _model_from(config, decoded)
    code = model_code(run_dir, corpus, split, batch_docs=batch_docs, _model=(quantised, stored))
    weights = lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)
    header = {"format": 1, "model_config": config, "weights_bytes": len(weights), **description}
    data = _pack(_MAGIC_TWO_PART, header, weights + code.data)
    model_bits = 8 * (len(data) - len(code.data))
    h_bits = mdl_bits = None
    first, stop = _split_docs(stored, corpus, split)
    if first == 0:
        from synknow.structure import structure_function

        sf = structure_function(corpus, stop)
        h_bits, mdl_bits = float(sf.h(model_bits)), sf.mdl_bits
    return TwoPartCode(
        data=data,
        weight_bits=weight_bits,
        n_weights=sum(int(np.prod(t["shape"])) for t in description["tensors"]),
        model_bits=model_bits,
        data_bits=8 * len(code.data),
        data_code=code,
        h_bits=h_bits,
        mdl_bits=mdl_bits,
    )


def decompress_two_part(data: bytes) -> ModelDecompressed:
    """Decodes a file made by :func:`two_part_code`: no run directory needed."""
    header, body = _unpack(data, _MAGIC_TWO_PART, "two-part")
    n = int(header["weights_bytes"])
    try:
        raw = lzma.decompress(body[:n])
    except lzma.LZMAError as e:  # only reachable with a forged checksum
        raise CorpusError(f"two-part file's weights cannot be decoded ({e})") from None
    model = _model_from(header["model_config"], _dequantise(raw, header))
    inner, payload = _unpack(body[n:], _MAGIC_MODEL, "transformer-coded")
    _check_model(inner, model, {}, "the two-part file's quantised model")
    return _decode(model, inner, payload)


def decompress_any_model_file(
    data: bytes, run_dir: str | os.PathLike[str] | None
) -> ModelDecompressed:
    """A two-part file on its own, a transformer-coded one with ``run_dir``'s model."""
    if is_two_part_file(data):
        return decompress_two_part(data)
    if run_dir is None:
        raise ValueError("this file was coded with a transformer: pass its run (--model RUN_DIR)")
    return decompress_with_model(data, run_dir)
