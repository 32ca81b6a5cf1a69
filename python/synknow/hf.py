"""Hugging Face bridge (docs/integration.md#hugging-face): a fast tokenizer whose ids are
synknow's, and the evaluation of any causal language model by role and entity-frequency bucket
beside the exact Bayes reference.

``to_hf_tokenizer(vocab)`` (also ``corpus.vocab.to_hf_tokenizer()``) needs ``tokenizers`` and
``transformers`` (``pip install 'synknow[hf]'``); :func:`evaluate_model` needs torch, and
transformers only to score a ``transformers`` model.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synknow.corpus import ROLE_NAMES, Corpus, Vocab, load_corpus
from synknow.extras import missing
from synknow.tokens import BOS, EOS, IGNORE, PAD

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerFast

__all__ = [
    "to_hf_tokenizer",
    "evaluate_model",
    "hf_model_config",
    "load_hf_model",
    "ModelEvaluation",
    "Score",
]

# Rows of logits turned into float64 statistics at once: bounds the temporaries to ~256 MB.
_STATS_BYTES = 1 << 28


# ---- tokenizer ------------------------------------------------------------------------------


def to_hf_tokenizer(vocab: Vocab) -> PreTrainedTokenizerFast:
    """A ``transformers`` fast tokenizer whose token ids are ``vocab``'s.

    Encoding the text of a document (``corpus.decode(i)``) gives its token ids, ``BOS ... EOS``
    included (``add_special_tokens=False`` leaves them out); decoding with
    ``skip_special_tokens=True`` gives the text back. The tokenizer splits text the way
    :meth:`Vocab.decode` joins it: words at spaces, with the tokens it writes without a space
    before them (``.``, ``,``, ``'s``) split off; a display string that contains a space
    (``University of Baba``) is one added token matched as a whole. Words outside the
    vocabulary cannot be encoded (``WordLevel`` has no unknown token). ``bos_token``,
    ``eos_token`` and ``pad_token`` are synknow's ``BOS``, ``EOS`` and ``PAD``.

    Raises ``ValueError`` if two ids share a display string, or a display string is not read
    back as its own id (a vocabulary this word-level scheme cannot represent); checked here for
    every id, so a tokenizer that is returned round-trips every single token.
    """
    try:
        from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
        from tokenizers import processors as post
    except ModuleNotFoundError:
        raise missing("tokenizers", "to_hf_tokenizer") from None
    try:
        from transformers import PreTrainedTokenizerFast
    except ModuleNotFoundError:
        raise missing("transformers", "to_hf_tokenizer") from None

    strings = list(vocab.strings)
    specials = {PAD: strings[PAD], BOS: strings[BOS], EOS: strings[EOS]}
    ids: dict[str, int] = {}
    for i, s in enumerate(strings):
        if s in ids:
            raise ValueError(
                f"ids {ids[s]} and {i} share the display string {s!r}: text cannot tell them apart"
            )
        ids[s] = i
    words = [i for i in range(len(strings)) if i not in specials]
    # The tokens the rendering writes without a space before them: ".", ",", "'s". Read off
    # Vocab.decode itself (a token doubled renders as "ss" rather than "s s"), not a second list.
    attached = sorted(
        (strings[i] for i in words if vocab.decode(np.array([i, i])) == strings[i] * 2),
        key=len,
        reverse=True,
    )
    alternation = "|".join(re.escape(s) for s in attached)
    splitters: list[Any] = [pre_tokenizers.WhitespaceSplit()]
    if attached:
        splitters.append(pre_tokenizers.Split(Regex(alternation), behavior="isolated"))
    pre_tokenizer = pre_tokenizers.Sequence(splitters)

    tokenizer = Tokenizer(models.WordLevel(ids, unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizer
    # Display strings the splitter would cut (multi-word values) are matched whole, before it.
    whole = [
        AddedToken(strings[i], single_word=True, normalized=False)
        for i in words
        if [p for p, _ in pre_tokenizer.pre_tokenize_str(strings[i])] != [strings[i]]
    ]
    tokenizer.add_tokens(whole)
    tokenizer.add_special_tokens(
        [AddedToken(s, special=True, normalized=False) for s in specials.values()]
    )
    bos, eos = specials[BOS], specials[EOS]
    tokenizer.post_processor = post.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {bos} $B {eos}",  # two documents, as they follow in a corpus
        special_tokens=[(bos, BOS), (eos, EOS)],
    )
    # Decoding joins with one space, none before an attached token, as Vocab.decode does.
    steps: list[Any] = [decoders.Replace(Regex("^"), " ")]
    if attached:
        steps.append(decoders.Replace(Regex(f"^ (?=(?:{alternation})$)"), ""))
    steps += [decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    tokenizer.decoder = decoders.Sequence(steps)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        pad_token=specials[PAD],
        clean_up_tokenization_spaces=False,  # its English rules are not synknow's rendering
    )
    _check_every_token(fast, vocab, words)
    return fast


def _check_every_token(fast: Any, vocab: Vocab, words: list[int]) -> None:
    texts = [vocab.decode(np.array([i])) for i in words]
    try:
        encoded = fast(texts, add_special_tokens=False)["input_ids"]
    except Exception:  # the tokenizers library raises plain Exception for a word it lacks
        encoded = [_encode_or_none(fast, text) for text in texts]
    for i, got in zip(words, encoded, strict=True):
        if got != [i]:
            read = "cannot be read back" if got is None else f"is read back as ids {got}"
            raise ValueError(
                f"display string {vocab.strings[i]!r} (id {i}) {read}: this vocabulary cannot "
                "be represented by a word-level tokenizer"
            )
    # One sequence holding every token after another checks the decoder's spacing rule.
    if words and fast.decode(words) != vocab.decode(np.array(words)):
        raise ValueError("the tokenizer's decoder does not reproduce Vocab.decode's spacing")


def _encode_or_none(fast: Any, text: str) -> list[int] | None:
    try:
        return list(fast(text, add_special_tokens=False)["input_ids"])
    except Exception:
        return None


# ---- evaluation -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Score:
    """Mean bits per token of one role or frequency bucket, the model's beside the Bayes
    reference's on the same tokens (``None`` where there are no tokens or no reference)."""

    tokens: int
    bits: float | None
    bayes_bits: float | None
    docs: int | None = None  # buckets: test documents about entities of that training count


@dataclasses.dataclass(frozen=True)
class ModelEvaluation:
    """The result of :func:`evaluate_model`.

    ``roles`` by role name (``synknow.ROLE_NAMES``); ``buckets`` by frequency-bucket label (the
    entity's count in the training documents, ``synknow.tokens.frequency_bucket``), bits over all
    tokens of the bucket's documents; ``value_buckets`` the same over their value tokens only.
    ``report`` is the full report, with the keys of ``synknow.train.evaluate`` (knowledge
    accuracy, confidence, ...); :meth:`to_dict` returns it.
    """

    n_train: int
    n_test_docs: int
    n_tokens: int
    bits_per_token: float
    loss_bits: float
    bayes_bits_per_token: float | None
    roles: dict[str, Score]
    buckets: dict[str, Score]
    value_buckets: dict[str, Score]
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-serialisable report."""
        return dict(self.report)

    def table(self) -> str:
        """Plain-text table: bits per token by role and by frequency bucket, model and Bayes."""

        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.4f}"

        lines = [
            f"test docs {self.n_test_docs}, tokens {self.n_tokens}, n_train {self.n_train}",
            f"bits/token: model {f(self.bits_per_token)}, Bayes {f(self.bayes_bits_per_token)}"
            f"   (model loss per predicted token {f(self.loss_bits)})",
            "",
            f"{'role':<9}{'tokens':>9}{'model':>10}{'Bayes':>10}",
        ]
        for name, s in self.roles.items():
            lines.append(f"{name:<9}{s.tokens:>9}{f(s.bits):>10}{f(s.bayes_bits):>10}")
        lines += [
            "",
            f"{'bucket':<10}{'docs':>6}{'tokens':>9}{'model':>10}{'Bayes':>10}"
            f"{'values':>8}{'model':>10}{'Bayes':>10}",
        ]
        for label, s in self.buckets.items():
            v = self.value_buckets[label]
            lines.append(
                f"{label:<10}{s.docs or 0:>6}{s.tokens:>9}{f(s.bits):>10}{f(s.bayes_bits):>10}"
                f"{v.tokens:>8}{f(v.bits):>10}{f(v.bayes_bits):>10}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


# (ids [B, T], attention mask [B, T]: 1 on the documents' tokens, 0 on the padding) -> logits
ModelFn = Callable[["torch.Tensor", "torch.Tensor"], Any]


def evaluate_model(
    model: Any,
    corpus: Corpus | str | Path,
    *,
    n_test: int | None = None,
    n_train: int | None = None,
    context_length: int | None = None,
    max_docs: int | None = None,
    batch_size: int = 16,
    device: str | None = None,
    bayes: bool | dict[str, np.ndarray] = True,
    progress: bool = False,
) -> ModelEvaluation:
    """Scores a causal language model on the test split of ``corpus`` (a ``Corpus`` or a
    corpus directory) by role and frequency bucket, beside the exact Bayes reference.

    ``model`` is a callable from a ``LongTensor [B, T]`` of synknow token ids to logits
    ``[B, T, V]`` (a tensor, or an object with ``.logits``), position ``t`` predicting token
    ``t + 1``, with ``V = len(corpus.vocab)``; or a ``transformers`` ``PreTrainedModel``
    (``AutoModelForCausalLM``), run in eval mode without gradients. Each test document is one
    row from its ``BOS`` (rows are padded on the right with ``PAD``, so a causal model's
    logits at real positions do not see the padding), and is scored as the Bayes reference
    scores it: given the first ``n_train`` documents, ``BOS`` given (0 bits).

    The split is the project's (docs/model.md#splits): the test documents are the last
    ``n_test`` (default: the trainer's, 1000), ``n_train`` defaults to every document before
    them. A test document longer than the model's context (``context_length``, or a
    transformers model's ``max_position_embeddings``) is an error: the code length of a
    document is defined with the whole document in context, which a sliding window would not
    give. ``max_docs`` scores only the first test documents. ``device``: where the ids are put
    (default: a transformers model's device, else the CPU). ``bayes``: ``True`` computes the
    reference (one pass over the training prefix), a precomputed
    ``synknow.train.bayes_test_code_lengths`` dict is used as is, ``False`` skips it.
    """
    torch = _import_torch()
    from synknow.train.config import DataConfig
    from synknow.train.data import EvalData, check_split
    from synknow.train.eval import _aggregate, bayes_summary, bayes_test_code_lengths

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not isinstance(corpus, Corpus):
        corpus = load_corpus(corpus)
    n_train, n_test = check_split(corpus, n_train, DataConfig.n_test if n_test is None else n_test)
    vocab_size = len(corpus.vocab)
    fn, model_context, default_device, module = _as_model_fn(model, vocab_size)
    context = context_length if context_length is not None else model_context
    data = EvalData(corpus, n_train, n_test, max_docs=max_docs, context_length=context)
    target_device = torch.device(device or default_device)
    value_range = corpus.vocab.value_range
    cols: dict[str, list[np.ndarray]] = {}
    batches = data.batches(batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=-(-len(data) // batch_size), desc="eval", unit="batch")
    was_training = module is not None and module.training
    try:
        if module is not None:
            module.eval()
        for batch in batches:
            tokens = batch.tokens.to(target_device)
            lengths = torch.from_numpy(batch.lengths).to(target_device)
            attention = torch.arange(tokens.shape[1], device=target_device) < lengths[:, None]
            with torch.no_grad():
                out = fn(tokens, attention.long())
            logits = _checked_logits(out, tuple(tokens.shape), vocab_size)
            keep = batch.targets != IGNORE
            rows, pos = np.nonzero(keep.numpy())
            roles = batch.roles[rows, pos].astype(np.int64)
            stats = _logit_stats(
                logits[keep.to(logits.device)],
                batch.targets[keep].to(logits.device),
                (value_range.start, value_range.stop),
                torch.from_numpy(roles == _ROLE_VALUE),
            )
            add = {
                "doc": batch.docs[rows],
                "position": pos + 1,  # the target's position in its document
                "target": batch.targets.numpy()[rows, pos],
                "role": roles,
                "count": batch.count[rows],
                "bucket": batch.bucket[rows],
                **stats,
            }
            for k, v in add.items():
                cols.setdefault(k, []).append(v)
    finally:
        if module is not None:
            module.train(was_training)
    tok = {k: np.concatenate(v) for k, v in cols.items()}
    tok["credit"] = np.where(tok["role"] == _ROLE_VALUE, tok.pop("top_credit"), np.nan)
    report = _aggregate(tok, data)
    reference = bayes_test_code_lengths(corpus, data.n_train, n_test) if bayes is True else bayes
    report["bayes"] = bayes_summary(reference, data) if isinstance(reference, dict) else None
    return _result(report)


_ROLE_VALUE = ROLE_NAMES.index("value")


def hf_model_config(path: str | Path) -> Any:
    """The ``transformers`` configuration of the model saved in directory ``path`` (read with
    ``local_files_only``), with one-line errors; cheap, no weights are read."""
    path = Path(path)
    try:
        from transformers import AutoConfig
    except ModuleNotFoundError:
        raise missing("transformers", "a Hugging Face model") from None
    if not path.is_dir():
        raise ValueError(f"{path}: not a directory (a model saved with save_pretrained)")
    if not (path / "config.json").is_file():
        raise ValueError(f"{path}: no config.json (not a model saved with save_pretrained)")
    try:
        return AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: cannot read config.json: {_first_line(e)}") from None


def load_hf_model(
    path: str | Path, *, device: str | None = None, vocab_size: int | None = None
) -> Any:
    """``AutoModelForCausalLM.from_pretrained(path, local_files_only=True)`` in eval mode, with
    one-line errors (``synknow eval --hf``); ``vocab_size``, if given, is checked against the
    model's configuration before the weights are read."""
    config = hf_model_config(path)
    from transformers import AutoModelForCausalLM

    model_vocab = getattr(config, "vocab_size", None)
    if vocab_size is not None and model_vocab is not None and model_vocab != vocab_size:
        raise ValueError(
            f"vocabulary mismatch: the model has vocab_size={model_vocab}, the corpus's "
            f"vocabulary has {vocab_size} ids"
        )
    try:
        # Any: transformers types `.to` through a decorator mypy reads as taking the model.
        model: Any = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: cannot load a causal language model: {_first_line(e)}") from None
    if device is not None:
        model = model.to(device)
    return model.eval()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _import_torch() -> Any:
    try:
        import torch
    except ModuleNotFoundError:
        raise missing("torch", "synknow.evaluate_model") from None
    return torch


def _is_transformers_model(model: Any) -> bool:
    # Only a model built by transformers can be one, so transformers is already imported then.
    transformers = sys.modules.get("transformers")
    return transformers is not None and isinstance(model, transformers.PreTrainedModel)


def _as_model_fn(model: Any, vocab_size: int) -> tuple[ModelFn, int | None, str, Any]:
    """``(fn, context length or None, default device, the transformers model or None)`` for a
    callable or a transformers model."""
    if _is_transformers_model(model):
        config = model.config
        model_vocab = getattr(config, "vocab_size", None)
        if model_vocab is not None and model_vocab != vocab_size:
            raise ValueError(
                f"vocabulary mismatch: the model has vocab_size={model_vocab}, the corpus's "
                f"vocabulary has {vocab_size} ids"
            )
        return (
            lambda ids, attention: model(input_ids=ids, attention_mask=attention).logits,
            getattr(config, "max_position_embeddings", None),
            str(model.device),
            model,
        )
    if not callable(model):
        raise TypeError(
            f"model must be a callable (ids [B, T] -> logits [B, T, V]) or a transformers "
            f"PreTrainedModel, got {type(model).__name__}"
        )
    return lambda ids, _: model(ids), None, "cpu", None


def _checked_logits(out: Any, shape: tuple[int, int], vocab_size: int) -> torch.Tensor:
    import torch

    logits = getattr(out, "logits", out)
    if not isinstance(logits, torch.Tensor):
        raise ValueError(
            f"the model returned {type(logits).__name__}, expected a tensor of logits [B, T, V]"
        )
    if logits.dim() != 3 or tuple(logits.shape[:2]) != shape:
        raise ValueError(
            f"the model returned logits of shape {tuple(logits.shape)} for ids of shape {shape}; "
            f"expected {(*shape, vocab_size)}"
        )
    if logits.shape[2] != vocab_size:
        raise ValueError(
            f"vocabulary mismatch: the model returned logits over {logits.shape[2]} ids, the "
            f"corpus's vocabulary has {vocab_size}"
        )
    if not logits.is_floating_point():
        raise ValueError(f"the model returned logits of dtype {logits.dtype}, expected floats")
    return logits


def _logit_stats(
    logits: torch.Tensor, targets: torch.Tensor, value_range: tuple[int, int], is_value: Any
) -> dict[str, np.ndarray]:
    """Per predicted token, from its row of logits, the statistics ``synknow.train.evaluate``
    takes from its kernel: ``nll_bits``, ``entropy_bits``, ``max_prob``, ``argmax``,
    ``value_mass``, and ``top_credit`` (``1/k`` when the target is among the ``k`` ids tied for
    the largest logit) on value rows. Computed in float64, so that a model's stated
    probabilities are scored as stated."""
    import torch

    lo, hi = value_range
    rows = max(1, _STATS_BYTES // (8 * max(1, logits.shape[1])))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, logits.shape[0], rows):
        z = logits[start : start + rows]
        t = targets[start : start + rows]
        if torch.isnan(z).any():
            raise ValueError("the model returned NaN logits")
        z_max, argmax = z.max(dim=-1)
        logp = torch.log_softmax(z.double(), dim=-1)
        p = logp.exp()
        # Ties for the maximum are counted on the value rows only, the rows that get credit.
        credit = torch.zeros(len(z), dtype=torch.float64, device=z.device)
        value_rows = torch.nonzero(is_value[start : start + rows].to(z.device)).flatten()
        if len(value_rows):
            tied = z[value_rows] == z_max[value_rows, None]
            hit = tied.gather(1, t[value_rows, None]).squeeze(1)
            credit[value_rows] = hit.double() / tied.sum(dim=-1).double()
        vals = {
            "nll_bits": -logp.gather(1, t[:, None]).squeeze(1) / math.log(2),
            # entr(0) = 0: ids of probability 0 (logit -inf) add nothing, not 0 * -inf = NaN.
            "entropy_bits": torch.special.entr(p).sum(-1) / math.log(2),
            "max_prob": logp.gather(1, argmax[:, None]).squeeze(1).exp(),
            "argmax": argmax,
            "value_mass": p[:, lo:hi].sum(-1),
            "top_credit": credit,
        }
        for k, v in vals.items():
            parts.setdefault(k, []).append(v.cpu().numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def _result(report: dict[str, Any]) -> ModelEvaluation:
    bayes = report["bayes"] or {}
    ref_roles = bayes.get("roles", {})
    ref_buckets = bayes.get("buckets", {})
    roles = {
        name: Score(r["tokens"], r["bits"], ref_roles.get(name, {}).get("bits"))
        for name, r in report["roles"].items()
    }
    buckets = {}
    value_buckets = {}
    for label, b in report["buckets"].items():
        ref = ref_buckets.get(label, {})
        buckets[label] = Score(
            b["tokens"], b["bits_per_token"], ref.get("bits_per_token"), b["docs"]
        )
        value_buckets[label] = Score(
            b["value_tokens"], b["value_bits"], ref.get("value_bits"), b["docs"]
        )
    return ModelEvaluation(
        n_train=report["n_train"],
        n_test_docs=report["n_test_docs"],
        n_tokens=report["n_tokens"],
        bits_per_token=report["bits_per_token"],
        loss_bits=report["loss_bits"],
        bayes_bits_per_token=bayes.get("bits_per_token"),
        roles=roles,
        buckets=buckets,
        value_buckets=value_buckets,
        report=report,
    )
