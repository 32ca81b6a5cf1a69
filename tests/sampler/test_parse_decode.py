"""Every sentence parses back to its (attribute, template); names are unique; every document
decodes to the text its latent record implies (names, values, templates).

The parser here is independent of the sampler: it only knows the skeletons
(``corpus.grammar["skeletons"]``) and the token blocks of docs/model.md#vocabulary, and it reads a
sentence's
attribute and template off its token sequence (unique parse, docs/model.md#syntax).
"""

import numpy as np
import pytest
import synknow

END = 3
CONFIGS = {
    "bios": synknow.presets.bios(seed=5),
    "bios-m3-fixed-zipf": synknow.presets.bios(
        seed=6, attrs_per_doc=3, attribute_order="fixed", value_prior="zipf(1.3)"
    ),
    "procedural": synknow.presets.procedural(seed=7, templates_per_attribute=40),
    "bios-five-name-parts": synknow.presets.bios(seed=10, name_parts=(20, 20, 20, 20, 200)),
    "procedural-u32": synknow.presets.procedural(
        seed=8, n_attributes=2, name_parts=(40_000, 30_000), templates_per_attribute=5
    ),
    "explicit": synknow.presets.bios(
        seed=9,
        n_attributes=2,
        pool_sizes=(5,),
        attribute_pool=(0, 0),
        templates=(
            ("[NAME] lives in [VALUE] .", "in town [NAME] lives in [VALUE] ."),
            ("[NAME] lives in [VALUE] now .", "[NAME] [VALUE] ."),
        ),
    ),
}


class SkeletonParser:
    """Maps a sentence to its (attribute, template) through its pattern: syntax words kept,
    the J name tokens replaced by -1 and the value token by -2."""

    def __init__(self, grammar: dict) -> None:
        self.name_lo = grammar["name_start"][0]
        self.value_lo = grammar["pool_start"][0]
        self.vocab_size = grammar["vocab_size"]
        self.j = len(grammar["name_start"])
        self.table: dict[tuple[int, ...], tuple[int, int]] = {}
        for a, skeletons in enumerate(grammar["skeletons"]):
            for t, sk in enumerate(skeletons):
                key = tuple(sk)
                assert key not in self.table, "duplicate skeleton in the grammar"
                self.table[key] = (a, t)

    def pattern(self, sentence: list[int]) -> tuple[tuple[int, ...], list[int], int]:
        out: list[int] = []
        names: list[int] = []
        value = -1
        i = 0
        while i < len(sentence):
            tok = sentence[i]
            if self.name_lo <= tok < self.value_lo:
                names = sentence[i : i + self.j]
                assert all(self.name_lo <= x < self.value_lo for x in names)
                out.append(-1)
                i += self.j
            elif self.value_lo <= tok < self.vocab_size:
                value = tok
                out.append(-2)
                i += 1
            else:
                assert 3 <= tok < self.name_lo, f"token {tok} is not a syntax word"
                out.append(tok)
                i += 1
        return tuple(out), names, value

    def parse(self, document: list[int]) -> list[tuple[int, int, list[int], int]]:
        """(attribute, template, name tokens, value token) of each sentence."""
        assert document[0] == 1 and document[-1] == 2
        body = document[1:-1]
        sentences, start = [], 0
        for i, tok in enumerate(body):
            if tok == END:
                sentences.append(body[start : i + 1])
                start = i + 1
        assert start == len(body), "text after the last END"
        out = []
        for s in sentences:
            key, names, value = self.pattern(s)
            assert key in self.table, f"sentence {s} matches no skeleton"
            a, t = self.table[key]
            out.append((a, t, names, value))
        return out


@pytest.fixture(scope="module", params=list(CONFIGS))
def corpus(request) -> synknow.Corpus:
    return synknow.sample(CONFIGS[request.param], 3000)


def test_names_are_unique(corpus: synknow.Corpus) -> None:
    names = corpus.entity_names
    assert len({tuple(r) for r in names.tolist()}) == corpus.n_entities
    g = corpus.grammar
    for j, (lo, size) in enumerate(zip(g["name_start"], g["name_size"], strict=True)):
        assert np.all((names[:, j] >= lo) & (names[:, j] < lo + size))


def test_every_sentence_parses_to_its_record(corpus: synknow.Corpus) -> None:
    parser = SkeletonParser(corpus.grammar)
    m = corpus.config.m
    for i in range(corpus.n_docs):
        parsed = parser.parse(corpus.document(i).tolist())
        assert len(parsed) == m
        k = int(corpus.doc_entity[i])
        for s, (a, t, names, value) in enumerate(parsed):
            assert a == corpus.sentence_attribute[i, s]
            assert t == corpus.sentence_template[i, s]
            assert names == corpus.entity_names[k].tolist()
            assert value == corpus.entity_values[k, a]


def test_roles_follow_token_blocks(corpus: synknow.Corpus) -> None:
    g = corpus.grammar
    tokens = corpus.tokens.astype(np.int64)
    expected = np.select(
        [tokens < 3, tokens < g["name_start"][0], tokens < g["pool_start"][0]], [0, 1, 2], 3
    )
    assert np.array_equal(corpus.roles, expected)
    assert corpus.tokens.dtype == (np.uint16 if g["vocab_size"] <= 65536 else np.uint32)


def test_decode_matches_the_latent_record(corpus: synknow.Corpus) -> None:
    """decode(i) equals the template texts with [NAME] and [VALUE] replaced by the display
    strings of the entity's name and value (with the documented spacing rules)."""
    g, vocab = corpus.grammar, corpus.vocab
    for i in range(0, corpus.n_docs, 7):
        k = int(corpus.doc_entity[i])
        name = " ".join(vocab[int(x)] for x in corpus.entity_names[k])
        parts = []
        for a, t in zip(corpus.sentence_attribute[i], corpus.sentence_template[i], strict=True):
            value = vocab[int(corpus.entity_values[k, a])]
            parts.append(g["templates"][a][t].replace("[NAME]", name).replace("[VALUE]", value))
        text = " ".join(parts).replace(" .", ".").replace(" ,", ",").replace(" 's", "'s")
        assert corpus.decode(i) == text


def test_entity_table_is_consistent(corpus: synknow.Corpus) -> None:
    z = corpus.doc_entity.astype(np.int64)
    assert np.array_equal(np.bincount(z, minlength=corpus.n_entities), corpus.entity_counts)
    first = np.full(corpus.n_entities, -1)
    seen = np.zeros(corpus.n_entities, dtype=bool)
    for i, k in enumerate(z.tolist()):
        if not seen[k]:
            seen[k] = True
            first[k] = i
    assert np.array_equal(first, corpus.entity_first_doc)
    # Entities are numbered in order of first appearance.
    assert np.all(np.diff(corpus.entity_first_doc.astype(np.int64)) > 0)
