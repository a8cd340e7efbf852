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
    """Feature incidences of one kind (words, bigrams or rules) for a batch of docs.

    Entry ``j`` says: owner ``owner[j]`` (a word of a doc, a bigram, a rule label) puts value
    ``value[j]`` on column ``col[j]`` of doc ``doc[j]``. Entries are sorted by doc.
    """

    doc: numpy.ndarray
    col: numpy.ndarray
    owner: numpy.ndarray
    count: numpy.ndarray
    value: numpy.ndarray

    def of(self, i: int) -> slice:
        lo, hi = numpy.searchsorted(self.doc, (i, i + 1))
        return slice(int(lo), int(hi))


@dataclass(frozen=True, slots=True)
class Batch:
    """The feature vectors of a batch of docs (``matrix``: a CSR matrix, rows = docs) and
    what an explanation needs to map weights back to the words that carry them."""

    parts: tuple[Any, ...]   # CSR matrices (rows = docs) of words, bigrams, rules; they add up
    words: Entries      # owner: index into ``word_of``
    bigrams: Entries    # owner: index into ``bigram_at``
    rules: Entries      # owner: index into ``rule_labels``
    word_of: numpy.ndarray   # lower-case orth id of each word owner
    lower: numpy.ndarray     # every token of the batch, doc after doc
    bigram_at: numpy.ndarray  # position in ``lower`` of each bigram owner's first token
    rule_labels: tuple[str, ...]

    @property
    def matrix(self) -> Any:
        """The docs' vectors as one CSR matrix (for training)."""
        total = self.parts[0]
        for part in self.parts[1:]:
            total = total + part
        return total


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
        self._words: dict[int, numpy.ndarray] = {}

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

    def _word_cols(self, strings: Any, lower: int) -> numpy.ndarray:
        cols = self._words.get(lower)
        if cols is None:
            cols = self._lookup(self.word_keys(strings, lower))
            cols = cols[cols >= 0]
            if len(self._words) >= _CACHE_LIMIT:
                self._words.clear()  # bounded: junk mail must not grow it forever
            self._words[lower] = cols
        return cols

    def vectorize(self, docs: Sequence[Doc]) -> Batch:
        """The TF-IDF vectors of ``docs``, computed for the whole batch at once: a few array
        operations per batch instead of Python work per feature."""
        n_docs = len(docs)
        lowers = [_lowers(doc) for doc in docs]
        lengths = numpy.fromiter((len(x) for x in lowers), dtype=numpy.int64, count=n_docs)
        lower = numpy.concatenate(lowers) if n_docs else numpy.zeros((0,), numpy.uint64)
        doc_of = numpy.repeat(numpy.arange(n_docs), lengths)
        n_cols = max(self.size, 1)
        # Words: each distinct word of the batch is looked up once (its own column and its
        # n-grams' columns, cached across batches).
        distinct, inverse = numpy.unique(lower, return_inverse=True)
        strings = _strings_of(docs)
        per_word = [self._word_cols(strings, w) for w in distinct.tolist()]
        word_len = numpy.fromiter((len(c) for c in per_word), dtype=numpy.int64, count=len(per_word))
        word_start = numpy.concatenate([[0], numpy.cumsum(word_len)[:-1]]).astype(numpy.int64)
        word_cols = (numpy.concatenate(per_word).astype(numpy.int64, copy=False) if per_word
                     else numpy.zeros((0,), numpy.int64))
        pair, pair_count = numpy.unique(doc_of * max(len(distinct), 1) + inverse, return_counts=True)
        pair_doc, pair_word = numpy.divmod(pair, max(len(distinct), 1))
        reps = word_len[pair_word] if len(pair) else numpy.zeros((0,), numpy.int64)
        entry_pair = numpy.repeat(numpy.arange(len(pair)), reps)
        offset = numpy.arange(len(entry_pair)) - numpy.repeat(numpy.cumsum(reps) - reps, reps)
        words = (pair_doc[entry_pair], word_cols[word_start[pair_word][entry_pair] + offset],
                 entry_pair, pair_count[entry_pair])
        # Bigrams within a doc.
        empty = numpy.zeros((0,), numpy.int64)
        bigrams = (empty, empty, empty, empty)
        bigram_at = empty
        if self.bigrams and len(lower) > 1:
            at = numpy.flatnonzero(doc_of[:-1] == doc_of[1:])
            cols = self._lookup(_bigrams(lower)[at])
            at, cols = at[cols >= 0], cols[cols >= 0]
            key, first, count = numpy.unique(doc_of[at] * n_cols + cols, return_index=True,
                                             return_counts=True)
            bigrams = (key // n_cols, key % n_cols, numpy.arange(len(key)), count)
            bigram_at = at[first]
        # Rule labels.
        rule_labels: list[str] = []
        rule_rows: list[tuple[int, int, int]] = []
        for i, doc in enumerate(docs):
            labels = _rule_labels(doc)
            if not labels:
                continue
            cols = self._lookup(numpy.asarray([rule_key(r) for r in labels], dtype=numpy.uint64))
            for label, col in zip(labels, cols.tolist(), strict=True):
                if col >= 0:
                    rule_rows.append((i, col, len(rule_labels)))
                    rule_labels.append(label)
        rules = ((numpy.asarray([r[0] for r in rule_rows], dtype=numpy.int64),
                  numpy.asarray([r[1] for r in rule_rows], dtype=numpy.int64),
                  numpy.asarray([r[2] for r in rule_rows], dtype=numpy.int64),
                  numpy.ones((len(rule_rows),), dtype=numpy.int64)) if rule_rows
                 else (empty, empty, empty, empty))
        # Each entry weighs (1 + log count) x IDF: sub-linear counts (the tenth "!!!" says
        # less than the first), a character n-gram counting as often as the word it is in.
        # Entries are not summed per column (a sort of the whole batch): a column two words
        # share simply appears twice, which the dot product adds up. Each doc is scaled to
        # unit length so a long mail does not shout louder than a short one, words and
        # character n-grams apart (a word has a dozen n-grams, which would drown the words).
        parts = (words, bigrams, rules)
        values = [(1.0 + numpy.log(p[3].astype(numpy.float64))) * self.idf[p[1]] if len(p[1])
                  else numpy.zeros((0,), numpy.float64) for p in parts]
        blocks = [p[0] * 2 + (self.is_char[p[1]] if len(p[1]) else empty) for p in parts]
        squares = numpy.zeros((2 * n_docs,), dtype=numpy.float64)
        for block, value in zip(blocks, values, strict=True):
            squares += numpy.bincount(block, weights=value * value, minlength=2 * n_docs)
        norms = numpy.sqrt(squares)
        scale = numpy.where(norms > 0, 1.0 / numpy.where(norms > 0, norms, 1.0), 0.0)
        scale[1::2] *= self.char_weight
        from scipy.sparse import csr_matrix

        entries, matrices = [], []
        for p, block, value in zip(parts, blocks, values, strict=True):
            scaled = (value * scale[block]).astype(numpy.float32)
            entries.append(Entries(p[0], p[1], p[2], p[3], scaled))
            indptr = numpy.concatenate([[0], numpy.cumsum(numpy.bincount(p[0], minlength=n_docs))])
            matrices.append(csr_matrix((scaled, p[1], indptr), shape=(n_docs, n_cols)))
        return Batch(tuple(matrices), entries[0], entries[1], entries[2], distinct[pair_word],
                     lower, bigram_at, tuple(rule_labels))

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
    (a sigmoid each, as for signals).
    """

    def __init__(self, name: str, prefix: str, exclusive: bool) -> None:
        self.name = name
        self.prefix = prefix
        self.exclusive = exclusive
        self.labels: list[str] = []
        self.weights = numpy.zeros((0, 0), dtype=numpy.float32)  # (features, labels)
        self.bias = numpy.zeros((0,), dtype=numpy.float32)
        self._margins: numpy.ndarray | None = None

    def set_weights(self, labels: Sequence[str], weights: numpy.ndarray, bias: numpy.ndarray) -> None:
        self.labels = list(labels)
        self.weights = numpy.ascontiguousarray(weights, dtype=numpy.float32)
        self.bias = numpy.asarray(bias, dtype=numpy.float32)
        self._margins = None

    def scores(self, parts: tuple[Any, ...]) -> numpy.ndarray:
        """Probabilities, rows: the docs, columns: ``labels``. ``parts``: sparse matrices
        whose sum is the docs' feature vectors."""
        out = self.bias + sum(numpy.asarray(m @ self.weights, dtype=numpy.float32) for m in parts)
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
            rows = [r.row for r in refs]
            if all(r.batch is first for r in refs) and rows == list(range(first.parts[0].shape[0])):
                scores = self.scores(first.parts)
            else:  # docs from several feature batches, or part of one (a caller re-batched them)
                scores = numpy.vstack([self.scores(tuple(m[r.row] for m in r.batch.parts)) for r in refs])
            prefix, labels = self.prefix, self.labels
            for doc, row in zip(batch, scores.tolist(), strict=True):
                doc.cats.update({prefix + label: value for label, value in zip(labels, row, strict=True)})
                yield doc

    def explain(self, doc: Doc, label: str, k: int = 6) -> list[str]:
        """The words (bigrams, rule labels) that pushed ``label`` hardest above the others.

        A word's push is the sum over its features (the word, its character n-grams) of
        value x (weight for ``label`` - mean weight over labels): the terms of the prediction
        that set this label apart.
        """
        if label not in self.labels:
            return []
        ref = doc_ref(doc)
        batch, column = ref.batch, self.labels.index(label)
        if self._margins is None:
            self._margins = self.weights - self.weights.mean(axis=1, keepdims=True)
        margins = self._margins[:, column]
        strings = doc.vocab.strings
        pushes: list[tuple[float, str]] = []
        for entries, kind in ((batch.words, "word"), (batch.bigrams, "bigram"), (batch.rules, "rule")):
            part = entries.of(ref.row)
            owner = entries.owner[part]
            if not len(owner):
                continue
            # A doc's owners are consecutive numbers: count from the first.
            first = int(owner[0])
            push = numpy.bincount(owner - first, weights=entries.value[part] * margins[entries.col[part]])
            top = numpy.argpartition(-push, k)[:k] if len(push) > k else numpy.arange(len(push))
            for i in top.tolist():
                if push[i] <= 0:
                    continue
                o = first + i
                if kind == "word":
                    text = str(strings[int(batch.word_of[o])])
                elif kind == "bigram":
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
