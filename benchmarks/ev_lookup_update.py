"""EmbeddingVariable lookup / lookup+Adagrad benchmark against stock TF and TFRA.

Measures, side by side in one run and on the same data:

  dense   stock `tf.Variable` of 1M rows, ids mod 1M, stock
          `tf.nn.embedding_lookup` + stock `AdagradOptimizer`
  mht     stock `tf.lookup.experimental.MutableHashTable` dynamic table
          (values and Adagrad accumulators in two tables; unique ids, lookup
          with defaults, stock-op Adagrad math, insert back) -- the honest
          "stock TF dynamic embedding" option
  tfra    TFRA 0.7.2 `dynamic_embedding` (`de.get_variable` +
          `de.embedding_lookup` + `de.DynamicEmbeddingOptimizer(Adagrad)`),
          truncated-normal initializer like the other systems
  tfra0   the same with TFRA's default (zeros) initializer: TFRA draws the
          initializer for every looked-up id on every lookup, so this is
          TFRA's cheapest configuration and the stricter baseline
  deeprec deeprec EmbeddingVariable (`tf.get_embedding_variable` +
          `tf.nn.embedding_lookup` + deeprec's `tf.train.AdagradOptimizer`)

Workload: Zipf(1.1) ids over 10M possible keys (seeded numpy generator, ranks
mapped to keys through a fixed random permutation), 65,536 ids per batch,
embedding dim 16 and 64, inter_op = intra_op threads 1 and 2, two modes:
`lookup` (the lookup op only, no fetch of the result) and `train` (lookup +
loss + gradient + Adagrad update). Batches are pre-generated once by the
driver and fed by `feed_dict` (the same arrays for every system); each worker
streams through them in the same order: training warm-up, timed training,
lookup warm-up, timed lookup. Warm-up steps are not timed.

Memory: VmRSS from /proc/self/status is read after the graph and session
exist but before any variable is initialised, after the training warm-up and
after the timed training; bytes/key = RSS growth / keys in the table (the
"marginal" figure uses only the growth between the last two points, which
excludes one-off buffers). For `dense` the table is 1M rows of value +
accumulator whatever the data.

Each (system, dim, threads) runs in its own subprocess so RSS growth and op
registrations are isolated; the driver collects everything and writes
benchmarks/results/ev_lookup_update.json and a section of docs/benchmarks.md.

How to run (TFRA must stay out of deeprec's own environment):

    bash benchmarks/setup_env.sh              # creates /tmp/bench-venv
    /tmp/bench-venv/bin/python benchmarks/ev_lookup_update.py --wait-quiet 30
        # full run: ~7-8 min on 2 cores (5 systems x 2 dims x 2 thread counts,
        # 2 interleaved rounds, best round kept); writes the JSON + docs
    /tmp/bench-venv/bin/python benchmarks/ev_lookup_update.py --quick
        # ~1 min smoke run, 1 round, few steps; writes *.partial.json only

A rebuilt engine is only measured after re-running setup_env.sh (the default
editable install must be rebuilt after csrc/ changes: `pip install
--no-build-isolation -e .` in that venv). benchmarks/profile_deeprec.sh
profiles one worker's timed steps with perf.

Useful flags: --systems deeprec,dense  --dims 64  --threads-list 1  --no-docs
(partial or --quick runs write ev_lookup_update.partial.json and never touch
docs/benchmarks.md unless --docs is given), --rounds N, --wait-quiet SECONDS
(on a shared machine: waits for other processes to go quiet before each
config; the report shows, per config, how much CPU other processes used),
--no-trace (skips the per-op-type times from RunMetadata step stats that are
recorded for every config in the JSON),
--python PATH (interpreter for the workers; default: this one).
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from publish import OtherCpu, cpu_seconds, git_commit, write_section

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results", "ev_lookup_update.json")
DOCS = os.path.join(REPO, "docs", "benchmarks.md")
BEGIN, END = "<!-- ev_lookup_update:begin -->", "<!-- ev_lookup_update:end -->"

SYSTEMS = ("dense", "mht", "tfra", "tfra0", "deeprec")
LABELS = {
    "dense": "(a) dense tf.Variable 1M rows",
    "mht": "(b) stock MutableHashTable",
    "tfra": "(c) TFRA 0.7.2 dynamic_embedding",
    "tfra0": "(c') TFRA 0.7.2, zeros initializer",
    "deeprec": "(d) deeprec EmbeddingVariable",
}
NUM_KEYS = 10_000_000
DENSE_ROWS = 1_000_000
ZIPF_A = 1.1
BATCH = 65_536
LR = 0.05
INIT_ACC = 0.1
DEFAULT_VALUE_DIM = 4096
STDDEV = 0.05
SLOTS = 1  # Adagrad: one accumulator per key

# Steps per worker: (train warm-up, train timed, lookup warm-up, lookup timed)
FULL_STEPS = (20, 120, 10, 120)
FULL_ROUNDS = 2  # every config runs this often (interleaved); best round kept
QUICK_STEPS = (3, 8, 2, 8)
TRACE_STEPS = 5  # traced steps per mode after the timed ones (unless --no-trace)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def make_batches(num_batches: int, seed: int = 2024) -> np.ndarray:
    """[num_batches, BATCH] int64 ids: Zipf(ZIPF_A) ranks over NUM_KEYS keys."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, NUM_KEYS + 1, dtype=np.float64)
    cdf = np.cumsum(ranks**-ZIPF_A)
    cdf /= cdf[-1]
    del ranks
    # Rank r -> key perm[r]: hot keys are spread over the key space instead
    # of being the smallest integers.
    perm = rng.permutation(NUM_KEYS).astype(np.int64)
    u = rng.random(num_batches * BATCH)
    rank = np.minimum(np.searchsorted(cdf, u, side="right"), NUM_KEYS - 1)
    return perm[rank].reshape(num_batches, BATCH)


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


# ---------------------------------------------------------------------------
# worker: one (system, dim, threads) in this process
# ---------------------------------------------------------------------------
def _loss(tf1, emb, n):
    # Elementwise gradient 2*(emb-0.5)/n: depends on the looked-up values.
    return tf1.reduce_sum(tf1.square(emb - 0.5)) * (1.0 / n)


def build_dense(dim):
    import tensorflow as tf

    tf1 = tf.compat.v1
    tf1.disable_v2_behavior()
    ids = tf1.placeholder(tf.int64, [BATCH], name="ids")
    table = tf1.get_variable(
        "dense",
        [DENSE_ROWS, dim],
        use_resource=True,
        initializer=tf1.truncated_normal_initializer(stddev=STDDEV),
    )
    rows = tf.math.floormod(ids, DENSE_ROWS)
    emb = tf1.nn.embedding_lookup(table, rows)
    gs = tf1.train.get_or_create_global_step()
    opt = tf1.train.AdagradOptimizer(LR, initial_accumulator_value=INIT_ACC)
    train_op = opt.minimize(_loss(tf1, emb, BATCH), global_step=gs)
    size = tf.constant(DENSE_ROWS, tf.int64)
    return tf1, ids, emb.op, train_op, size


def build_mht(dim):
    import tensorflow as tf

    tf1 = tf.compat.v1
    tf1.disable_v2_behavior()
    ids = tf1.placeholder(tf.int64, [BATCH], name="ids")
    values = tf.lookup.experimental.MutableHashTable(
        tf.int64, tf.float32, default_value=tf.zeros([dim]), name="values"
    )
    accs = tf.lookup.experimental.MutableHashTable(
        tf.int64, tf.float32, default_value=tf.fill([dim], INIT_ACC), name="accs"
    )
    # New keys start from row (key mod 4096) of a random matrix, like
    # deeprec's default-value matrix (cheaper than per-batch RNG).
    init = tf1.get_variable(
        "init_rows",
        [DEFAULT_VALUE_DIM, dim],
        trainable=False,
        use_resource=True,
        initializer=tf1.truncated_normal_initializer(stddev=STDDEV),
    )

    def lookup(keys):
        defaults = tf.gather(init, tf.math.floormod(keys, DEFAULT_VALUE_DIM))
        return values.lookup(keys, dynamic_default_values=defaults)

    lookup_only = lookup(ids)
    gs = tf1.train.get_or_create_global_step()
    uniq, idx = tf.unique(ids)
    vals_u = lookup(uniq)
    emb = tf.gather(vals_u, idx)
    (g_emb,) = tf.gradients(_loss(tf1, emb, BATCH), [emb])
    g = tf.math.unsorted_segment_sum(g_emb, idx, tf.shape(uniq)[0])
    acc_new = accs.lookup(uniq) + tf.square(g)
    val_new = vals_u - LR * g * tf.math.rsqrt(acc_new)
    train_op = tf.group(values.insert(uniq, val_new), accs.insert(uniq, acc_new), gs.assign_add(1))
    return tf1, ids, lookup_only.op, train_op, values.size()


def build_tfra(dim, zeros=False):
    import tensorflow as tf

    tf1 = tf.compat.v1
    tf1.disable_v2_behavior()
    from tensorflow_recommenders_addons import dynamic_embedding as de

    ids = tf1.placeholder(tf.int64, [BATCH], name="ids")
    var = de.get_variable(
        "tfra",
        key_dtype=tf.int64,
        value_dtype=tf.float32,
        dim=dim,
        initializer=(None if zeros else tf1.truncated_normal_initializer(stddev=STDDEV)),
    )
    emb = de.embedding_lookup(var, ids, name="lookup")
    gs = tf1.train.get_or_create_global_step()
    opt = de.DynamicEmbeddingOptimizer(
        tf1.train.AdagradOptimizer(LR, initial_accumulator_value=INIT_ACC)
    )
    train_op = opt.minimize(_loss(tf1, emb, BATCH), global_step=gs)
    return tf1, ids, emb.op, train_op, var.size()


def build_deeprec(dim):
    import deeprec as tf

    ids = tf.placeholder(tf.int64, [BATCH], name="ids")
    ev = tf.get_embedding_variable(
        "ev",
        embedding_dim=dim,
        initializer=tf.truncated_normal_initializer(stddev=STDDEV),
        ev_option=tf.EmbeddingVariableOption(
            init_option=tf.InitializerOption(default_value_dim=DEFAULT_VALUE_DIM)
        ),
    )
    emb = tf.nn.embedding_lookup(ev, ids)
    gs = tf.train.get_or_create_global_step()
    opt = tf.train.AdagradOptimizer(LR, initial_accumulator_value=INIT_ACC)
    train_op = opt.minimize(_loss(tf, emb, BATCH), global_step=gs)
    return tf, ids, emb.op, train_op, ev.total_count()[0]


BUILDERS = {
    "dense": build_dense,
    "mht": build_mht,
    "tfra": build_tfra,
    "tfra0": lambda dim: build_tfra(dim, zeros=True),
    "deeprec": build_deeprec,
}


def _op_type_times(tf1, graph, run_metadata_list):
    """Median over the traced steps of the microseconds spent per op type
    (wall time of each node, summed over the nodes of that type)."""
    per_step = []
    for md in run_metadata_list:
        totals = {}
        for dev in md.step_stats.dev_stats:
            for ns in dev.node_stats:
                name = ns.node_name.split(":")[0]
                try:
                    op_type = graph.get_operation_by_name(name).type
                except (KeyError, ValueError):
                    op_type = name.lstrip("_") or "?"
                totals[op_type] = totals.get(op_type, 0) + ns.all_end_rel_micros
        per_step.append(totals)
    types = {k for t in per_step for k in t}
    med = {k: float(np.median([t.get(k, 0) for t in per_step])) for k in types}
    return dict(sorted(((k, round(v)) for k, v in med.items()), key=lambda kv: -kv[1]))


class _PerfWindow:
    """With BENCH_PERF_CTL=<perf --control fifo>, profiles only the timed
    phases (benchmarks/profile_deeprec.sh starts perf disabled)."""

    def __init__(self):
        self.path = os.environ.get("BENCH_PERF_CTL")

    def _send(self, cmd):
        if self.path:
            with open(self.path, "w") as f:
                f.write(cmd + "\n")

    def __enter__(self):
        self._send("enable")

    def __exit__(self, *exc):
        self._send("disable")


def _p50_ms(times):
    return 1e3 * float(np.median(times)) if times else None


def run_worker(args) -> dict:
    steps = tuple(int(s) for s in args.steps.split(","))
    warm_t, timed_t, warm_l, timed_l = steps
    batches = np.load(args.data)
    batches = [np.ascontiguousarray(b) for b in batches]
    needed = sum(steps) + (2 * TRACE_STEPS if args.worker_trace else 0)
    if len(batches) < needed:
        raise SystemExit(f"data has {len(batches)} batches, need {needed}")

    tf1, ids, lookup_target, train_op, size = BUILDERS[args.system](args.dim)
    graph = tf1.get_default_graph()
    init = [tf1.global_variables_initializer(), tf1.local_variables_initializer()]
    config = tf1.ConfigProto(
        inter_op_parallelism_threads=args.threads, intra_op_parallelism_threads=args.threads
    )
    sess = tf1.Session(config=config)
    graph.finalize()
    out = {
        "system": args.system,
        "dim": args.dim,
        "threads": args.threads,
        "steps": dict(
            zip(
                ("train_warmup", "train_timed", "lookup_warmup", "lookup_timed"), steps, strict=True
            )
        ),
    }
    pos = 0

    def run(target, count, times=None):
        nonlocal pos
        for _ in range(count):
            feed = {ids: batches[pos]}
            pos += 1
            t0 = time.perf_counter()
            sess.run(target, feed_dict=feed)
            if times is not None:
                times.append(time.perf_counter() - t0)

    rss0 = rss_bytes()
    sess.run(init)
    rss_init = rss_bytes()
    run(train_op, warm_t)
    rss_warm, keys_warm = rss_bytes(), int(sess.run(size))
    times = []
    with OtherCpu() as busy, _PerfWindow():
        t0 = time.perf_counter()
        run(train_op, timed_t, times)
        wall = time.perf_counter() - t0
    rss_train, keys_train = rss_bytes(), int(sess.run(size))
    out["train"] = {
        "steps_per_s": timed_t / wall,
        "p50_ms": _p50_ms(times),
        "ids_per_s": timed_t * BATCH / wall,
        "other_cpu_frac": busy.share,
    }
    run(lookup_target, warm_l)
    times = []
    with OtherCpu() as busy, _PerfWindow():
        t0 = time.perf_counter()
        run(lookup_target, timed_l, times)
        wall = time.perf_counter() - t0
    out["lookup"] = {
        "steps_per_s": timed_l / wall,
        "p50_ms": _p50_ms(times),
        "ids_per_s": timed_l * BATCH / wall,
        "other_cpu_frac": busy.share,
    }
    rss_end, keys_end = rss_bytes(), int(sess.run(size))
    out["memory"] = {
        "rss_before_init": rss0,
        "rss_after_init": rss_init,
        "rss_after_train_warmup": rss_warm,
        "rss_after_train": rss_train,
        "rss_end": rss_end,
        "keys_after_train_warmup": keys_warm,
        "keys_after_train": keys_train,
        "keys_end": keys_end,
        "bytes_per_key": (rss_train - rss0) / max(keys_train, 1),
        "bytes_per_key_marginal": (
            (rss_train - rss_warm) / (keys_train - keys_warm) if keys_train > keys_warm else None
        ),
    }
    if args.system == "dense":
        out["memory"]["table_bytes_per_row"] = args.dim * 4 * (1 + SLOTS)
    if args.worker_trace:
        opts = tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE)
        for mode, target in (("train", train_op), ("lookup", lookup_target)):
            mds = []
            for _ in range(TRACE_STEPS):
                md = tf1.RunMetadata()
                sess.run(target, feed_dict={ids: batches[pos]}, options=opts, run_metadata=md)
                pos += 1
                mds.append(md)
            out[mode]["op_type_us_per_step"] = _op_type_times(tf1, graph, mds)
    sess.close()
    return out


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------
def _machine_info(python) -> dict:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    versions = subprocess.run(
        [
            python,
            "-c",
            "import tensorflow as tf, numpy as np\n"
            "try:\n import tensorflow_recommenders_addons as t; v=t.__version__\n"
            "except Exception as e: v='unavailable: %s' % e\n"
            "print(tf.__version__); print(np.__version__); print(v)\n"
            "import sys, os\n"
            "p = os.path.join(sys.prefix, 'deeprec_source.txt')\n"
            "print(open(p).read().strip() if os.path.exists(p) else '')",
        ],
        capture_output=True,
        text=True,
        env=_worker_env(1),
    ).stdout.split("\n")
    commit = git_commit(("deeprec", "csrc"))
    if len(versions) > 3 and versions[3]:
        commit = versions[3]  # what setup_env.sh installed into the worker venv
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tensorflow": versions[0] if versions else "?",
        "numpy": versions[1] if len(versions) > 1 else "?",
        "tfra": versions[2] if len(versions) > 2 else "?",
        "deeprec_commit": commit,
    }


def _worker_env(threads):
    env = dict(os.environ)
    env.update(
        {"TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    )
    return env


def _ratio(a, b):
    return a / b if a and b else None


def _fmt(x, spec=".2f", suffix=""):
    return "n/a" if x is None else format(x, spec) + suffix


def _verdict(g):
    if g.get("ratio", 0) is None:
        return "not measured"
    return "**met**" if g["met"] else "**NOT met**"


def summarize(results, dims, threads):
    """Adds ratios and goal checks; returns the goals dict."""
    by = {(r["system"], r["dim"], r["threads"]): r for r in results if "error" not in r}
    for r in results:
        if "error" in r:
            continue
        for mode in ("train", "lookup"):
            s = r[mode]["steps_per_s"]
            for ref in ("dense", "tfra", "tfra0"):
                other = by.get((ref, r["dim"], r["threads"]))
                r[mode][f"vs_{ref}"] = _ratio(s, other[mode]["steps_per_s"]) if other else None
    goals = {
        "train_vs_tfra_ge_2x": [],
        "train_vs_tfra0_ge_2x": [],
        "train_vs_dense_ge_0.5x": [],
        "memory": [],
    }
    for d in dims:
        for t in threads:
            r = by.get(("deeprec", d, t))
            if not r:
                continue
            vt, vt0, vd = (r["train"]["vs_tfra"], r["train"]["vs_tfra0"], r["train"]["vs_dense"])
            goals["train_vs_tfra_ge_2x"].append(
                {"dim": d, "threads": t, "ratio": vt, "met": vt is not None and vt >= 2.0}
            )
            goals["train_vs_tfra0_ge_2x"].append(
                {"dim": d, "threads": t, "ratio": vt0, "met": vt0 is not None and vt0 >= 2.0}
            )
            goals["train_vs_dense_ge_0.5x"].append(
                {"dim": d, "threads": t, "ratio": vd, "met": vd is not None and vd >= 0.5}
            )
            limit = 1.5 * (d * 4 * (1 + SLOTS)) + 32
            bpk = r["memory"]["bytes_per_key"]
            goals["memory"].append(
                {
                    "dim": d,
                    "threads": t,
                    "bytes_per_key": bpk,
                    "bytes_per_key_marginal": r["memory"]["bytes_per_key_marginal"],
                    "limit": limit,
                    "met": bpk <= limit,
                }
            )
    for k, v in list(goals.items()):
        goals[k + "_all_met"] = bool(v) and all(x["met"] for x in v)
    return goals


def markdown(report) -> str:
    m, results, goals = report["machine"], report["results"], report["goals"]
    ok = [r for r in results if "error" not in r]
    lines = [
        BEGIN,
        "## EmbeddingVariable lookup / lookup+Adagrad (`benchmarks/ev_lookup_update.py`)",
        "",
    ]
    lines += [
        f"- Date: {report['date']}",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB RAM, Linux {m['kernel']}",
        f"- Software: Python {m['python']}, tensorflow-cpu {m['tensorflow']}, numpy {m['numpy']}, "
        f"TFRA {m['tfra']} (benchmark venv only), deeprec at {m['deeprec_commit']}",
        f"- Command: `{report['command']}` (venv from `bash benchmarks/setup_env.sh`)",
        f"- Workload: Zipf({ZIPF_A}) ids over {NUM_KEYS:,} keys, {BATCH:,} ids/batch, "
        f"Adagrad lr={LR}, init accumulator {INIT_ACC}; steps per config "
        f"(train warm-up, train timed, lookup warm-up, lookup timed) = {report['steps']}; "
        f"threads = inter_op = intra_op; wall time {report['wall_s']:.0f} s.",
        "- `lookup` runs only the lookup op (result not fetched); `train` = lookup + loss + "
        "gradient + Adagrad update. Lookup is measured after training, on a populated table "
        "with fresh batches (deeprec's training lookup also inserts unseen ids; the others "
        "do not). Dense uses ids mod 1M.",
        "",
        "### Throughput (steps/s; ratios vs (a) dense, (c) TFRA and (c') TFRA-zeros)",
        "",
        "| system | dim | threads | train steps/s | train ms/step (p50) | vs dense | vs TFRA | "
        "vs TFRA-zeros | lookup steps/s | lookup ms/step (p50) | vs dense | vs TFRA | "
        "vs TFRA-zeros | other-CPU train / lookup |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(ok, key=lambda r: (r["dim"], r["threads"], SYSTEMS.index(r["system"]))):
        tr, lk = r["train"], r["lookup"]
        lines.append(
            f"| {LABELS[r['system']]} | {r['dim']} | {r['threads']} | "
            f"{tr['steps_per_s']:.2f} | {tr['p50_ms']:.1f} | {_fmt(tr['vs_dense'], suffix='x')} | "
            f"{_fmt(tr['vs_tfra'], suffix='x')} | {_fmt(tr['vs_tfra0'], suffix='x')} | "
            f"{lk['steps_per_s']:.2f} | {lk['p50_ms']:.1f} | {_fmt(lk['vs_dense'], suffix='x')} | "
            f"{_fmt(lk['vs_tfra'], suffix='x')} | {_fmt(lk['vs_tfra0'], suffix='x')} | "
            f"{100 * tr['other_cpu_frac']:.0f}% / {100 * lk['other_cpu_frac']:.0f}% |"
        )
    lines += [
        "",
        "### Memory (after the timed training; RSS = VmRSS growth from before "
        "variable initialisation)",
        "",
        "| system | dim | threads | keys in table | RSS growth MiB | bytes/key | "
        "marginal bytes/key |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(ok, key=lambda r: (r["dim"], r["threads"], SYSTEMS.index(r["system"]))):
        mm = r["memory"]
        growth = (mm["rss_after_train"] - mm["rss_before_init"]) / 2**20
        extra = f" (table {mm['table_bytes_per_row']} B/row)" if r["system"] == "dense" else ""
        lines.append(
            f"| {LABELS[r['system']]} | {r['dim']} | {r['threads']} | {mm['keys_after_train']:,} | "
            f"{growth:.1f} | {mm['bytes_per_key']:.0f}{extra} | "
            f"{_fmt(mm['bytes_per_key_marginal'], '.0f')} |"
        )
    lines += ["", "### Goals (deeprec)", ""]
    for g in goals["train_vs_tfra_ge_2x"]:
        lines.append(
            f"- lookup+update >= 2x TFRA, dim {g['dim']}, {g['threads']} thread(s): "
            f"{_fmt(g['ratio'], suffix='x')} -> {_verdict(g)}"
        )
    for g in goals["train_vs_tfra0_ge_2x"]:
        lines.append(
            f"- lookup+update >= 2x TFRA-zeros (stricter), dim {g['dim']}, "
            f"{g['threads']} thread(s): "
            f"{_fmt(g['ratio'], suffix='x')} -> {_verdict(g)}"
        )
    for g in goals["train_vs_dense_ge_0.5x"]:
        lines.append(
            f"- lookup+update >= 0.5x dense, dim {g['dim']}, {g['threads']} thread(s): "
            f"{_fmt(g['ratio'], suffix='x')} -> {_verdict(g)}"
        )
    for g in goals["memory"]:
        lines.append(
            f"- memory <= 1.5*(dim*4*(1+{SLOTS}))+32 = {g['limit']:.0f} B/key, dim {g['dim']}, "
            f"{g['threads']} thread(s): {g['bytes_per_key']:.0f} B/key "
            f"(marginal {_fmt(g['bytes_per_key_marginal'], '.0f')}) -> "
            f"{_verdict(g)}"
        )
    errs = [r for r in results if "error" in r]
    if errs:
        lines += ["", "### Failed configurations", ""]
        lines += [
            f"- {r['system']} dim {r['dim']} threads {r['threads']}: {r['error']}" for r in errs
        ]
    if report.get("notes"):
        lines += ["", "### Notes", ""] + [f"- {n}" for n in report["notes"]]
    lines += [END]
    return "\n".join(lines) + "\n"


def _wait_quiet(max_wait_s: float, threshold: float = 0.15) -> float:
    """Waits (up to max_wait_s) until other processes use < threshold of the
    machine over one second; returns the seconds waited."""
    waited = 0.0
    while waited < max_wait_s:
        b0 = cpu_seconds()[0]
        time.sleep(1.0)
        waited += 1.0
        if (cpu_seconds()[0] - b0) / os.cpu_count() < threshold:
            break
    return waited


def _run_config(python, system, dim, t, data, steps, trace, tmp) -> dict:
    out = os.path.join(tmp, "out.json")
    cmd = [
        python,
        os.path.abspath(__file__),
        "--worker",
        "--system",
        system,
        "--dim",
        str(dim),
        "--threads",
        str(t),
        "--data",
        data,
        "--steps",
        ",".join(map(str, steps)),
        "--out",
        out,
    ]
    if trace:
        cmd.append("--worker-trace")
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_worker_env(t), cwd=tmp)
    if proc.returncode == 0:
        with open(out) as f:
            r = json.load(f)
        print(
            f"{system:8s} dim={dim:3d} threads={t}: train "
            f"{r['train']['steps_per_s']:7.2f} steps/s, lookup "
            f"{r['lookup']['steps_per_s']:7.2f} steps/s, "
            f"{r['memory']['keys_after_train']:,} keys, "
            f"{r['memory']['bytes_per_key']:.0f} B/key, other-CPU "
            f"{100 * r['train']['other_cpu_frac']:.0f}%/"
            f"{100 * r['lookup']['other_cpu_frac']:.0f}% [{time.time() - t0:.0f}s]",
            flush=True,
        )
        return r
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    r = {"system": system, "dim": dim, "threads": t, "error": " | ".join(tail)}
    print(f"{system:8s} dim={dim:3d} threads={t}: FAILED {r['error']}", flush=True)
    return r


def _merge(rounds) -> dict:
    """Best round per mode (highest steps/s: least disturbed by other load);
    memory from the first successful round; every round kept under "rounds"."""
    ok = [r for r in rounds if "error" not in r]
    if not ok:
        return rounds[0]
    merged = dict(ok[0])
    for mode in ("train", "lookup"):
        merged[mode] = dict(max(ok, key=lambda r: r[mode]["steps_per_s"])[mode])
    merged["rounds"] = [
        {k: v for k, v in r.items() if k not in ("system", "dim", "threads", "steps")}
        for r in rounds
    ]
    for rr in merged["rounds"]:
        for mode in ("train", "lookup"):
            if mode in rr:
                rr[mode] = {k: v for k, v in rr[mode].items() if k != "op_type_us_per_step"}
    return merged


def run_driver(args):
    systems = args.systems.split(",")
    dims = [int(d) for d in args.dims.split(",")]
    threads = [int(t) for t in args.threads_list.split(",")]
    steps = QUICK_STEPS if args.quick else FULL_STEPS
    if args.steps:
        steps = tuple(int(s) for s in args.steps.split(","))
    python = args.python or sys.executable
    start = time.time()
    num_batches = sum(steps) + (2 * TRACE_STEPS if args.trace else 0)
    print(f"generating {num_batches} batches of {BATCH} Zipf({ZIPF_A}) ids ...", flush=True)
    batches = make_batches(num_batches)
    warm_t, timed_t = steps[0], steps[1]
    distinct_train = int(np.unique(batches[: warm_t + timed_t]).size)
    distinct_per_batch = float(np.mean([np.unique(b).size for b in batches[:5]]))
    rounds = args.rounds or (1 if args.quick else FULL_ROUNDS)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "batches.npy")
        np.save(data, batches)
        del batches
        runs = {}
        for rnd in range(rounds):
            for dim in dims:
                for t in threads:
                    for system in systems:
                        if args.wait_quiet:
                            _wait_quiet(args.wait_quiet)
                        r = _run_config(python, system, dim, t, data, steps, args.trace, tmp)
                        r["round"] = rnd
                        runs.setdefault((system, dim, t), []).append(r)
        results = [_merge(v) for v in runs.values()]
    for r in results:
        if "error" not in r and r["system"] != "dense":
            r["memory"]["distinct_ids_in_training_batches"] = distinct_train
    report = {
        "benchmark": "ev_lookup_update",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/ev_lookup_update.py"] + sys.argv[1:]),
        "machine": _machine_info(python),
        "workload": {
            "zipf_a": ZIPF_A,
            "num_keys": NUM_KEYS,
            "batch": BATCH,
            "dense_rows": DENSE_ROWS,
            "lr": LR,
            "initial_accumulator_value": INIT_ACC,
            "default_value_dim": DEFAULT_VALUE_DIM,
            "stddev": STDDEV,
            "distinct_ids_per_batch_mean": distinct_per_batch,
            "distinct_ids_in_training_batches": distinct_train,
        },
        "steps": list(steps),
        "results": results,
    }
    report["goals"] = summarize(results, dims, threads)
    report["notes"] = args.note or []
    report["wall_s"] = time.time() - start
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    full = set(systems) == set(SYSTEMS) and not args.quick
    # Quick and partial runs never replace the committed full results.
    out_path = args.json or (RESULTS if full else RESULTS.replace(".json", ".partial.json"))
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {out_path}")
    if args.docs or (full and not args.no_docs):
        write_section(DOCS, BEGIN, END, markdown(report))
        print(f"wrote {DOCS}")
    else:
        print(markdown(report))
    print(f"total {report['wall_s']:.0f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="few steps (smoke run)")
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--dims", default="16,64")
    p.add_argument("--threads-list", default="1,2", dest="threads_list")
    p.add_argument(
        "--steps", default=None, help="train_warmup,train_timed,lookup_warmup,lookup_timed"
    )
    p.add_argument("--python", default=None, help="interpreter for the workers")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each config wait up to SECONDS for other processes to "
        "use < 15%% of the CPUs (for shared machines)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"repetitions of every config, best kept (default {FULL_ROUNDS}, 1 with --quick)",
    )
    p.add_argument(
        "--no-trace",
        dest="trace",
        action="store_false",
        help="skip the per-op-type times (RunMetadata step stats) taken "
        f"from {TRACE_STEPS} extra traced steps per mode",
    )
    p.add_argument("--json", default=None, help=f"results path (default {RESULTS})")
    p.add_argument("--docs", action="store_true", help="always write docs/benchmarks.md")
    p.add_argument("--no-docs", action="store_true", help="never write docs/benchmarks.md")
    p.add_argument("--note", action="append", help="note to add to the report")
    # worker mode
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--system", choices=SYSTEMS, help=argparse.SUPPRESS)
    p.add_argument("--dim", type=int, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--worker-trace", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        result = run_worker(args)
        with open(args.out, "w") as f:
            json.dump(result, f)
    else:
        run_driver(args)


if __name__ == "__main__":
    main()
