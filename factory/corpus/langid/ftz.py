"""fastText's supervised-model file (`.bin` / quantised `.ftz`), read and run with NumPy, a whole batch at a time.

Why not call fastText's own predict: lid.176 through fasttext-predict costs ~10 µs for a document's first 64
characters and ~35 µs for a 230-character paragraph on this project's 2-core machine (bench/speed/langid.py), about
as much as SentencePiece's encode of the whole document, and the call holds the GIL. A filtered shard build
paid for it with ~half its CPU. fastText's answer is a function of the words alone: the hidden vector is the
mean of the input rows of every token (a word's own row if it is in the dictionary, plus the rows of its
character n-grams), so each distinct token's row sum is computed once per process and cached; a batch of
documents is then one split, one cache lookup per token, a segment sum, the output tree level by level and an
argmax.

What it reproduces (fastText 0.9.2, the version fasttext-predict packages; tests/test_langid.py checks the
probabilities against fasttext-predict's on the project's text): the model file's layout (args, dictionary with
its pruned n-gram index, the product-quantised input matrix with quantised norms, the dense output matrix);
`readWord`'s whitespace (space, \\n, \\r, \\t, \\v, \\f, \\0 only: not Python's Unicode whitespace); a token that
starts with `__label__` is a label and does not count; the end-of-line token `</s>` (a line ends at the first
one, even one written in the text); character n-grams of `<token>` by UTF-8 character, hashed with 32-bit
FNV-1a over signed bytes, modulo the bucket count, kept only when the pruned index has them; the
hierarchical softmax's Huffman tree built from the label counts, and its scores `log(sigmoid + 1e-5)` summed
from the root. Probabilities agree with fastText's to float rounding
(the sums run in another order); a label is the same unless two are tied to that rounding.

Only what the language filter needs: supervised models with hierarchical softmax and `wordNgrams` 1
(lid.176's). Anything else is refused when the file is read.
"""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import numpy as np

MAGIC, VERSION = 793712314, 12
EOS, BOW, EOW, LABEL = "</s>", "<", ">", "__label__"
_ARGS = ("dim", "ws", "epoch", "min_count", "neg", "word_ngrams", "loss", "model", "bucket", "minn", "maxn",
         "lr_update_rate")  # fmt: skip
BATCH = 256  # texts a `hidden` call reads at once: ~0.7 MB of token strings and rows for 256 paragraphs
# the token cache's bound, per process: ~40 MB (a string, a dict slot and 17 floats a token)
CACHE_TOKENS = 200_000
HS, SUPERVISED = 1, 3  # fastText's loss_name and model_name enums
# fastText's readWord splits on these bytes and the space only; everything else (no-break space, U+2000..) is
# part of a token
_OTHER_SPACES = "\n\r\t\v\f\0"  # (\0 last)
_SEP = "\0"  # between two texts of a batch, as a token of its own
_JOIN = f" {_SEP} "


def _one_line(text: str) -> str:
    """A text as fastText reads one line of it: its other whitespace as spaces (so no `\\0` is left), and
    nothing from a written `</s>` token on (fastText's line ends there)."""
    for space in _OTHER_SPACES:
        if space in text:
            text = text.replace(space, " ")
    if EOS in text:
        tokens = text.split(" ")
        if EOS in tokens:
            text = " ".join(tokens[: tokens.index(EOS)])
    return text


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.at)
        self.at += out.nbytes
        return out

    def word(self) -> bytes:
        end = self.data.index(b"\0", self.at)
        out, self.at = self.data[self.at : end], end + 1
        return out


def _quantised(r: _Reader) -> np.ndarray:
    """A QuantMatrix, decoded to dense rows: each row is its product-quantiser centroids times its norm."""
    qnorm = bool(r.take("B"))
    rows, dim = r.take("qq")
    codes = r.array(np.uint8, r.take("i"))
    centroids = _centroids(r)  # (subquantisers, 256, dsub)
    nsub, dsub = centroids.shape[0], dim // centroids.shape[0]
    if centroids.shape[0] * dsub != dim:
        raise ValueError("this .ftz's product quantiser has a shorter last part: not supported")
    dense = centroids[np.arange(nsub), codes.reshape(rows, nsub).astype(np.int64)].reshape(rows, dim)
    if qnorm:
        norm_codes = r.array(np.uint8, rows)
        norms = _centroids(r)[0, :, 0]
        dense = dense * norms[norm_codes][:, None]
    return np.ascontiguousarray(dense, dtype=np.float32)


def _centroids(r: _Reader) -> np.ndarray:
    dim, nsub, dsub, lastdsub = r.take("4i")
    flat = r.array(np.float32, dim * 256)
    if lastdsub != dsub:
        raise ValueError("this .ftz's product quantiser has a shorter last part: not supported")
    return flat.reshape(nsub, 256, dsub)


def _dense(r: _Reader) -> np.ndarray:
    rows, dim = r.take("qq")
    return r.array(np.float32, rows * dim).reshape(rows, dim)


def _huffman(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The output tree fastText builds from the label counts (HierarchicalSoftmaxLoss::buildTree): labels are
    leaves 0..n-1 sorted by count, inner nodes n..2n-2 joined two lightest first (on a tie the inner node),
    the second child the `1` branch. Returns (left, right) children of each inner node, -1 for leaves."""
    n = len(counts)
    count = [float(c) for c in counts] + [1e15] * (n - 1)
    left, right = [-1] * (2 * n - 1), [-1] * (2 * n - 1)
    leaf, node = n - 1, n
    for i in range(n, 2 * n - 1):
        pair = []
        for _ in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                pair.append(leaf)
                leaf -= 1
            else:
                pair.append(node)
                node += 1
        left[i], right[i] = pair
        count[i] = count[pair[0]] + count[pair[1]]
    return np.array(left), np.array(right)


class _WordIds(dict):
    """word -> dictionary id, -1 for a word not in it."""

    def __missing__(self, word: str) -> int:
        return -1


class _Tokens(dict):
    """token -> its row in the cache. A token not seen yet gets the next row at once and waits in `new` until
    `FastTextModel._fill` computes the rows of every such token of the batch together."""

    def __init__(self):
        super().__init__()
        self.new: list[str] = []

    def __missing__(self, token: str) -> int:
        self[token] = row = len(self)
        self.new.append(token)
        return row


class FastTextModel:
    """A supervised fastText model, run in batches. `predict_batch(texts)` -> (labels, probabilities) of the
    best label of each text, as fastText's `predict(text + "\\n", k=1)` gives them."""

    def __init__(self, path: str | Path):
        r = _Reader(Path(path).read_bytes())
        if r.take("ii") != (MAGIC, VERSION):
            raise ValueError(f"{path} is not a fastText model of format {VERSION}")
        args = dict(zip(_ARGS, r.take("12i"), strict=True))
        r.take("d")  # the sampling threshold t: training only
        if args["model"] != SUPERVISED or args["loss"] != HS or args["word_ngrams"] != 1:
            raise ValueError(f"{path}: only supervised models with hs loss and wordNgrams 1 (lid.176's) are read")
        self.minn, self.maxn, self.bucket = args["minn"], args["maxn"], args["bucket"]
        size, self.nwords, nlabels = r.take("3i")
        _, prune_size = r.take("qq")
        words, counts = [], []
        for _ in range(size):
            word = r.word()
            count, _kind = r.take("qb")
            words.append(word.decode("utf-8", "surrogateescape"))
            counts.append(count)
        self._word_ids = _WordIds((w, i) for i, w in enumerate(words[: self.nwords]))
        self.labels = tuple(w.removeprefix(LABEL) for w in words[self.nwords :])
        pairs = r.array(np.int32, 2 * prune_size).reshape(-1, 2) if prune_size > 0 else np.zeros((0, 2), np.int32)
        self._kept = None  # bucket -> its row after the words; the dtype's largest value where none is kept
        if prune_size >= 0:  # one lookup a bucket: 4 MB for lid.176's 2M buckets, 43k of them kept
            dtype = np.uint16 if prune_size < 2**16 - 1 else np.uint32
            self._kept = np.full(args["bucket"], np.iinfo(dtype).max, dtype=dtype)
            self._kept[pairs[:, 0]] = pairs[:, 1]
        self.input = _quantised(r) if r.take("B") else _dense(r)
        self.output = _quantised(r) if r.take("B") else _dense(r)
        self._paths(counts[self.nwords :])
        self._forget()

    def _forget(self) -> None:
        """Empty the cache of each distinct token's row sum and row count (`_index[token]` is its row in
        `_sums` / `_rows`; "", the gap between two spaces, has none: fastText skips it)."""
        self._index = _Tokens()
        self._index[""] = 0  # two spaces in a row: fastText skips the gap
        self._index[_SEP] = 1  # a text's end in a batch (`hidden`): its row is never summed
        self._sums = np.zeros((1024, self.input.shape[1]), dtype=np.float32)
        self._rows = np.zeros(1024, dtype=np.float32)
        self._hits = np.zeros(1024, dtype=np.int64)  # how often each cached token was read, halved at each _keep

    def _keep(self) -> None:
        """The cache past CACHE_TOKENS: keep the half read most often (their counts halved, so that old use
        fades), drop the rest. Rows are in the order tokens came, which is the dict's order, so the survivors'
        new rows are their ranks among themselves ("" and the batch separator stay rows 0 and 1)."""
        n = len(self._index)
        hits = self._hits[:n].copy()
        hits[:2] = hits.max(initial=0) + 1
        keep = np.zeros(n, dtype=bool)
        keep[np.argsort(-hits, kind="stable")[: CACHE_TOKENS // 2]] = True
        kept = _Tokens()
        kept.update(zip(itertools.compress(self._index, keep.tolist()), range(int(keep.sum())), strict=True))
        self._index = kept
        self._sums, self._rows = self._sums[:n][keep], self._rows[:n][keep]
        self._hits = self._hits[:n][keep] // 2

    # ---- the input side: each token's rows -----------------------------------------------------------
    def _fill(self, tokens: list[str], first: int) -> None:
        """Compute the row sum and row count of new tokens (cache rows first, first + 1, ...) all at once:
        each token's dictionary row if it has one, plus the rows of its character n-grams that the pruned
        model kept (none for `</s>`; a `__label__` token counts nothing)."""
        m = len(tokens)
        end = first + m
        if end > len(self._sums):  # grow by half at least
            grow = max(end - len(self._sums), len(self._sums) // 2)
            self._sums = np.concatenate([self._sums, np.zeros((grow, self._sums.shape[1]), np.float32)])
            self._rows = np.concatenate([self._rows, np.zeros(grow, np.float32)])
            self._hits = np.concatenate([self._hits, np.zeros(grow, np.int64)])
        for start in range(0, m, BATCH * 4):  # bounded transients: a part's n-gram rows, ~1.7 MB
            part = tokens[start : start + BATCH * 4]
            (
                self._sums[first + start : first + start + len(part)],
                self._rows[first + start : first + start + len(part)],
            ) = self._token_sums(part)

    def _token_sums(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(row sums, row counts) of tokens not in the cache."""
        m = len(tokens)
        wid = np.fromiter(map(self._word_ids.__getitem__, tokens), dtype=np.int64, count=m)
        owner, rows = self._ngram_rows(tokens)
        special = [i for i, t in enumerate(tokens) if t == EOS or t.startswith(LABEL)] if self._rare(tokens) else []
        if special:  # `</s>` has no n-grams; a `__label__` token counts nothing at all
            keep = ~np.isin(owner, special)
            owner, rows = owner[keep], rows[keep]
            wid[[i for i in special if tokens[i] != EOS]] = -1
        owner = np.concatenate([np.flatnonzero(wid >= 0), owner])
        rows = np.concatenate([wid[wid >= 0], rows])
        sums = np.zeros((m, self.input.shape[1]), dtype=np.float32)
        np.add.at(sums, owner, self.input[rows])
        return sums, np.bincount(owner, minlength=m).astype(np.float32)

    @staticmethod
    def _rare(tokens: list[str]) -> bool:
        """Whether any token may be `</s>` or a label (one C scan of them all)."""
        joined = " ".join(tokens)
        return EOS in joined or LABEL in joined

    def _ngram_rows(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(owner, row) of every character n-gram of `<token>` (n from minn to maxn, by UTF-8 character,
        never "<" or ">" alone) whose FNV-1a bucket the pruned model kept."""
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens)) + 2
        data = (BOW + (EOW + BOW).join(tokens) + EOW).encode("utf-8", "surrogatepass")
        buf = np.frombuffer(data, dtype=np.uint8)
        starts = np.append(np.flatnonzero((buf & 0xC0) != 0x80), len(buf))  # each character's first byte
        owner_of = np.repeat(np.arange(len(tokens)), lengths)  # each character's token
        first_of = np.repeat(np.cumsum(lengths) - lengths, lengths)  # its token's first and end characters
        end_of = first_of + lengths[owner_of]
        chars = np.arange(len(owner_of))
        signed = buf.view(np.int8).astype(np.int32).astype(np.uint32)  # fastText hashes signed chars
        owners, rows = [], []
        for n in range(max(self.minn, 1), self.maxn + 1):
            ok = chars + n <= end_of
            if n == 1:
                ok &= (chars != first_of) & (chars + 1 != end_of)
            at = chars[ok]
            begin, stop = starts[at], starts[at + n]
            size = stop - begin  # bytes: n to 4n
            h = np.full(len(at), 2166136261, dtype=np.uint32)
            for k in range(int(size.max(initial=0))):  # FNV-1a, a byte position of every n-gram at a time
                step = (h ^ signed[np.minimum(begin + k, len(buf) - 1)]) * np.uint32(16777619)
                h = step if k < n else np.where(size > k, step, h)  # every n-gram has >= n bytes
            row = self._bucket_rows(h % np.uint32(self.bucket))
            owners.append(owner_of[at][row >= 0])
            rows.append(row[row >= 0])
        return np.concatenate(owners), np.concatenate(rows)

    def _bucket_rows(self, buckets: np.ndarray) -> np.ndarray:
        """Input rows of n-gram buckets; -1 where the pruned model dropped the bucket."""
        if self._kept is None:
            return self.nwords + buckets.astype(np.int64)
        row = self._kept[buckets]
        return np.where(row == np.iinfo(row.dtype).max, -1, self.nwords + row.astype(np.int64))

    def hidden(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32: each text's mean input row, the text read as one line ending in `</s>`.

        The whole batch is one string, split and looked up by C loops: the texts joined by a `\\0` token (a
        text's own `\\0` is a space to fastText, so is rewritten first) that becomes each text's `</s>`."""
        if not texts:
            return np.zeros((0, self.input.shape[1]), dtype=np.float32)
        if len(self._index) > CACHE_TOKENS:
            self._keep()  # bounded memory
        index = self._index
        row_of, first = index.__getitem__, len(index)  # a new token gets its row now, its sums in _fill
        eos = row_of(EOS)
        joined = _JOIN.join(texts)
        if joined.count(_SEP) != len(texts) - 1 or any(c in joined for c in _OTHER_SPACES[:-1]) or EOS in joined:
            joined = _JOIN.join(map(_one_line, texts))
        ids = np.fromiter(map(row_of, joined.split(" ")), dtype=np.int64)
        if index.new:
            self._fill(index.new, first)
            index.new = []
        ends = np.flatnonzero(ids == index[_SEP])  # each text's end-of-line token, but the last one's
        ids[ends] = eos
        ids = np.append(ids, eos)
        np.add.at(self._hits, ids, 1)
        starts = np.concatenate([[0], ends + 1])
        total = np.add.reduceat(self._sums[ids], starts, axis=0)
        return total / np.add.reduceat(self._rows[ids], starts)[:, None]

    # ---- the output side -----------------------------------------------------------------------------
    def _paths(self, counts: list[int]) -> None:
        """For the hierarchical softmax, the tree's nodes renumbered level by level from the root (breadth
        first), so that each level's children are one slice: `_levels` holds each level's slice, `_parent`
        each node's parent (by the new numbers), `_edge` the row of the edge scores that leads to it (row i of
        the scores is log(1 - s_i) of inner node i, row inner + i log(s_i)), `_leaf` each label's node."""
        n = len(counts)
        left, right = _huffman(counts)
        order, parent, edge, levels = [2 * n - 2], [0], [0], []
        frontier = [0]  # positions in `order` of the level's inner nodes
        while frontier := [k for k in frontier if left[order[k]] >= 0]:
            start = len(order)
            for k in frontier:
                node = order[k]
                order += [left[node], right[node]]
                parent += [k, k]
                edge += [node - n, n - 1 + node - n]
            levels.append(slice(start, len(order)))
            frontier = list(range(start, len(order)))
        self._levels, self._parent, self._edge = levels, np.array(parent), np.array(edge)
        self._leaf = np.argsort(order)[:n]  # nodes 0..n-1 are the labels

    def log_probabilities(self, hidden: np.ndarray) -> np.ndarray:
        """(n, labels): log P(label | text) as fastText scores it: HierarchicalSoftmaxLoss::dfs's sums of
        log(sigmoid + 1e-5) from the root down, a level of the tree at a time for the whole batch."""
        inner = len(self.labels) - 1
        s = self.output[:inner] @ hidden.T  # (inner, n): a row per node, for the gathers
        np.negative(s, out=s)
        with np.errstate(over="ignore"):  # exp(88+) is inf in float32: its sigmoid is 0, as it should be
            np.exp(s, out=s)
        s += 1.0
        np.reciprocal(s, out=s)  # the sigmoid of each inner node's score
        edges = np.empty((2 * inner, s.shape[1]), dtype=np.float32)
        np.log(1.0 - s + 1e-5, out=edges[:inner])
        np.log(s + 1e-5, out=edges[inner:])
        step = edges[self._edge]  # row k: the score of the edge into node k (breadth-first numbers)
        node = np.zeros((2 * inner + 1, s.shape[1]), dtype=np.float32)  # log P(node), the root's 0
        for level in self._levels:
            node[level] = node[self._parent[level]] + step[level]
        return node[self._leaf].T

    def predict_batch(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """The best label of each text and its probability (fastText's `predict(text + "\\n", k=1)`)."""
        best, probs = self.predict_ids(texts)
        labels = self.labels
        return [labels[i] for i in best.tolist()], probs

    def predict_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """`predict_batch` with each label as its index in `labels`, `BATCH` texts at a time: the token strings,
        gathered rows and tree scores in memory are one batch's."""
        best = np.zeros(len(texts), dtype=np.int64)
        probs = np.zeros(len(texts), dtype=np.float32)
        for i in range(0, len(texts), BATCH):
            logp = self.log_probabilities(self.hidden(texts[i : i + BATCH]))
            top = logp.argmax(axis=1)
            best[i : i + len(top)] = top
            probs[i : i + len(top)] = np.exp(logp[np.arange(len(top)), top])
        return best, probs
