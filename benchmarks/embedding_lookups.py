"""Unfused vs fused vs grouped sparse embedding lookups of many features, CPU.

The workload of DeepRec's Group Embedding (guide §3.6): --features sparse
features, each with its own EmbeddingVariable, dims cycling through
--dims (8, 16, 32, 64), batches of --batch rows with 1 to --max-ids ids per
row (uniform), ids drawn Zipf(--zipf) over --vocab ids per feature, combiner
"mean". Variants, each on its own EmbeddingVariables (same initializer):

  unfused  tf.nn.safe_embedding_lookup_sparse per feature
  fused    tf.nn.fused_safe_embedding_lookup_sparse per feature
  grouped  one tf.nn.group_embedding_lookup_sparse over all features (one
           group: params_num_per_group left at its default)
  grouped/N  the same with params_num_per_group = N (--group-size, default
           10): the guide advises small groups on CPU ("the smaller the
           better"), where a group's rows stay in the cache between its ops

Every variant runs the same step on the same batches (fed through sparse
placeholders): the lookups, loss = sum over features of reduce_sum(out^2),
its gradients with respect to every EmbeddingVariable, and

  train  plain SGD (lr 0.01) applying them, or
  grads  the gradients computed and not applied (a scalar that depends on
         every gradient's values and indices is fetched).

All variants live in one graph and one session (inter = intra op threads =
--threads). After --warmup untimed steps each, --rounds rounds of --steps
steps per variant run with the variants alternating step by step (in
rotating order), so that all of them meet the same load from other
processes (this machine is shared). Reported per variant: steps/s from the
median step time (the ratios use it too), steps/s of its best round, and
this process's median CPU time per step; and per round, the share of the
CPUs other processes used. Python's garbage collector is frozen after the
graph is built, so that it does not scan the graph's objects during timed
steps.

How to run (the worktree's deeprec must be importable, e.g. PYTHONPATH=.):

    python benchmarks/embedding_lookups.py            # full run
    python benchmarks/embedding_lookups.py --quick    # smoke run, seconds

Writes benchmarks/results/embedding_lookups.json (a quick run writes
embedding_lookups.partial.json) and prints a markdown table; --docs also
writes it as a section of docs/benchmarks.md.
"""

import argparse
import datetime
import gc
import os
import platform
import statistics
import sys
import time

import numpy as np
from publish import OtherCpu, git_commit, publish

HERE = os.path.dirname(os.path.abspath(__file__))
BEGIN, END = "<!-- embedding_lookups:begin -->", "<!-- embedding_lookups:end -->"
VARIANTS = ("unfused", "fused", "grouped", "grouped/N")
MODES = ("train", "grads")


def make_batches(args, count, seed=0):
    """[[(indices, ids, dense_shape) per feature] per batch]."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        features = []
        for _ in range(args.features):
            lengths = rng.integers(1, args.max_ids + 1, size=args.batch)
            rows = np.repeat(np.arange(args.batch), lengths)
            cols = np.concatenate([np.arange(n) for n in lengths])
            ids = (rng.zipf(args.zipf, size=rows.size) - 1) % args.vocab
            indices = np.stack([rows, cols], axis=1).astype(np.int64)
            features.append((indices, ids.astype(np.int64),
                             np.array([args.batch, args.max_ids], np.int64)))
        batches.append(features)
    return batches


def build_variant(tf, variant, args, placeholders):
    """{mode: fetch} of one variant, and its graph op counts."""
    dims = [int(d) for d in args.dims.split(",")]
    init = tf.random_uniform_initializer(-0.1, 0.1, seed=1)
    graph = tf.get_default_graph()
    scope = variant.replace("/N", f"_{args.group_size}")
    with tf.variable_scope(scope):
        evs = [tf.get_embedding_variable(f"ev_{i}", dims[i % len(dims)], initializer=init)
               for i in range(args.features)]
    before = len(graph.get_operations())
    with tf.name_scope(scope):
        if variant.startswith("grouped"):
            group_size = args.group_size if variant == "grouped/N" else sys.maxsize
            outs = tf.nn.group_embedding_lookup_sparse(
                evs, placeholders, ["mean"] * args.features,
                params_num_per_group=group_size)
        else:
            lookup = tf.nn.safe_embedding_lookup_sparse if variant == "unfused" \
                else tf.nn.fused_safe_embedding_lookup_sparse
            outs = [lookup(ev, sp, combiner="mean") for ev, sp in zip(evs, placeholders,
                                                                    strict=True)]
        forward_ops = len(graph.get_operations()) - before
        loss = tf.add_n([tf.reduce_sum(out * out) for out in outs])
        grads = tf.gradients(loss, evs)
        backward_ops = len(graph.get_operations()) - before
        # A scalar that depends on every gradient (a group of them would let
        # TensorFlow skip computing their values).
        anchor = tf.add_n([tf.reduce_sum(g.values[:1]) + tf.cast(tf.size(g.indices),
                                                                 tf.float32)
                           for g in grads])
        fetches = {
            "grads": anchor,
            "train": tf.train.GradientDescentOptimizer(0.01).apply_gradients(
                list(zip(grads, evs, strict=True))),
        }
    return fetches, {"forward": forward_ops, "forward+gradient": backward_ops}


def _name(variant, args):
    """The variant's name in reports: grouped/N with N filled in."""
    return variant.replace("/N", f"/{args.group_size}")


def run(args, batches):
    import deeprec as tf

    placeholders = [tf.sparse_placeholder(tf.int64, shape=[None, None])
                    for _ in range(args.features)]
    variants = [v for v in VARIANTS if v in args.variants.split(",")]
    fetches, op_counts = {}, {}
    for variant in variants:
        fetches[variant], op_counts[_name(variant, args)] = build_variant(
            tf, variant, args, placeholders)
    feeds = [dict(zip(placeholders, batch, strict=True)) for batch in batches]
    config = tf.ConfigProto(intra_op_parallelism_threads=args.threads,
                            inter_op_parallelism_threads=args.threads)
    modes = [m for m in MODES if m in args.modes.split(",")]
    gc.collect()
    gc.freeze()
    results, load = [], {}
    with tf.Session(config=config) as sess:
        sess.run(tf.global_variables_initializer())
        for mode in modes:
            for variant in variants:
                for i in range(args.warmup):
                    sess.run(fetches[variant][mode], feeds[i % len(feeds)])
            # Per variant, per round: [(wall s, this process's CPU s)] per step.
            steps = {v: [[] for _ in range(args.rounds)] for v in variants}
            load[mode] = []
            for r in range(args.rounds):
                with OtherCpu() as other:
                    for i in range(args.steps):
                        # Step by step, in rotating order, so that every
                        # variant meets the same load from other processes.
                        shift = (r * args.steps + i) % len(variants)
                        for variant in variants[shift:] + variants[:shift]:
                            t0, c0 = time.perf_counter(), time.process_time()
                            sess.run(fetches[variant][mode], feeds[i % len(feeds)])
                            steps[variant][r].append((time.perf_counter() - t0,
                                                      time.process_time() - c0))
                load[mode].append(other.share)
                print(f"{mode} round {r}: " + ", ".join(
                    f"{_name(v, args)} {len(steps[v][r]) / sum(w for w, _ in steps[v][r]):.2f}"
                    for v in variants) + f" steps/s; other processes "
                    f"{100 * load[mode][-1]:.0f}% of the CPUs", flush=True)
            median = {v: statistics.median(w for rnd in steps[v] for w, _ in rnd)
                      for v in variants}
            for variant in variants:
                rounds = steps[variant]
                results.append({
                    "mode": mode, "variant": _name(variant, args),
                    "steps_per_s": 1.0 / median[variant],
                    "best_round_steps_per_s": max(len(rnd) / sum(w for w, _ in rnd)
                                                  for rnd in rounds),
                    "vs_unfused": (median["unfused"] / median[variant]
                                   if "unfused" in median else None),
                    "cpu_ms_per_step": 1000 * statistics.median(
                        c for rnd in rounds for _, c in rnd),
                    "step_ms": [[1000 * w for w, _ in rnd] for rnd in rounds],
                })
    return results, op_counts, load


def render(report):
    a = report["args"]
    lines = [
        BEGIN,
        "## Unfused vs fused vs grouped lookups of 50 features "
        "(`benchmarks/embedding_lookups.py`)",
        "",
        f"- Date: {report['date']}",
        f"- Machine: {report['machine']}",
        f"- Software: Python {platform.python_version()}, deeprec at {report['commit']}",
        f"- Command: `{report['command']}`",
        f"- Workload: {a['features']} sparse features, one EmbeddingVariable each, dims "
        f"cycling {a['dims']}; batch {a['batch']}, 1-{a['max_ids']} ids per row (uniform), "
        f"ids Zipf({a['zipf']}) over {a['vocab']:,} per feature, {a['batches']} batches fed "
        f"in turn; combiner mean; loss = sum of squares of all outputs; gradients w.r.t. "
        f"every EV; `train` applies them with SGD, `grads` computes them (a scalar that "
        f"depends on each one is fetched). grouped/N: params_num_per_group = "
        f"{a['group_size']}. inter = intra op threads = {a['threads']}. "
        f"{a['rounds']} rounds of {a['steps']} steps per variant after {a['warmup']} "
        f"warm-up steps, the variants alternating step by step.",
        "- Load: other processes used " + "; ".join(
            f"{mode} {min(v) * 100:.0f}-{max(v) * 100:.0f}% of the CPUs"
            for mode, v in report["other_cpu_by_round"].items()) + " during the rounds.",
        "",
        "| mode | variant | steps/s (median step) | steps/s (best round) | vs unfused "
        "| CPU ms/step |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        ratio = f"{r['vs_unfused']:.2f}x" if r["vs_unfused"] else "n/a"
        lines.append(f"| {r['mode']} | {r['variant']} | {r['steps_per_s']:.2f} | "
                     f"{r['best_round_steps_per_s']:.2f} | {ratio} | "
                     f"{r['cpu_ms_per_step']:.1f} |")
    lines += ["", "Graph ops built per variant (forward / forward + gradient):", ""]
    lines.append("| variant | forward | forward + gradient |")
    lines.append("|---|---:|---:|")
    for variant, counts in report["op_counts"].items():
        lines.append(f"| {variant} | {counts['forward']} | {counts['forward+gradient']} |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--dims", default="8,16,32,64")
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--max-ids", type=int, default=20)
    parser.add_argument("--vocab", type=int, default=100_000)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--group-size", type=int, default=10,
                        help="params_num_per_group of the grouped/N variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=8, help="distinct batches fed in turn")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--quick", action="store_true",
                        help="small smoke run; writes the .partial.json only")
    parser.add_argument("--docs", action="store_true",
                        help="also write the table to docs/benchmarks.md")
    args = parser.parse_args()
    if args.quick:
        args.features, args.batch, args.steps, args.warmup, args.rounds = 6, 128, 3, 1, 1
        args.batches = 2
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown --variants {sorted(unknown)}; choose from {VARIANTS}")
    batches = make_batches(args, args.batches)
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"{platform.system()} {platform.release()}",
        "commit": git_commit(),
        "command": "python benchmarks/embedding_lookups.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k not in ("quick", "docs")),
        "args": vars(args),
    }
    report["results"], report["op_counts"], report["other_cpu_by_round"] = run(args, batches)
    publish("embedding_lookups", report, render(report), args.quick, args.docs, BEGIN, END)


if __name__ == "__main__":
    main()
