"""DeepFM, DLRM, DCN-V2, DIN, DSSM and MMoE train on small generated data; exports serve.

Each model trains a few hundred steps through its `train.py` `main` (the
real job: MonitoredTrainingSession, checkpoint, evaluation of the
checkpoint on the test split) and must make the training loss fall by 10%
and recover at least half of the AUC the data allows above chance:
AUC - 0.5 > 0.5 (ceiling - 0.5), the ceiling being the hidden model's own
AUC on the test split (about 0.82 Criteo-like, 0.78 click / 0.76 buy
Taobao-like). Models are shrunk (smaller layers) so each run takes seconds.
"""

import gc
import importlib

import numpy as np
import pytest

from modelzoo.common import export
from modelzoo.data import datasets, files

pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated:UserWarning")

DATA = {"criteo": {"train_rows": 16000, "test_rows": 4000, "vocab_scale": 0.001},
        "taobao": {"train_rows": 16000, "test_rows": 4000, "vocab_scale": 0.01}}

# model -> (data set, flags shrinking it for a fast test)
MODELS = {
    "deepfm": ("criteo", ["--dnn_hidden_units", "64,32"]),
    "dlrm": ("criteo", ["--bottom_mlp", "32", "--top_mlp", "64,32"]),
    "dcnv2": ("criteo", ["--dnn_hidden_units", "64,32", "--cross_layers", "2"]),
    "din": ("taobao", ["--attention_units", "32", "--dnn_hidden_units", "64,32"]),
    "dssm": ("taobao", ["--tower_units", "64,32", "--learning_rate", "0.003"]),
    "mmoe": ("taobao", ["--num_experts", "3", "--expert_units", "32", "--tower_units", "16",
                        "--learning_rate", "0.003"]),
}
EXPORTED = ("dssm", "mmoe")
STEPS = 300


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
    """The two small data sets, generated once for the module."""
    dirs = {}
    for name, sizes in DATA.items():
        path = str(tmp_path_factory.mktemp("data") / name)
        datasets.prepare(name, path, work_dir=path, **sizes)
        dirs[name] = path
    return dirs


def _argv(model, data_dirs, output_dir, *extra, export_model=False):
    dataset, model_flags = MODELS[model]
    sizes = DATA[dataset]
    return ["--dataset", dataset, "--data_location", data_dirs[dataset],
            "--train_rows", str(sizes["train_rows"]), "--test_rows", str(sizes["test_rows"]),
            "--vocab_scale", str(sizes["vocab_scale"]), "--steps", str(STEPS),
            "--batch_size", "128", "--output_dir", str(output_dir), "--log_steps", "1000",
            "--summary_steps", "1000",
            "--saved_model_path", str(output_dir / "export") if export_model else "none",
            *model_flags, *extra]


def _train_module(model):
    return importlib.import_module(f"modelzoo.{model}.train")


def _train(model, data_dirs, output_dir, *extra, export_model=False):
    return _train_module(model).main(_argv(model, data_dirs, output_dir, *extra,
                                           export_model=export_model))


@pytest.fixture(scope="module")
def trained(data_dirs, tmp_path_factory):
    """`trained(model) -> (report, argv)`: each model trained once for the module."""
    cache = {}

    def get(model):
        if model not in cache:
            out = tmp_path_factory.mktemp(model)
            argv = _argv(model, data_dirs, out, export_model=model in EXPORTED)
            cache[model] = (_train_module(model).main(argv), argv)
        return cache[model]

    return get


def _check_learned(report):
    train = report["train"]
    assert train["steps"] == STEPS
    assert train["loss_end"] < 0.9 * train["loss_start"], train
    for label, metrics in report["eval"].items():
        ceiling = metrics["ceiling_auc"]
        assert metrics["auc"] - 0.5 > 0.5 * (ceiling - 0.5), (label, metrics)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_model_learns(model, trained):
    report, _ = trained(model)
    _check_learned(report)
    assert gc.get_freeze_count() == 0  # The training loop unfroze what it froze.
    expected = {"criteo": ["label"], "taobao": ["click"]}[MODELS[model][0]]
    assert sorted(report["eval"]) == (["buy", "click"] if model == "mmoe" else expected)
    assert report["checkpoint"].endswith(f"model.ckpt-{STEPS}")


@pytest.mark.parametrize("model", ["dlrm", "din"])
def test_hash_bucket_baseline_learns(model, data_dirs, tmp_path):
    # --ev false: stock hash-bucket tables (din: the candidate's and the
    # history's ids through one shared table).
    report = _train(model, data_dirs, tmp_path, "--ev", "false", "--emb_fusion", "false")
    assert report["ev"] is False
    _check_learned(report)


def _serving_feed(columns, schema, rows):
    """The export's inputs for the first `rows` rows: sequences padded with -1."""
    feed = {name: np.asarray(columns[name][:rows]) for name in schema.dense + schema.categorical}
    for name in schema.sequence:
        lists = columns[name].slice(0, rows).to_lists()
        padded = np.full((rows, max(1, max(len(x) for x in lists))), -1, np.int64)
        for i, ids in enumerate(lists):
            padded[i, :len(ids)] = ids
        feed[name] = padded
    return feed


def _checkpoint_predictions(model, argv, report, rows):
    from modelzoo.common import evaluation
    from modelzoo.common.flags import parse_args

    module = _train_module(model)
    args = parse_args(module.make_parser(), argv)
    meta = files.read_meta(report["data_dir"])
    model_class = {"dssm": "DSSM", "mmoe": "MMoE"}[model]
    instance = getattr(importlib.import_module(f"modelzoo.{model}.model"), model_class)(
        args, meta)
    probabilities, _ = evaluation.predict(instance, args, meta, report["data_dir"],
                                          report["checkpoint"])
    return {k: v[:rows] for k, v in probabilities.items()}


@pytest.mark.parametrize("model", EXPORTED)
def test_export_serves_the_checkpoint(model, trained):
    report, argv = trained(model)
    meta = files.read_meta(report["data_dir"])
    schema = meta["schema"]
    test_columns = files.read_columns(files.split_files(report["data_dir"], "test", meta),
                                      schema)
    feed = _serving_feed(test_columns, schema, 64)
    predict = export.load_predictor(report["saved_model"])
    served = predict(feed)
    expected = _checkpoint_predictions(model, argv, report, 64)
    for label, (prob_name, _) in export.output_names(sorted(expected)).items():
        np.testing.assert_allclose(served[prob_name], expected[label], rtol=1e-4, atol=1e-6)
    predict.session.close()


def test_dssm_towers_are_independent(trained):
    # The item vector must not depend on user-side inputs, nor the user vector
    # on the candidate's: swapping users between rows swaps only user vectors.
    report, _ = trained("dssm")
    meta = files.read_meta(report["data_dir"])
    schema = meta["schema"]
    columns = files.read_columns(files.split_files(report["data_dir"], "test", meta), schema)
    feed = _serving_feed(columns, schema, 32)
    predict = export.load_predictor(report["saved_model"])
    base = predict(feed)
    order = np.arange(32)[::-1]
    swapped = {name: value[order] if name.startswith(("user_", "hist_")) else value
               for name, value in feed.items()}
    out = predict(swapped)
    assert base["user_vector"].shape == (32, 32) and base["item_vector"].shape == (32, 32)
    np.testing.assert_allclose(out["item_vector"], base["item_vector"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["user_vector"], base["user_vector"][order], rtol=1e-5,
                               atol=1e-6)
    assert not np.allclose(out["probability"], base["probability"])
    predict.session.close()


@pytest.mark.parametrize("model, argv, fragment", [
    ("deepfm", ["--dnn_hidden_units", "64,x"], "--dnn_hidden_units: expected comma-separated "
                                               "positive ints, got '64,x'"),
    ("dlrm", ["--bottom_mlp", "0"], "--bottom_mlp: expected comma-separated positive ints, "
                                    "got '0'"),
    ("dcnv2", ["--cross_rank", "-1"], "--cross_rank: expected an int >= 0, got '-1'"),
    ("dcnv2", ["--structure", "tower"], "--structure: invalid choice: 'tower'"),
    ("din", ["--deep_dropout", "1"], "--deep_dropout: expected a rate in [0, 1), got '1'"),
    ("dssm", ["--cosine_scale", "0"], "--cosine_scale: expected a number > 0, got '0'"),
    ("mmoe", ["--num_experts", "0"], "--num_experts: expected an int >= 1, got '0'"),
    ("mmoe", ["--dataset", "criteo"], "--dataset: invalid choice: 'criteo'"),
    ("din", ["--steps", "-5"], "--steps must be >= 0, got -5"),
])
def test_bad_flags_name_the_flag_and_value(model, argv, fragment, capsys, tmp_path):
    data = tmp_path / "data"
    with pytest.raises(SystemExit) as raised:
        _train_module(model).main(["--output_dir", str(tmp_path), "--data_location", str(data),
                                   *argv])
    message = str(raised.value) + capsys.readouterr().err
    assert fragment in message
    assert not data.exists()  # failed before generating any data
