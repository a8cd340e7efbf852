"""The text classifier's model: a sparse linear model over hashed mail features.

Why not spaCy's stock ``TextCatBOW``: it hashes the exact spelling (ORTH), so "GELD", "Geld" and
"geld" are three unrelated features, and a typo is a feature the model has never seen. Mail is
full of both. This architecture reads, per token:

- the lower-case form, and lower-case bigrams (word order: "niet ontvangen", "not received");
- the last three letters (SUFFIX), so inflections and many typos still share a feature;
- the labels of the rule matches (``doc.spans["rules"]``: swearing, insults, threats, legal and
  public threats, ...), so a lexicon hit is evidence the model weighs, not a hard switch.

It is as fast as TextCatBOW (one C pass over the features) and is registered as
``mailbot.TextCatSparse.v1``, so a saved pipeline names it in its config and loads by path.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy
from spacy.attrs import LOWER, SUFFIX
from spacy.ml.models.textcat import resize_and_set_ref
from spacy.strings import hash_string  # type: ignore[attr-defined]  # cython, untyped
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Logistic, Model, SparseLinear_v2, chain, resizable, softmax_activation, with_cpu
from thinc.layers.resizable import resize_linear_weighted
from thinc.types import ArrayXd, Floats2d

RULES_KEY = "rules"

# Salts keep the feature families apart in the hash space: the suffix "eld" and the word
# "eld", or the rule label "insult" and the word "insult", are different features.
_SUFFIX_SALT = numpy.uint64(0x9E3779B97F4A7C15)
_RULE_SALT = numpy.uint64(0xC2B2AE3D27D4EB4F)
_BIGRAM_MUL = numpy.uint64(0x100000001B3)
_CHAR_SALT = numpy.uint64(0x165667B19E3779F9)


def rule_feature_key(label: str) -> int:
    """The feature key of a rule label (also used by the explanation)."""
    return int(numpy.uint64(hash_string(f"RULE={label}")) ^ _RULE_SALT)


class CharGrams:
    """Hashed character n-grams of a lower-case word, cached per word.

    Dutch glues words together ("retourlabel", "terugbetaling", "bestelnummer") and customers
    misspell; n-grams inside words let the model see "retour" and "betaling" in both. The
    cache lives as long as the model object (one per loaded pipeline), not in module state.
    """

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self._cache: dict[int, numpy.ndarray] = {}

    def __call__(self, doc: Doc, lowers: numpy.ndarray) -> numpy.ndarray:
        cache, strings = self._cache, doc.vocab.strings
        parts = []
        for key in lowers.tolist():
            grams = cache.get(key)
            if grams is None:
                grams = self._grams(strings[key])
                if len(cache) < 500_000:  # bounded: junk input must not grow it forever
                    cache[key] = grams
            parts.append(grams)
        return numpy.concatenate(parts) if parts else numpy.zeros((0,), dtype=numpy.uint64)

    def _grams(self, word: str) -> numpy.ndarray:
        padded = f"<{word}>"
        if len(padded) > 40 or not word.isalpha():
            return numpy.zeros((0,), dtype=numpy.uint64)  # numbers, ids, junk: no sub-words
        grams = {padded[i:i + n] for n in range(self.low, self.high + 1)
                 for i in range(len(padded) - n + 1)}
        return numpy.asarray([hash_string("#" + g) for g in grams], dtype=numpy.uint64) ^ _CHAR_SALT


def doc_features(doc: Doc, *, bigrams: bool = True,
                 chars: CharGrams | None = None) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Unique feature keys of one doc and their (sub-linear) counts as float32 values."""
    arr = doc.to_array([LOWER, SUFFIX]).astype(numpy.uint64, copy=False) if len(doc) else None
    parts: list[numpy.ndarray] = []
    if arr is not None:
        lower = arr[:, 0]
        parts.append(lower)
        parts.append(arr[:, 1] ^ _SUFFIX_SALT)
        if bigrams and len(lower) > 1:
            with numpy.errstate(over="ignore"):
                parts.append(lower[:-1] * _BIGRAM_MUL + lower[1:])
        if chars is not None:
            parts.append(chars(doc, lower))
    spans = doc.spans.get(RULES_KEY) if doc.spans else None
    if spans:
        parts.append(numpy.asarray([rule_feature_key(s.label_) for s in spans], dtype=numpy.uint64))
    if not parts:
        return numpy.zeros((0,), dtype=numpy.uint64), numpy.zeros((0,), dtype=numpy.float32)
    keys, counts = numpy.unique(numpy.concatenate(parts), return_counts=True)
    # Sub-linear counts (the tenth "!!!" says less than the first), scaled to unit length so
    # a long mail does not shout louder than a short one: TF-IDF's normalisation, which
    # matters as much for a linear model's training as the features themselves.
    values = 1.0 + numpy.log(counts.astype(numpy.float32))
    values /= numpy.sqrt(numpy.dot(values, values))
    return keys, values


class _FeaturesForward:
    def __init__(self, bigrams: bool, chars: CharGrams | None) -> None:
        self.bigrams = bigrams
        self.chars = chars

    def __call__(self, model: Model[list[Doc], Any], docs: list[Doc], is_train: bool) -> tuple[Any, Any]:
        keys_list: list[numpy.ndarray] = []
        values_list: list[numpy.ndarray] = []
        lengths = numpy.zeros((len(docs),), dtype=numpy.int32)
        for i, doc in enumerate(docs):
            keys, values = doc_features(doc, bigrams=self.bigrams, chars=self.chars)
            keys_list.append(keys)
            values_list.append(values)
            lengths[i] = len(keys)
        keys_all = numpy.concatenate(keys_list) if keys_list else numpy.zeros((0,), dtype=numpy.uint64)
        values_all = (numpy.concatenate(values_list) if values_list
                      else numpy.zeros((0,), dtype=numpy.float32))
        # NumpyOps (the only ops this model runs on, see with_cpu below) takes numpy arrays as is.
        return (keys_all, values_all, lengths), lambda d_out: []


def mail_features(bigrams: bool = True, char_ngrams: tuple[int, int] | None = None
                  ) -> Model[list[Doc], tuple[ArrayXd, ArrayXd, ArrayXd]]:
    chars = CharGrams(*char_ngrams) if char_ngrams else None
    return Model("mail_features", _FeaturesForward(bigrams, chars))


@registry.architectures("mailbot.TextCatSparse.v1")
def build_textcat_sparse(exclusive_classes: bool, length: int = 2**17, bigrams: bool = True,
                         char_ngrams: list[int] | None = None,
                         nO: int | None = None) -> Model[list[Doc], Floats2d]:
    """Sparse linear text classifier over ``mail_features`` (see the module docstring)."""
    sparse_linear = SparseLinear_v2(nO=nO, length=length)
    fill_defaults = {"b": 0, "W": 0}
    with Model.define_operators({">>": chain}):
        output_layer = softmax_activation() if exclusive_classes else Logistic()
        resizable_layer: Model[Floats2d, Floats2d] = resizable(
            sparse_linear, resize_layer=partial(resize_linear_weighted, fill_defaults=fill_defaults))
        grams = (char_ngrams[0], char_ngrams[1]) if char_ngrams else None
        model = with_cpu(mail_features(bigrams, grams) >> resizable_layer, sparse_linear.ops)
        model = model >> with_cpu(output_layer, output_layer.ops)
    if nO is not None:
        model.set_dim("nO", nO)
    model.set_ref("output_layer", sparse_linear)
    model.attrs["multi_label"] = not exclusive_classes
    model.attrs["resize_output"] = partial(resize_and_set_ref, resizable_layer=resizable_layer)
    return model


def feature_scores(model: Model[list[Doc], Floats2d], keys: numpy.ndarray) -> numpy.ndarray:
    """Each feature's raw score per label (rows: keys, columns: labels), bias excluded.

    Runs the trained sparse layer on one-feature inputs, so the explanation uses exactly the
    weights the prediction used.
    """
    linear = model.get_ref("output_layer")
    if len(keys) == 0:
        return numpy.zeros((0, linear.get_dim("nO")), dtype=numpy.float32)
    values = numpy.ones((len(keys),), dtype=numpy.float32)
    lengths = numpy.ones((len(keys),), dtype=numpy.int32)
    scores = linear.predict((keys.astype(numpy.uint64), values, lengths))
    bias = linear.get_param("b")
    return numpy.asarray(scores) - numpy.asarray(bias)[None, :]
