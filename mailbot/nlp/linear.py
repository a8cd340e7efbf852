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
from spacy.language import Language
from spacy.strings import hash_string  # type: ignore[attr-defined]  # cython, untyped
from spacy.tokens import Doc

from mailbot.errors import ModelError
from mailbot.nlp.tokenizer import lowers

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

    id: int          # dense number of this word in the cache (see FeatureSpace.generation)
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
    linear: Any                 # CSR (docs x columns): the words' own columns, bigrams, rules
    chars: Any                  # CSR (docs x distinct words): pair_char, for the n-gram rows
    generation: int             # of the feature space's word cache when ``word_ids`` were given
    word_ids: numpy.ndarray     # each distinct word's id in that cache
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

    strings: Any                # the docs' string store(s), for explanations

    def owner_text(self, kind: int, owner: int) -> str:
        """What an explanation shows for a word (kind 0: pair index), a bigram (1) or a rule (2)."""
        strings = self.strings
        if kind == 0:
            return str(strings[int(self.words[self.pair_word[owner]])])
        if kind == 1:
            at = int(self.bigram_at[owner])
            return f"{strings[int(self.lower[at])]} {strings[int(self.lower[at + 1])]}"
        return f"[rule {self.rule_labels[owner]}]"

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
        # Bumped whenever the word cache starts over, so classifiers drop rows kept by word id.
        self.generation = 0

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
        self._clear_words()
        return self

    # -- the vector of a doc

    def _lookup(self, keys: numpy.ndarray) -> numpy.ndarray:
        """Columns of ``keys`` (-1 where the key is not in the table)."""
        if not len(self.keys) or not len(keys):
            return numpy.full((len(keys),), -1, dtype=numpy.int64)
        pos = numpy.searchsorted(self.keys, keys)
        pos[pos >= len(self.keys)] = 0
        return numpy.where(self.keys[pos] == keys, pos, -1)

    def _clear_words(self) -> None:
        self._words.clear()
        self.generation += 1

    def _word_info(self, strings: Any, lower: int) -> WordInfo:
        info = self._words.get(lower)
        if info is None:
            cols = self._lookup(self.word_keys(strings, lower))
            grams = cols[1:][cols[1:] >= 0]
            gram_idf = self.idf[grams]
            if len(self._words) >= _CACHE_LIMIT:
                self._clear_words()  # bounded: junk mail must not grow it forever
            info = WordInfo(len(self._words), int(cols[0]), grams, gram_idf,
                            float(numpy.dot(gram_idf, gram_idf)))
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
        generation = self.generation
        infos = tuple(self._word_info(strings, w) for w in distinct.tolist())
        if self.generation != generation:  # the cache started over within this batch: renumber
            infos = tuple(self._word_info(strings, w) for w in distinct.tolist())
        word_ids = numpy.fromiter((i.id for i in infos), dtype=numpy.int64, count=len(infos))
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
            # A bigram seen in two training mails means both its words were too, so only
            # pairs of known words are looked up.
            known_word = word_col[inverse] >= 0
            at = numpy.flatnonzero((doc_of[:-1] == doc_of[1:]) & known_word[:-1] & known_word[1:])
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
        pair_uni_value = (uni_value * word_scale[pair_doc]).astype(numpy.float32)
        pair_char = (weight * char_scale[pair_doc]).astype(numpy.float32)
        b_scaled = (b_value * word_scale[b_doc]).astype(numpy.float32)
        r_scaled = (r_value * word_scale[r_doc]).astype(numpy.float32)
        known = pair_uni >= 0
        return Batch(
            n_docs=n_docs, n_cols=n_cols,
            linear=_csr_by_doc(n_docs, n_cols, (pair_doc[known], b_doc, r_doc),
                               (pair_uni[known], b_col, r_col), (pair_uni_value[known], b_scaled, r_scaled)),
            chars=_csr_by_doc(n_docs, max(len(distinct), 1), (pair_doc,), (pair_word,), (pair_char,)),
            generation=self.generation, word_ids=word_ids,
            pair_doc=pair_doc, pair_word=pair_word, pair_uni=pair_uni,
            pair_uni_value=pair_uni_value, pair_char=pair_char,
            words=distinct, infos=infos,
            bigrams=Entries(b_doc, b_col, numpy.arange(len(b_doc)), b_scaled),
            rules=Entries(r_doc, r_col, numpy.arange(len(r_doc)), r_scaled),
            lower=lower, bigram_at=bigram_at, rule_labels=tuple(rule_labels), strings=strings,
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
        self._clear_words()
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


def _csr_by_doc(n_docs: int, n_cols: int, docs: tuple[numpy.ndarray, ...], cols: tuple[numpy.ndarray, ...],
                values: tuple[numpy.ndarray, ...]) -> Any:
    """A CSR matrix from parts that are each sorted by doc, built without a COO sort."""
    from scipy.sparse import csr_matrix

    doc = numpy.concatenate(docs)
    order = numpy.argsort(doc, kind="stable") if len(docs) > 1 else slice(None)
    indptr = numpy.concatenate([[0], numpy.cumsum(numpy.bincount(doc, minlength=n_docs))])
    return csr_matrix((numpy.concatenate(values)[order], numpy.concatenate(cols)[order], indptr),
                      shape=(n_docs, n_cols))


def _inverse(norms: numpy.ndarray) -> numpy.ndarray:
    safe = numpy.where(norms > 0, norms, 1.0)
    return numpy.where(norms > 0, 1.0 / safe, 0.0)


def _lowers(doc: Doc) -> numpy.ndarray:
    if not len(doc):
        return numpy.zeros((0,), dtype=numpy.uint64)
    return lowers(doc)


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


WHY_KEY = "mailbot_why:"


class LinearTextcat:
    """spaCy component: one label family's linear model; writes ``doc.cats[prefix + label]``.

    ``exclusive``: one label per mail (softmax over the labels), else independent labels
    (a sigmoid each, as for signals). The weights of a word's character n-grams are summed
    once per word (IDF-weighted) and kept by the word's id in the feature cache, so scoring a
    mail reads one row per distinct word. An exclusive family also explains its top label
    for the whole batch at once (``doc.user_data[WHY_KEY + name]``).
    """

    def __init__(self, name: str, prefix: str, exclusive: bool) -> None:
        self.name = name
        self.prefix = prefix
        self.exclusive = exclusive
        self.labels: list[str] = []
        self.weights = numpy.zeros((0, 0), dtype=numpy.float32)  # (features, labels)
        self.bias = numpy.zeros((0,), dtype=numpy.float32)
        self._row_mean = numpy.zeros((0,), dtype=numpy.float32)
        self._reset_rows(0)

    def _reset_rows(self, generation: int) -> None:
        self._generation = generation
        self._rows = numpy.zeros((1024, len(self.labels)), dtype=numpy.float32)
        self._filled = numpy.zeros((1024,), dtype=bool)

    def set_weights(self, labels: Sequence[str], weights: numpy.ndarray, bias: numpy.ndarray) -> None:
        self.labels = list(labels)
        self.weights = numpy.ascontiguousarray(weights, dtype=numpy.float32)
        self.bias = numpy.asarray(bias, dtype=numpy.float32)
        self._row_mean = self.weights.mean(axis=1) if self.weights.size else self._row_mean
        self._reset_rows(0)

    def _gram_rows(self, batch: Batch) -> numpy.ndarray:
        """Per distinct word of the batch: the sum over its n-grams of IDF x weight row."""
        if batch.generation != self._generation:
            self._reset_rows(batch.generation)
        ids = batch.word_ids
        if not len(ids):
            return numpy.zeros((0, len(self.labels)), dtype=numpy.float32)
        top = int(ids.max()) + 1
        if top > len(self._filled):
            size = max(top, 2 * len(self._filled))
            rows = numpy.zeros((size, len(self.labels)), dtype=numpy.float32)
            rows[: len(self._rows)] = self._rows
            filled = numpy.zeros((size,), dtype=bool)
            filled[: len(self._filled)] = self._filled
            self._rows, self._filled = rows, filled
        missing = numpy.flatnonzero(~self._filled[ids])
        if len(missing):
            infos = [batch.infos[i] for i in missing.tolist()]
            lengths = numpy.fromiter((len(info.grams) for info in infos), dtype=numpy.int64, count=len(infos))
            grams = _concat([info.grams for info in infos], numpy.int64)
            idf = _concat([info.gram_idf for info in infos], numpy.float32)
            sums = numpy.zeros((len(infos), len(self.labels)), dtype=numpy.float32)
            if len(grams):
                owner = numpy.repeat(numpy.arange(len(infos)), lengths)
                numpy.add.at(sums, owner, idf[:, None] * self.weights[grams])
            self._rows[ids[missing]] = sums
            self._filled[ids[missing]] = True
        return self._rows[ids]

    def raw_scores(self, batch: Batch) -> numpy.ndarray:
        """Scores before the softmax or sigmoid, rows: docs."""
        out = numpy.asarray(batch.linear @ self.weights, dtype=numpy.float32) + self.bias
        if len(batch.pair_doc):
            out += batch.chars @ self._gram_rows(batch)
        return out

    def scores(self, batch: Batch) -> numpy.ndarray:
        """Probabilities, rows: docs, columns: ``labels``."""
        return self._squash(self.raw_scores(batch))

    def _squash(self, out: numpy.ndarray) -> numpy.ndarray:
        if self.exclusive:
            out -= out.max(axis=1, keepdims=True)
            numpy.exp(out, out=out)
            out /= out.sum(axis=1, keepdims=True)
            return out
        return numpy.asarray(1.0 / (1.0 + numpy.exp(-out)), dtype=numpy.float32)

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, docs: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        for batch in _batches(docs, batch_size):
            refs = [doc_ref(doc) for doc in batch]
            first = refs[0].batch
            if all(r.batch is first for r in refs) and [r.row for r in refs] == list(range(first.n_docs)):
                scores = self.scores(first)
                whys = self._explain_batch(first, scores.argmax(axis=1)) if self.exclusive and self.labels \
                    else None
            else:  # docs from several feature batches, or part of one (a caller re-batched them)
                scores = numpy.vstack([self.scores(r.batch)[r.row] for r in refs])
                whys = None
            prefix, labels = self.prefix, self.labels
            for i, (doc, row) in enumerate(zip(batch, scores.tolist(), strict=True)):
                doc.cats.update({prefix + label: value for label, value in zip(labels, row, strict=True)})
                if whys is not None:
                    doc.user_data[WHY_KEY + self.name] = whys[i]
                yield doc

    def explain(self, doc: Doc, label: str, k: int = 6) -> list[str]:
        """The words (bigrams, rule labels) that pushed ``label`` hardest above the others.

        A feature's push is value x (weight for ``label`` - mean weight over labels): the
        terms of the prediction that set this label apart. A word's push includes its
        character n-grams'.
        """
        if label not in self.labels:
            return []
        known = doc.user_data.get(WHY_KEY + self.name)
        if isinstance(known, tuple) and known[0] == label:
            return list(known[1])
        ref = doc_ref(doc)
        labels = numpy.full((ref.batch.n_docs,), self.labels.index(label), dtype=numpy.int64)
        return list(self._explain_batch(ref.batch, labels, only=ref.row)[ref.row][1])

    def _explain_batch(self, batch: Batch, chosen: numpy.ndarray, k: int = 6,
                       only: int | None = None) -> list[tuple[str, tuple[str, ...]]]:
        """For every doc of the batch, its label and the ``k`` strongest pushes towards it."""
        gram_rows = self._gram_rows(batch)
        pd, pw = batch.pair_doc, batch.pair_word
        lab = chosen[pd]
        push = batch.pair_char * (gram_rows[pw, lab] - gram_rows[pw].mean(axis=1)) if len(pd) \
            else numpy.zeros((0,), numpy.float32)
        known = batch.pair_uni >= 0
        uni = batch.pair_uni[known]
        push[known] += batch.pair_uni_value[known] * (self.weights[uni, lab[known]] - self._row_mean[uni])
        parts = [(pd, push, 0, numpy.arange(len(pd)))]
        for kind, entries in ((1, batch.bigrams), (2, batch.rules)):
            if len(entries.doc):
                lab_e = chosen[entries.doc]
                push_e = entries.value * (self.weights[entries.col, lab_e] - self._row_mean[entries.col])
                parts.append((entries.doc, push_e, kind, entries.owner))
        doc = numpy.concatenate([p[0] for p in parts])
        value = numpy.concatenate([p[1] for p in parts])
        kind_of = numpy.concatenate([numpy.full((len(p[0]),), p[2], dtype=numpy.int8) for p in parts])
        owner = numpy.concatenate([p[3] for p in parts])
        keep = value > 0
        if only is not None:
            keep &= doc == only
        doc, value, kind_of, owner = doc[keep], value[keep], kind_of[keep], owner[keep]
        order = numpy.lexsort((-value, doc))
        doc, kind_of, owner = doc[order], kind_of[order], owner[order]
        starts = numpy.searchsorted(doc, numpy.arange(batch.n_docs))
        rank = numpy.arange(len(doc)) - starts[doc] if len(doc) else doc
        top = rank < k
        words: list[list[str]] = [[] for _ in range(batch.n_docs)]
        for d, kd, o in zip(doc[top].tolist(), kind_of[top].tolist(), owner[top].tolist(), strict=True):
            words[d].append(batch.owner_text(kd, o))
        return [(self.labels[int(c)], tuple(w)) for c, w in zip(chosen.tolist(), words, strict=True)]

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
