"""The text classifiers: sparse features of a mail and linear models over them.

Why not spaCy's stock ``textcat``: its bag-of-words model hashes the exact spelling, so
"GELD", "Geld" and "geld" are unrelated features and a typo is a feature never seen; and
trained with spaCy's SGD loop it stayed behind the TF-IDF + logistic-regression baseline on
our corpus. Here:

- ``mailbot_features`` (one per pipeline) turns a doc into one TF-IDF vector: lower-case
  words, word bigrams ("niet ontvangen", "not received"), character 2- to 5-grams inside
  words (Dutch compounds such as "retourlabel", and misspellings, share pieces with the
  words they are made of) and the labels of the rule matches (a lexicon hit is evidence the
  models weigh, not a hard switch). Sub-linear counts, IDF, unit length.
- ``mailbot_textcat`` (one per label family: category, tone, signals) is a linear model over
  that vector, trained by ``mailbot.nlp.train`` as a (multinomial or one-vs-rest) logistic
  regression with its regularisation chosen on development data. It writes ``doc.cats``.

Both are vectorised with numpy: per mail a few array operations instead of Python work per
feature, which is what makes thousands of mails a second possible. The feature table is
learned from the training data (features seen in at least two mails), so the weights are as
compact as the vocabulary and every weight belongs to a feature that can be shown in an
explanation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
from spacy.attrs import LOWER
from spacy.language import Language
from spacy.strings import hash_string  # type: ignore[attr-defined]  # cython, untyped
from spacy.tokens import Doc

from mailbot.errors import ModelError

RULES_KEY = "rules"
FEATURES_KEY = "mailbot_features"

# Salts keep the feature families apart in the key space: the word "eld" and the character
# gram "eld", or the rule label "insult" and the word "insult", are different features.
_CHAR_SALT = numpy.uint64(0x165667B19E3779F9)
_RULE_SALT = numpy.uint64(0xC2B2AE3D27D4EB4F)
_BIGRAM_MUL = numpy.uint64(0x100000001B3)
_CACHE_LIMIT = 300_000


def rule_key(label: str) -> int:
    return int(numpy.uint64(hash_string(f"RULE={label}")) ^ _RULE_SALT)


def char_keys(word: str, low: int, high: int) -> numpy.ndarray:
    """Keys of the character n-grams of ``word`` padded with "<" and ">" (``low..high``)."""
    if not low or not word.isalpha():
        return numpy.zeros((0,), dtype=numpy.uint64)  # shapes, symbols: no sub-words
    padded = f"<{word}>"
    grams = {padded[i:i + n] for n in range(low, high + 1) for i in range(len(padded) - n + 1)}
    grams.discard(padded)  # the whole word is already the unigram feature
    return numpy.asarray([hash_string("#" + g) for g in grams], dtype=numpy.uint64) ^ _CHAR_SALT


@dataclass(frozen=True, slots=True)
class Entries:
    """Sparse features of one kind (bigrams or rules) for a batch of docs, sorted by doc:
    entry ``j`` puts ``value[j]`` on column ``col[j]`` of doc ``doc[j]``; ``owner[j]`` names
    the bigram or rule it comes from."""

    doc: numpy.ndarray
    col: numpy.ndarray
    owner: numpy.ndarray
    value: numpy.ndarray

    def of(self, i: int) -> slice:
        lo, hi = numpy.searchsorted(self.doc, (i, i + 1))
        return slice(int(lo), int(hi))


@dataclass(frozen=True, slots=True)
class WordInfo:
    """What the feature table holds about one word: its own column (-1 if unknown), the
    columns of its character n-grams, and their summed squared IDF (for the doc's norm)."""

    col: int
    grams: numpy.ndarray
    gram_idf: numpy.ndarray
    squares: float


@dataclass(frozen=True, slots=True)
class Batch:
    """The feature vectors of a batch of docs, kept per word rather than per feature.

    A doc's vector is: for each of its distinct words (a "pair" of doc and word), the word's
    own column with ``pair_uni_value``, and each of the word's n-gram columns with
    ``pair_char`` x that n-gram's IDF; plus its bigrams and rule labels. Keeping the n-grams
    folded into their word is what makes classifying fast: a linear model's n-gram weights
    can be summed per word once (see ``LinearTextcat``), so a mail costs one row per
    distinct word instead of a dozen per word. ``matrix()`` unfolds it for training.
    """

    n_docs: int
    n_cols: int
    pair_doc: numpy.ndarray     # sorted
    pair_word: numpy.ndarray    # index into ``words``/``infos``
    pair_uni: numpy.ndarray     # the word's own column, -1 if unknown
    pair_uni_value: numpy.ndarray
    pair_char: numpy.ndarray
    words: numpy.ndarray        # lower-case orth ids of the batch's distinct words
    infos: tuple[WordInfo, ...]
    bigrams: Entries            # owner: index into ``bigram_at``
    rules: Entries              # owner: index into ``rule_labels``
    lower: numpy.ndarray        # every token of the batch, doc after doc
    bigram_at: numpy.ndarray    # position in ``lower`` of each bigram's first token
    rule_labels: tuple[str, ...]

    def pairs_of(self, i: int) -> slice:
        lo, hi = numpy.searchsorted(self.pair_doc, (i, i + 1))
        return slice(int(lo), int(hi))

    def matrix(self) -> Any:
        """The docs' vectors as one CSR matrix (rows = docs), n-grams unfolded (training)."""
        from scipy.sparse import csr_matrix

        gram_len = numpy.fromiter((len(info.grams) for info in self.infos), dtype=numpy.int64,
                                  count=len(self.infos))
        reps = gram_len[self.pair_word] if len(self.pair_word) else numpy.zeros((0,), numpy.int64)
        gram_start = numpy.concatenate([[0], numpy.cumsum(gram_len)[:-1]]).astype(numpy.int64)
        all_grams = _concat([info.grams for info in self.infos], numpy.int64)
        all_idf = _concat([info.gram_idf for info in self.infos], numpy.float32)
        entry = numpy.repeat(numpy.arange(len(self.pair_word)), reps)
        offset = numpy.arange(len(entry)) - numpy.repeat(numpy.cumsum(reps) - reps, reps)
        at = gram_start[self.pair_word][entry] + offset
        known = self.pair_uni >= 0
        rows = numpy.concatenate([self.pair_doc[known], self.pair_doc[entry], self.bigrams.doc,
                                  self.rules.doc])
        cols = numpy.concatenate([self.pair_uni[known], all_grams[at], self.bigrams.col, self.rules.col])
        data = numpy.concatenate([self.pair_uni_value[known], self.pair_char[entry] * all_idf[at],
                                  self.bigrams.value, self.rules.value])
        return csr_matrix((data.astype(numpy.float32), (rows, cols)), shape=(self.n_docs, self.n_cols))


def _concat(parts: list[numpy.ndarray], dtype: Any) -> numpy.ndarray:
    return numpy.concatenate(parts).astype(dtype, copy=False) if parts else numpy.zeros((0,), dtype)


@dataclass(frozen=True, slots=True)
class DocRef:
    """A doc's place in the batch it was vectorised with (kept in ``doc.user_data``)."""

    batch: Batch
    row: int


class FeatureSpace:
    """The learned feature table (sorted keys -> columns) with IDF weights.

    Empty until ``fit``; ``vectorize`` then gives each doc its ``DocFeatures``. The per-word
    lookups (a word's own column and its character n-grams' columns) are cached per word.
    """

    def __init__(self, *, char_ngrams: tuple[int, int] = (2, 5), bigrams: bool = True,
                 char_weight: float = 1.0) -> None:
        self.char_ngrams = char_ngrams
        self.bigrams = bigrams
        self.char_weight = char_weight
        self.keys = numpy.zeros((0,), dtype=numpy.uint64)
        self.idf = numpy.zeros((0,), dtype=numpy.float32)
        self.is_char = numpy.zeros((0,), dtype=bool)
        self._words: dict[int, WordInfo] = {}

    @property
    def size(self) -> int:
        return len(self.keys)

    # -- keys of a doc (before the table exists, for fitting)

    def word_keys(self, strings: Any, lower: int) -> numpy.ndarray:
        grams = char_keys(strings[lower], *self.char_ngrams)
        return numpy.concatenate([numpy.asarray([lower], dtype=numpy.uint64), grams])

    def doc_keys(self, doc: Doc) -> numpy.ndarray:
        """All distinct keys of a doc (document frequency counts each once)."""
        lower = _lowers(doc)
        parts = [self.word_keys(doc.vocab.strings, int(w)) for w in numpy.unique(lower)]
        parts.append(_bigrams(lower) if self.bigrams else numpy.zeros((0,), dtype=numpy.uint64))
        parts.append(_rule_keys(doc))
        return numpy.unique(numpy.concatenate(parts)) if parts else numpy.zeros((0,), numpy.uint64)

    def fit(self, docs: Iterable[Doc], *, min_df: int = 2) -> FeatureSpace:
        """Keep the keys seen in at least ``min_df`` docs; IDF as scikit-learn smooths it."""
        docs = list(docs)
        per_doc = [self.doc_keys(doc) for doc in docs]
        if not per_doc:
            raise ModelError("no training mail to learn features from")
        keys, df = numpy.unique(numpy.concatenate(per_doc), return_counts=True)
        keep = df >= min_df
        self.keys = keys[keep]
        n = len(per_doc)
        self.idf = (numpy.log((1.0 + n) / (1.0 + df[keep])) + 1.0).astype(numpy.float32)
        # Which columns are character n-grams: the words' own keys and the bigrams are not.
        whole = numpy.unique(numpy.concatenate(
            [numpy.concatenate([_lowers(doc), _bigrams(_lowers(doc)), _rule_keys(doc)]) for doc in docs]))
        self.is_char = ~numpy.isin(self.keys, whole)
        self._words.clear()
        return self

    # -- the vector of a doc

    def _lookup(self, keys: numpy.ndarray) -> numpy.ndarray:
        """Columns of ``keys`` (-1 where the key is not in the table)."""
        if not len(self.keys) or not len(keys):
            return numpy.full((len(keys),), -1, dtype=numpy.int64)
        pos = numpy.searchsorted(self.keys, keys)
        pos[pos >= len(self.keys)] = 0
        return numpy.where(self.keys[pos] == keys, pos, -1)

    def _word_info(self, strings: Any, lower: int) -> WordInfo:
        info = self._words.get(lower)
        if info is None:
            cols = self._lookup(self.word_keys(strings, lower))
            grams = cols[1:][cols[1:] >= 0]
            gram_idf = self.idf[grams]
            info = WordInfo(int(cols[0]), grams, gram_idf, float(numpy.dot(gram_idf, gram_idf)))
            if len(self._words) >= _CACHE_LIMIT:
                self._words.clear()  # bounded: junk mail must not grow it forever
            self._words[lower] = info
        return info

    def vectorize(self, docs: Sequence[Doc]) -> Batch:
        """The TF-IDF vectors of ``docs``, computed for the whole batch at once: a few array
        operations per batch instead of Python work per feature.

        Each feature weighs (1 + log count) x IDF: sub-linear counts (the tenth "!!!" says
        less than the first), a character n-gram counting as often as the word it is in.
        Each doc is scaled to unit length so a long mail does not shout louder than a short
        one, words and character n-grams apart (a word has a dozen n-grams, which would
        drown the words), the n-grams' part then weighted by ``char_weight``.
        """
        n_docs = len(docs)
        lowers = [_lowers(doc) for doc in docs]
        lengths = numpy.fromiter((len(x) for x in lowers), dtype=numpy.int64, count=n_docs)
        lower = _concat(lowers, numpy.uint64)
        doc_of = numpy.repeat(numpy.arange(n_docs), lengths)
        n_cols = max(self.size, 1)
        empty = numpy.zeros((0,), numpy.int64)
        # Words: each distinct word of the batch is looked up once (cached across batches).
        distinct, inverse = numpy.unique(lower, return_inverse=True)
        strings = _strings_of(docs)
        infos = tuple(self._word_info(strings, w) for w in distinct.tolist())
        word_col = numpy.fromiter((i.col for i in infos), dtype=numpy.int64, count=len(infos))
        word_squares = numpy.fromiter((i.squares for i in infos), dtype=numpy.float64, count=len(infos))
        width = max(len(distinct), 1)
        pair, pair_count = numpy.unique(doc_of * width + inverse, return_counts=True)
        pair_doc, pair_word = numpy.divmod(pair, width)
        weight = 1.0 + numpy.log(pair_count.astype(numpy.float64))
        pair_uni = word_col[pair_word] if len(pair) else empty
        uni_value = numpy.where(pair_uni >= 0, weight * self.idf[numpy.maximum(pair_uni, 0)], 0.0) \
            if len(pair) else numpy.zeros((0,), numpy.float64)
        char_squares = weight * weight * word_squares[pair_word] if len(pair) else uni_value
        # Bigrams within a doc.
        b_doc, b_col, b_value, bigram_at = empty, empty, numpy.zeros((0,), numpy.float64), empty
        if self.bigrams and len(lower) > 1:
            at = numpy.flatnonzero(doc_of[:-1] == doc_of[1:])
            cols = self._lookup(_bigrams(lower)[at])
            at, cols = at[cols >= 0], cols[cols >= 0]
            key, first, count = numpy.unique(doc_of[at] * n_cols + cols, return_index=True,
                                             return_counts=True)
            b_doc, b_col = numpy.divmod(key, n_cols)
            b_value = (1.0 + numpy.log(count.astype(numpy.float64))) * self.idf[b_col]
            bigram_at = at[first]
        # Rule labels.
        rule_labels: list[str] = []
        rule_doc: list[int] = []
        rule_col: list[int] = []
        for i, doc in enumerate(docs):
            labels = _rule_labels(doc)
            if not labels:
                continue
            cols = self._lookup(numpy.asarray([rule_key(r) for r in labels], dtype=numpy.uint64))
            for label, col in zip(labels, cols.tolist(), strict=True):
                if col >= 0:
                    rule_doc.append(i)
                    rule_col.append(col)
                    rule_labels.append(label)
        r_doc = numpy.asarray(rule_doc, dtype=numpy.int64)
        r_col = numpy.asarray(rule_col, dtype=numpy.int64)
        r_value = self.idf[r_col].astype(numpy.float64) if len(r_col) else numpy.zeros((0,), numpy.float64)
        # Unit length per doc, words (with bigrams and rules) and n-grams apart.
        word_norm = numpy.sqrt(numpy.bincount(pair_doc, uni_value * uni_value, minlength=n_docs)
                               + numpy.bincount(b_doc, b_value * b_value, minlength=n_docs)
                               + numpy.bincount(r_doc, r_value * r_value, minlength=n_docs))
        char_norm = numpy.sqrt(numpy.bincount(pair_doc, char_squares, minlength=n_docs))
        word_scale = _inverse(word_norm)
        char_scale = _inverse(char_norm) * self.char_weight
        return Batch(
            n_docs=n_docs, n_cols=n_cols, pair_doc=pair_doc, pair_word=pair_word, pair_uni=pair_uni,
            pair_uni_value=(uni_value * word_scale[pair_doc]).astype(numpy.float32),
            pair_char=(weight * char_scale[pair_doc]).astype(numpy.float32),
            words=distinct, infos=infos,
            bigrams=Entries(b_doc, b_col, numpy.arange(len(b_doc)),
                            (b_value * word_scale[b_doc]).astype(numpy.float32)),
            rules=Entries(r_doc, r_col, numpy.arange(len(r_doc)),
                          (r_value * word_scale[r_doc]).astype(numpy.float32)),
            lower=lower, bigram_at=bigram_at, rule_labels=tuple(rule_labels),
        )

    # -- serialisation

    def to_disk(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        numpy.savez(path / "features.npz", keys=self.keys, idf=self.idf, is_char=self.is_char,
                    char_ngrams=numpy.asarray(self.char_ngrams), bigrams=numpy.asarray(self.bigrams),
                    char_weight=numpy.asarray(self.char_weight))

    def from_disk(self, path: Path) -> FeatureSpace:
        with numpy.load(path / "features.npz") as data:
            self.keys = data["keys"]
            self.idf = data["idf"]
            self.is_char = data["is_char"]
            self.char_weight = float(data["char_weight"])
            low, high = (int(x) for x in data["char_ngrams"])
            self.char_ngrams = (low, high)
            self.bigrams = bool(data["bigrams"])
        self._words.clear()
        return self


class _Strings:
    """The strings of several vocabularies (training reads Dutch and English docs together)."""

    def __init__(self, stores: list[Any]) -> None:
        self.stores = stores

    def __getitem__(self, key: int) -> str:
        for store in self.stores:
            if key in store:
                return str(store[key])
        raise KeyError(key)


def _strings_of(docs: Sequence[Doc]) -> Any:
    stores = list({id(doc.vocab.strings): doc.vocab.strings for doc in docs}.values())
    return stores[0] if len(stores) == 1 else _Strings(stores)


def _inverse(norms: numpy.ndarray) -> numpy.ndarray:
    safe = numpy.where(norms > 0, norms, 1.0)
    return numpy.where(norms > 0, 1.0 / safe, 0.0)


def _lowers(doc: Doc) -> numpy.ndarray:
    if not len(doc):
        return numpy.zeros((0,), dtype=numpy.uint64)
    return doc.to_array([LOWER]).astype(numpy.uint64, copy=False).ravel()


def _bigrams(lower: numpy.ndarray) -> numpy.ndarray:
    if len(lower) < 2:
        return numpy.zeros((0,), dtype=numpy.uint64)
    with numpy.errstate(over="ignore"):
        return lower[:-1] * _BIGRAM_MUL + lower[1:]


def _rule_labels(doc: Doc) -> list[str]:
    spans = doc.spans.get(RULES_KEY) if doc.spans else None
    return sorted({s.label_ for s in spans}) if spans else []


def _rule_keys(doc: Doc) -> numpy.ndarray:
    return numpy.asarray([rule_key(r) for r in _rule_labels(doc)], dtype=numpy.uint64)


# ------------------------------------------------------------------ components


class MailFeatures:
    """spaCy component: vectorises docs in batches; each doc gets a ``DocRef`` in user_data."""

    def __init__(self, name: str, char_ngrams: Sequence[int], bigrams: bool, char_weight: float) -> None:
        self.name = name
        low, high = (int(char_ngrams[0]), int(char_ngrams[1])) if char_ngrams else (0, 0)
        self.space = FeatureSpace(char_ngrams=(low, high), bigrams=bigrams, char_weight=char_weight)

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, docs: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        for batch in _batches(docs, batch_size):
            vectors = self.space.vectorize(batch)
            for row, doc in enumerate(batch):
                doc.user_data[FEATURES_KEY] = DocRef(vectors, row)
                yield doc

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        self.space.to_disk(Path(path))

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> MailFeatures:
        self.space.from_disk(Path(path))
        return self


@Language.factory("mailbot_features",
                  default_config={"char_ngrams": [2, 5], "bigrams": True, "char_weight": 0.6})
def make_features(nlp: Language, name: str, char_ngrams: list[int], bigrams: bool,
                  char_weight: float) -> MailFeatures:
    return MailFeatures(name, char_ngrams, bigrams, char_weight)


def _top(push: numpy.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` largest positive values."""
    top = numpy.argpartition(-push, k)[:k] if len(push) > k else numpy.arange(len(push))
    return [int(i) for i in top if push[i] > 0]


def _batches(docs: Iterable[Doc], size: int) -> Iterator[list[Doc]]:
    batch: list[Doc] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def doc_ref(doc: Doc) -> DocRef:
    ref = doc.user_data.get(FEATURES_KEY)
    if not isinstance(ref, DocRef):
        raise ModelError("the doc has no features: mailbot_features must run before the classifiers")
    return ref


class LinearTextcat:
    """spaCy component: one label family's linear model; writes ``doc.cats[prefix + label]``.

    ``exclusive``: one label per mail (softmax over the labels), else independent labels
    (a sigmoid each, as for signals). The weights of a word's character n-grams are summed
    once per word (IDF-weighted) and remembered, so scoring a mail reads one row per
    distinct word.
    """

    def __init__(self, name: str, prefix: str, exclusive: bool) -> None:
        self.name = name
        self.prefix = prefix
        self.exclusive = exclusive
        self.labels: list[str] = []
        self.weights = numpy.zeros((0, 0), dtype=numpy.float32)  # (features, labels)
        self.bias = numpy.zeros((0,), dtype=numpy.float32)
        self._word_rows: dict[int, numpy.ndarray] = {}
        # The last batch's per-word n-gram rows: explanations of its docs follow right after.
        self._last: tuple[Batch | None, numpy.ndarray] = (None, numpy.zeros((0, 0), numpy.float32))

    def set_weights(self, labels: Sequence[str], weights: numpy.ndarray, bias: numpy.ndarray) -> None:
        self.labels = list(labels)
        self.weights = numpy.ascontiguousarray(weights, dtype=numpy.float32)
        self.bias = numpy.asarray(bias, dtype=numpy.float32)
        self._word_rows = {}
        self._last = (None, numpy.zeros((0, 0), numpy.float32))

    def _gram_rows(self, batch: Batch) -> numpy.ndarray:
        """Per distinct word of the batch: sum over its n-grams of IDF x weight row."""
        if self._last[0] is batch:
            return self._last[1]
        rows, n_labels = self._word_rows, len(self.labels)
        missing = [i for i, w in enumerate(batch.words.tolist()) if w not in rows]
        if missing:
            if len(rows) + len(missing) > _CACHE_LIMIT:
                rows.clear()  # bounded: junk mail must not grow it forever
            for i in missing:
                rows[int(batch.words[i])] = self._gram_row(batch.infos[i])
        if not len(batch.words):
            return numpy.zeros((0, n_labels), dtype=numpy.float32)
        stacked = numpy.stack([rows[w] for w in batch.words.tolist()])
        self._last = (batch, stacked)
        return stacked

    def _gram_row(self, info: WordInfo) -> numpy.ndarray:
        if not len(info.grams):
            return numpy.zeros((len(self.labels),), dtype=numpy.float32)
        return numpy.asarray(info.gram_idf @ self.weights[info.grams], dtype=numpy.float32)

    def raw_scores(self, batch: Batch) -> numpy.ndarray:
        """Scores before the softmax or sigmoid, rows: docs."""
        from scipy.sparse import csr_matrix

        out = numpy.zeros((batch.n_docs, len(self.labels)), dtype=numpy.float32) + self.bias
        known = batch.pair_uni >= 0
        shape = (batch.n_docs, batch.n_cols)
        parts = ((batch.pair_doc[known], batch.pair_uni[known], batch.pair_uni_value[known]),
                 (batch.bigrams.doc, batch.bigrams.col, batch.bigrams.value),
                 (batch.rules.doc, batch.rules.col, batch.rules.value))
        for rows, cols, values in parts:
            if len(rows):
                out += csr_matrix((values, (rows, cols)), shape=shape) @ self.weights
        if len(batch.pair_doc):
            chars = csr_matrix((batch.pair_char, (batch.pair_doc, batch.pair_word)),
                               shape=(batch.n_docs, len(batch.words)))
            out += chars @ self._gram_rows(batch)
        return out

    def scores(self, batch: Batch) -> numpy.ndarray:
        """Probabilities, rows: docs, columns: ``labels``."""
        out = self.raw_scores(batch)
        if self.exclusive:
            out -= out.max(axis=1, keepdims=True)
            numpy.exp(out, out=out)
            out /= out.sum(axis=1, keepdims=True)
        else:
            out = 1.0 / (1.0 + numpy.exp(-out))
        return out

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, docs: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        for batch in _batches(docs, batch_size):
            refs = [doc_ref(doc) for doc in batch]
            first = refs[0].batch
            if all(r.batch is first for r in refs) and [r.row for r in refs] == list(range(first.n_docs)):
                scores = self.scores(first)
            else:  # docs from several feature batches, or part of one (a caller re-batched them)
                scores = numpy.vstack([self.scores(r.batch)[r.row] for r in refs])
            prefix, labels = self.prefix, self.labels
            for doc, row in zip(batch, scores.tolist(), strict=True):
                doc.cats.update({prefix + label: value for label, value in zip(labels, row, strict=True)})
                yield doc

    def explain(self, doc: Doc, label: str, k: int = 6) -> list[str]:
        """The words (bigrams, rule labels) that pushed ``label`` hardest above the others.

        A feature's push is value x (weight for ``label`` - mean weight over labels): the
        terms of the prediction that set this label apart. A word's push includes its
        character n-grams'.
        """
        if label not in self.labels:
            return []
        ref = doc_ref(doc)
        batch, column, row = ref.batch, self.labels.index(label), ref.row
        strings = doc.vocab.strings
        pushes: list[tuple[float, str]] = []

        def margin(rows: numpy.ndarray) -> numpy.ndarray:
            return rows[:, column] - rows.sum(axis=1) / rows.shape[1]

        pairs = batch.pairs_of(row)
        if pairs.stop > pairs.start:
            uni = batch.pair_uni[pairs]
            words = batch.words[batch.pair_word[pairs]]
            gram_rows = self._gram_rows(batch)[batch.pair_word[pairs]]
            push = batch.pair_char[pairs] * margin(gram_rows)
            known = uni >= 0
            push[known] += batch.pair_uni_value[pairs][known] * margin(self.weights[uni[known]])
            pushes.extend((float(push[i]), str(strings[int(words[i])])) for i in _top(push, k))
        for entries, kind in ((batch.bigrams, "bigram"), (batch.rules, "rule")):
            part = entries.of(row)
            if part.stop == part.start:
                continue
            push = entries.value[part] * margin(self.weights[entries.col[part]])
            for i in _top(push, k):
                o = int(entries.owner[part][i])
                if kind == "bigram":
                    at = int(batch.bigram_at[o])
                    text = f"{strings[int(batch.lower[at])]} {strings[int(batch.lower[at + 1])]}"
                else:
                    text = f"[rule {batch.rule_labels[o]}]"
                pushes.append((float(push[i]), text))
        pushes.sort(key=lambda p: -p[0])
        return [text for _, text in pushes[:k]]

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        numpy.savez(path / "weights.npz", weights=self.weights, bias=self.bias,
                    labels=numpy.asarray(self.labels, dtype=str))

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> LinearTextcat:
        with numpy.load(Path(path) / "weights.npz") as data:
            self.set_weights([str(x) for x in data["labels"]], data["weights"], data["bias"])
        return self


@Language.factory("mailbot_textcat", default_config={"prefix": "cat:", "exclusive": True})
def make_textcat(nlp: Language, name: str, prefix: str, exclusive: bool) -> LinearTextcat:
    return LinearTextcat(name, prefix, exclusive)
