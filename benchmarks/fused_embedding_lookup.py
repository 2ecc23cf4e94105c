"""Fused vs unfused sparse embedding lookups (guide §3.10), CPU.

Runs, side by side in one process and one session per table kind, deeprec's
`tf.nn.fused_safe_embedding_lookup_sparse` (pre-lookup op, one gather per
partition, post-lookup op) and TensorFlow's `tf.nn.safe_embedding_lookup_sparse`
(the unfused baseline; deeprec's EV dispatch for EmbeddingVariables) on the
same table and the same batches. Table kinds:

  dense    resource tf.Variable [rows, dim]
  dense4   the same rows as a PartitionedVariable of 4 "div" partitions
  ev       EmbeddingVariable (default_value_dim 4096)
  ev4      PartitionedEmbeddingVariable of 4 shards

Workload (numpy seed 0, the same arrays for both variants): batches of
--batch rows; each row has Poisson(--ids-per-row) ids (rows with none are
empty) drawn Zipf(1.1) over --rows ids; 2% of the ids are -1 (pruned by both
variants); weights uniform [0.5, 1.5]; combiner "mean"; --dim columns. Batches
are fed through sparse placeholders.

Modes: `forward` runs the lookup and fetches reduce_sum of the result (so the
output is not copied out); `train` runs lookup + loss (sum of squares) +
gradient + plain SGD update. Each round times --steps steps of each variant
after --warmup untimed ones; variants alternate within a round and the best
round is kept. The report gives steps/s, the fused/unfused ratio, and the
number of graph ops each variant builds (forward, and forward + gradient).

The guide's speedups were measured on GPU, where fusion saves kernel
launches; this CPU benchmark shows the op-count saving and the CPU cost.

How to run (the worktree's deeprec must be importable, e.g. PYTHONPATH=.):

    python benchmarks/fused_embedding_lookup.py            # full run
    python benchmarks/fused_embedding_lookup.py --quick    # smoke run, seconds

Writes benchmarks/results/fused_embedding_lookup.json (a quick run writes
fused_embedding_lookup.partial.json) and prints a markdown table; --docs also
writes it as a section of docs/benchmarks.md.
"""

import argparse
import datetime
import json
import os
import platform
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
DOCS = os.path.join(HERE, "..", "docs", "benchmarks.md")
BEGIN, END = "<!-- fused_embedding_lookup:begin -->", "<!-- fused_embedding_lookup:end -->"
KINDS = ("dense", "dense4", "ev", "ev4")
MODES = ("forward", "train")


def make_batches(args, count, seed=0):
    """[(indices, ids, weights, dense_shape)] with the workload described above."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        lengths = rng.poisson(args.ids_per_row, size=args.batch)
        rows = np.repeat(np.arange(args.batch), lengths)
        cols = np.concatenate([np.arange(n) for n in lengths]) if len(rows) else rows
        ids = (rng.zipf(1.1, size=len(rows)) - 1) % args.rows
        ids[rng.random(len(rows)) < 0.02] = -1
        weights = rng.uniform(0.5, 1.5, size=len(rows)).astype(np.float32)
        indices = np.stack([rows, cols], axis=1).astype(np.int64)
        shape = np.array([args.batch, max(int(lengths.max(initial=0)), 1)], np.int64)
        batches.append((indices, ids.astype(np.int64), weights, shape))
    return batches


def build_table(tf, kind, args):
    init = tf.random_uniform_initializer(-0.1, 0.1, seed=1)
    if kind == "dense":
        var = tf.get_variable("table", [args.rows, args.dim], initializer=init,
                              use_resource=True)
        return var, [var]
    if kind == "dense4":
        var = tf.get_variable("table", [args.rows, args.dim], initializer=init,
                              use_resource=True, partitioner=tf.fixed_size_partitioner(4))
        return var, list(var)
    partitioner = tf.fixed_size_partitioner(4) if kind == "ev4" else None
    ev = tf.get_embedding_variable("table", args.dim, initializer=init,
                                   partitioner=partitioner)
    return ev, (list(ev) if partitioner else [ev])


def count_ops(tf, build):
    """(result of build(), number of ops it added to the default graph)."""
    before = len(tf.get_default_graph().get_operations())
    result = build()
    return result, len(tf.get_default_graph().get_operations()) - before


def run_kind(kind, args, batches):
    import deeprec as tf

    tf.reset_default_graph()
    params, shards = build_table(tf, kind, args)
    sp_ids = tf.sparse_placeholder(tf.int64, shape=[None, None])
    sp_weights = tf.sparse_placeholder(tf.float32, shape=[None, None])
    lookups = {"fused": tf.nn.fused_safe_embedding_lookup_sparse,
               "unfused": tf.nn.safe_embedding_lookup_sparse}
    fetches, op_counts = {}, {}
    for variant, lookup in lookups.items():
        with tf.name_scope(variant):
            out, forward_ops = count_ops(
                tf, lambda lookup=lookup: lookup(params, sp_ids, sp_weights, combiner="mean"))
            loss = tf.reduce_sum(out * out)
            train, train_ops = count_ops(
                tf, lambda loss=loss: tf.train.GradientDescentOptimizer(0.01).minimize(
                    loss, var_list=shards))
        fetches[variant] = {"forward": tf.reduce_sum(out), "train": train}
        op_counts[variant] = {"forward": forward_ops, "forward+gradient": forward_ops + train_ops}
    config = tf.ConfigProto(intra_op_parallelism_threads=args.threads,
                            inter_op_parallelism_threads=args.threads)
    feeds = [{sp_ids: (ind, ids, shape), sp_weights: (ind, w, shape)}
             for ind, ids, w, shape in batches]
    timings = {v: {m: [] for m in MODES} for v in lookups}
    with tf.Session(config=config) as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(args.rounds):
            for mode in MODES:
                for variant in lookups:
                    fetch = fetches[variant][mode]
                    for i in range(args.warmup):
                        sess.run(fetch, feeds[i % len(feeds)])
                    start = time.perf_counter()
                    for i in range(args.steps):
                        sess.run(fetch, feeds[(args.warmup + i) % len(feeds)])
                    timings[variant][mode].append(args.steps / (time.perf_counter() - start))
    results = []
    for mode in MODES:
        best = {v: max(timings[v][mode]) for v in lookups}
        results.append({
            "kind": kind, "mode": mode,
            "fused_steps_per_s": best["fused"], "unfused_steps_per_s": best["unfused"],
            "ratio": best["fused"] / best["unfused"],
            "rounds": {v: timings[v][mode] for v in lookups},
        })
    return results, op_counts


def render(report):
    a = report["args"]
    lines = [
        BEGIN,
        "## Fused vs unfused sparse embedding lookup (`benchmarks/fused_embedding_lookup.py`)",
        "",
        f"- Date: {report['date']}",
        f"- Machine: {report['machine']}",
        f"- Command: `{report['command']}`",
        f"- Workload: batch {a['batch']}, Poisson({a['ids_per_row']}) ids per row, "
        f"Zipf(1.1) over {a['rows']:,} ids, 2% ids -1, dim {a['dim']}, combiner mean, "
        f"threads {a['threads']}, {a['steps']} timed steps x {a['rounds']} rounds (best kept).",
        "",
        "| table | mode | fused steps/s | unfused steps/s | fused / unfused |",
        "|---|---|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(f"| {r['kind']} | {r['mode']} | {r['fused_steps_per_s']:.1f} | "
                     f"{r['unfused_steps_per_s']:.1f} | {r['ratio']:.2f}x |")
    lines += ["", "Graph ops built (fused / unfused):", "",
              "| table | forward | forward + gradient + SGD |", "|---|---:|---:|"]
    for kind, counts in report["op_counts"].items():
        lines.append(f"| {kind} | {counts['fused']['forward']} / {counts['unfused']['forward']} "
                     f"| {counts['fused']['forward+gradient']} / "
                     f"{counts['unfused']['forward+gradient']} |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_docs(text):
    with open(DOCS) as f:
        old = f.read()
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + text.rstrip("\n") + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    with open(DOCS, "w") as f:
        f.write(new)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--ids-per-row", type=float, default=8.0)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--quick", action="store_true",
                        help="small smoke run; writes the .partial.json only")
    parser.add_argument("--docs", action="store_true",
                        help="also write the table to docs/benchmarks.md")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.rows, args.steps, args.warmup, args.rounds = 256, 10_000, 5, 2, 1
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown --kinds {sorted(unknown)}; choose from {KINDS}")
    batches = make_batches(args, count=min(args.steps + args.warmup, 50))
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"{platform.system()} {platform.release()}",
        "command": "python benchmarks/fused_embedding_lookup.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k not in ("quick", "docs")),
        "args": vars(args), "results": [], "op_counts": {},
    }
    for kind in kinds:
        results, counts = run_kind(kind, args, batches)
        report["results"] += results
        report["op_counts"][kind] = counts
    name = "fused_embedding_lookup" + (".partial" if args.quick else "") + ".json"
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, name), "w") as f:
        json.dump(report, f, indent=2)
    text = render(report)
    print(text)
    if args.docs and not args.quick:
        write_docs(text)


if __name__ == "__main__":
    main()
