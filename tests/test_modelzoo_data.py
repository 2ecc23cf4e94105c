"""modelzoo.data: generators, file layout, tf.data readers, real-data loaders."""

import doctest
import importlib
import os
import pkgutil

import numpy as np
import pytest

import deeprec as tf
import modelzoo
from modelzoo.common.metrics import logloss, roc_auc
from modelzoo.data import criteo, files, generated, movielens, open_bandit, reader, taobao
from modelzoo.data.files import Ragged, Schema
from modelzoo.data.zipf import zipf_ranks

SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "..", "shared", "data")
MOVIELENS = os.path.join(SHARED_DATA, "movielens-latest-small")
OPEN_BANDIT = os.path.join(SHARED_DATA, "open-bandit-men")


def _modelzoo_modules():
    for info in pkgutil.walk_packages(modelzoo.__path__, "modelzoo."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            yield info.name


@pytest.mark.parametrize("name", sorted(_modelzoo_modules()))
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def _assert_columns_equal(a, b, schema):
    for name in schema.columns:
        if name in schema.sequence:
            np.testing.assert_array_equal(a[name].lengths, b[name].lengths, err_msg=name)
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.fixture(scope="module")
def criteo_small(tmp_path_factory):
    """A small Criteo-like set: 1 file of train (a partial second chunk), 1 of test."""
    path = str(tmp_path_factory.mktemp("criteo"))
    meta = generated.write_generated(path, criteo.CriteoGenerator(seed=7),
                                     {"train": 70000, "test": 20000})
    return path, meta


@pytest.fixture(scope="module")
def taobao_small(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("taobao"))
    meta = generated.write_generated(path, taobao.TaobaoGenerator(seed=3, vocab_scale=0.1),
                                     {"train": 30000, "test": 10000}, rows_per_file=12000)
    return path, meta


# --- generators -------------------------------------------------------------

def test_zipf_ranks_follow_the_power_law():
    ranks = zipf_ranks(np.random.default_rng(0), 2_000_000, 1.2, 1_000_000)
    counts = np.bincount(ranks, minlength=101)
    # P(r) is the integral of x^-a over [r, r+1), normalised over [1, V+1).
    e = 1 - 1.2
    edges = np.arange(1, 102, dtype=np.float64) ** e
    expected = (edges[:-1] - edges[1:]) / (1 - (1_000_001.0) ** e)
    np.testing.assert_allclose(counts[1:101] / ranks.size, expected[:100], rtol=0.1)
    assert ranks.min() >= 1 and ranks.max() <= 1_000_000


def test_criteo_is_deterministic_and_seeded(criteo_small, tmp_path):
    path, meta = criteo_small
    again = generated.write_generated(str(tmp_path / "again"), criteo.CriteoGenerator(seed=7),
                                      {"train": 70000, "test": 20000})
    assert again["splits"] == meta["splits"]
    for split in ("train", "test"):
        a = files.read_columns(files.split_files(path, split), criteo.SCHEMA)
        b = files.read_columns(files.split_files(str(tmp_path / "again"), split),
                               criteo.SCHEMA)
        _assert_columns_equal(a, b, criteo.SCHEMA)
    generated.write_generated(str(tmp_path / "other"), criteo.CriteoGenerator(seed=8),
                              {"train": 1000, "test": 1000})
    c = files.read_columns(files.split_files(str(tmp_path / "other"), "test"), criteo.SCHEMA)
    assert not np.array_equal(c["C1"], a["C1"][:1000])


def test_growing_a_split_keeps_its_full_chunks(criteo_small, tmp_path):
    path, _ = criteo_small
    bigger = str(tmp_path / "bigger")
    generated.write_generated(bigger, criteo.CriteoGenerator(seed=7),
                              {"train": 2 * generated.CHUNK_ROWS, "test": 10})
    a = files.read_columns(files.split_files(path, "train"), criteo.SCHEMA)
    b = files.read_columns(files.split_files(bigger, "train"), criteo.SCHEMA)
    n = generated.CHUNK_ROWS
    _assert_columns_equal(files.slice_rows(a, 0, n), files.slice_rows(b, 0, n), criteo.SCHEMA)


def test_criteo_ids_are_zipf_over_millions_of_values(criteo_small):
    path, meta = criteo_small
    columns = files.read_columns(files.split_files(path, "train"), criteo.SCHEMA)
    assert max(meta["vocab"].values()) > 10_000_000
    assert meta["vocab"]["C9"] == 3
    ids = columns["C3"]  # 10M possible values
    assert ids.min() >= 0 and ids.max() < 2**32
    counts = np.sort(np.unique(ids, return_counts=True)[1])[::-1]
    # Frequency by popularity rank falls as a power law: a straight line in log-log.
    ranks = np.arange(3, 300)
    slope = np.polyfit(np.log(ranks), np.log(counts[ranks - 1]), 1)[0]
    gen = criteo.CriteoGenerator(seed=7)
    assert slope == pytest.approx(-gen.exponents[2], abs=0.2)
    # A long tail: thousands of distinct ids, most of them seen once.
    assert len(counts) > 5000 and np.mean(counts == 1) > 0.5
    for name in criteo.SCHEMA.dense:
        x = columns[name]
        assert x.min() >= 0 and np.all(x == np.floor(x))  # counts


def test_criteo_ceiling_is_the_auc_of_the_true_probabilities(criteo_small):
    path, meta = criteo_small
    gen = criteo.CriteoGenerator(seed=7)
    test = files.read_columns(files.split_files(path, "test"), criteo.SCHEMA)
    # Regenerate the test split's single chunk with the writer's random stream.
    rng = generated.chunk_rng(7, "test", 0)
    columns, p = gen.chunk(rng, 20000)
    np.testing.assert_array_equal(columns["label"], test["label"])
    split = meta["splits"]["test"]
    assert split["ceiling_auc"]["label"] == pytest.approx(roc_auc(test["label"], p["label"]))
    assert split["ceiling_logloss"]["label"] == pytest.approx(logloss(test["label"],
                                                                      p["label"]))
    assert 0.78 < split["ceiling_auc"]["label"] < 0.88
    assert split["positive_rate"]["label"] == pytest.approx(0.25, abs=0.02)
    assert np.mean(p["label"]) == pytest.approx(np.mean(test["label"]), abs=0.01)
    # The ids carry signal: the dense features alone rank worse than the truth.
    dense_score = sum(np.log1p(test[n]) * w
                      for n, w in zip(criteo.SCHEMA.dense, gen.dense_weight, strict=True))
    assert roc_auc(test["label"], dense_score) < split["ceiling_auc"]["label"] - 0.05


def test_taobao_sequences_labels_and_relevance(taobao_small):
    path, meta = taobao_small
    assert len(meta["splits"]["train"]["files"]) == 3
    c = files.read_columns(files.split_files(path, "train"), taobao.SCHEMA)
    items, cats = c["hist_item_id"], c["hist_category_id"]
    np.testing.assert_array_equal(items.lengths, cats.lengths)
    assert items.lengths.min() >= 1 and items.lengths.max() <= 50
    # An item always has the same category, in the target and in histories.
    pairs = np.unique(np.stack([np.r_[c["item_id"], items.values],
                                np.r_[c["category_id"], cats.values]]), axis=1)
    assert np.unique(pairs[0]).size == pairs.shape[1]
    assert set(np.unique(c["user_age"])) <= set(range(7))
    split = meta["splits"]["train"]
    assert split["positive_rate"]["click"] == pytest.approx(0.25, abs=0.03)
    assert split["positive_rate"]["buy"] == pytest.approx(0.10, abs=0.03)
    assert split["ceiling_auc"]["click"] > 0.7 and split["ceiling_auc"]["buy"] > 0.7
    # The DIN signal: targets whose category is in the history are clicked more.
    owner = np.repeat(np.arange(len(c["item_id"])), cats.lengths)
    seen = np.zeros(len(c["item_id"]), bool)
    seen[owner[cats.values == c["category_id"][owner]]] = True
    assert c["click"][seen].mean() > c["click"][~seen].mean() + 0.1
    # The tasks differ: buy rates are not a fixed fraction of click rates.
    assert np.corrcoef(c["click"], c["buy"])[0, 1] < 0.5


def test_ensure_generated_reuses_and_refuses(tmp_path):
    gen = criteo.CriteoGenerator(seed=1, vocab_scale=0.01)
    path = str(tmp_path / "d")
    meta = generated.ensure_generated(path, gen, {"train": 100, "test": 50})
    stamp = os.stat(os.path.join(path, files.META_FILE)).st_mtime_ns
    assert generated.ensure_generated(path, gen, {"train": 100, "test": 50}) == meta
    assert os.stat(os.path.join(path, files.META_FILE)).st_mtime_ns == stamp
    generated.ensure_generated(path, gen, {"train": 200, "test": 50})
    assert files.read_meta(path)["splits"]["train"]["rows"] == 200
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="busy.*not empty"):
        generated.ensure_generated(str(busy), gen, {"train": 10})
    with pytest.raises(FileNotFoundError, match="holds no meta.json"):
        files.read_meta(str(busy))


# --- readers ----------------------------------------------------------------

def _read_all(dataset):
    """Every batch of a dataset as numpy columns (sequences as Ragged)."""
    features, labels = tf.data.make_one_shot_iterator(dataset).get_next()
    batches = []
    with tf.Session() as sess:
        while True:
            try:
                batches.append(sess.run((features, labels)))
            except tf.errors.OutOfRangeError:
                break
    return batches


def _to_columns(batches, schema):
    out = {}
    for name in schema.columns:
        parts = [b[1][name] if name in schema.labels else b[0][name] for b in batches]
        if name in schema.sequence:
            rows = []
            for sp in parts:
                lists = [[] for _ in range(sp.dense_shape[0])]
                for (r, _), v in zip(sp.indices, sp.values, strict=True):
                    lists[r].append(v)
                rows += lists
            out[name] = Ragged.from_lists(rows)
        else:
            out[name] = np.concatenate(parts)
    return out


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_reader_parses_files_back_exactly(fmt, tmp_path):
    gen = taobao.TaobaoGenerator(seed=5, vocab_scale=0.05)
    meta = generated.write_generated(str(tmp_path), gen, {"train": 1000}, fmt=fmt,
                                     rows_per_file=400)
    paths = files.split_files(str(tmp_path), "train")
    expected, _ = gen.chunk(generated.chunk_rng(5, "train", 0),
                            1000)
    batches = _read_all(reader.make_dataset(paths, meta["schema"], 64))
    assert [len(b[1]["click"]) for b in batches] == [64] * 15 + [40]
    got = _to_columns(batches, taobao.SCHEMA)
    _assert_columns_equal(got, expected, taobao.SCHEMA)
    _assert_columns_equal(files.read_columns(paths, taobao.SCHEMA), expected, taobao.SCHEMA)
    assert batches[0][0]["user_id"].dtype == np.int64
    assert batches[0][0]["price"].dtype == np.float32


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_reader_handles_empty_sequences_epochs_and_shuffling(fmt, tmp_path):
    schema = Schema(dense=("x",), categorical=("c",), sequence=("s",), labels=("y",))
    columns = {"x": np.arange(10, dtype=np.float32) / 4, "c": np.arange(10) * 10**12,
               "s": Ragged.from_lists([[], [1], [2, 3], [], [4, 5, 6], [7], [], [8], [9], []]),
               "y": np.array([0, 1] * 5, np.float32)}
    with files.SplitWriter(str(tmp_path), "train", schema, fmt, 10, 10) as writer:
        writer.write(columns)
    paths = [str(tmp_path / writer.files[0])]
    got = _to_columns(_read_all(reader.make_dataset(paths, schema, 3)), schema)
    _assert_columns_equal(got, columns, schema)
    twice = _to_columns(_read_all(reader.make_dataset(paths, schema, 4, num_epochs=2)), schema)
    np.testing.assert_array_equal(twice["c"], np.r_[columns["c"], columns["c"]])

    def shuffled(seed):
        return _to_columns(_read_all(reader.make_dataset(paths, schema, 4, shuffle=True,
                                                         seed=seed)), schema)

    a, b = shuffled(1), shuffled(1)
    _assert_columns_equal(a, b, schema)
    assert sorted(a["c"].tolist()) == columns["c"].tolist()
    assert a["c"].tolist() != columns["c"].tolist()
    by_id = {int(c): s.tolist() for c, s in zip(columns["c"], columns["s"].to_lists(),
                                                strict=True)}
    assert all(by_id[int(c)] == s.tolist()
               for c, s in zip(a["c"], a["s"].to_lists(), strict=True))


def test_reader_rejects_bad_input(tmp_path, criteo_small):
    path, meta = criteo_small
    paths = files.split_files(path, "train")
    with pytest.raises(FileNotFoundError, match="no such file '.*missing.parquet'"):
        reader.make_dataset(paths + [str(tmp_path / "missing.parquet")], meta["schema"], 8)
    csv = tmp_path / "x.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="all be .parquet or all .csv"):
        reader.make_dataset(paths + [str(csv)], meta["schema"], 8)
    with pytest.raises(ValueError, match="x.csv' has columns \\['a', 'b'\\]"):
        reader.make_dataset([str(csv)], meta["schema"], 8)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        reader.make_dataset(paths, meta["schema"], 0)
    with pytest.raises(ValueError, match="has no split 'valid'"):
        files.split_files(path, "valid")
    with pytest.raises(ValueError, match="column names must be unique"):
        Schema(dense=("a",), categorical=("a",))


# --- real data --------------------------------------------------------------

@pytest.mark.skipif(not os.path.isdir(MOVIELENS), reason="no MovieLens copy in ../shared/data")
def test_movielens_rows_sequences_and_split(tmp_path):
    meta = movielens.convert(MOVIELENS, str(tmp_path / "ml"))
    train, test = meta["splits"]["train"], meta["splits"]["test"]
    assert train["rows"] + test["rows"] == 100836
    assert meta["vocab"]["user_id"] == 610 and meta["vocab"]["item_id"] == 9724
    splits = movielens.load(MOVIELENS)
    c = splits["train"]
    # User 1's first ratings by time; each history is the previous items, oldest first.
    ones = np.flatnonzero(c["user_id"] == 1)
    hist = [c["hist_item_id"].to_lists()[i].tolist() for i in ones[:4]]
    assert hist[0] == [] and hist[1] == [c["item_id"][ones[0]]]
    assert hist[3] == c["item_id"][ones[:3]].tolist()
    assert c["hist_item_id"].lengths.max() == 50
    # label = rating >= 4 (48% of ml-latest-small's ratings).
    assert 0.4 < train["positive_rate"]["label"] < 0.55
    # The last 20% of every user's ratings are in the test split.
    assert test["rows"] == pytest.approx(0.2 * 100836, rel=0.05)
    assert set(np.unique(splits["test"]["user_id"])) == set(np.unique(c["user_id"]))
    again = movielens.convert(MOVIELENS, str(tmp_path / "ml"))
    assert again["splits"] == meta["splits"]


@pytest.mark.skipif(not os.path.isdir(OPEN_BANDIT), reason="no Open Bandit copy in ../shared")
def test_open_bandit_rows_and_features(tmp_path):
    meta = open_bandit.convert(OPEN_BANDIT, str(tmp_path / "obd"))
    assert meta["splits"]["train"]["rows"] == 8000 and meta["splits"]["test"]["rows"] == 2000
    assert meta["vocab"]["item_id"] == 34 and meta["vocab"]["position"] == 3
    assert len(meta["schema"].dense) == 35
    c = files.read_columns(files.split_files(str(tmp_path / "obd"), "train", meta),
                           meta["schema"])
    clicks = c["click"].sum() + files.read_columns(
        files.split_files(str(tmp_path / "obd"), "test", meta), meta["schema"])["click"].sum()
    assert clicks == 69


def test_real_loaders_name_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing file '.*ratings.csv'"):
        movielens.convert(str(tmp_path), str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="missing file '.*men.csv'"):
        open_bandit.convert(str(tmp_path), str(tmp_path / "out"))
