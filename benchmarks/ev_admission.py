"""Feature-admission benchmark: no filter vs CounterFilter vs CBFFilter.

Three deeprec EmbeddingVariables (dim 16, `tf.train.AdagradOptimizer(0.05)`,
loss = reduce_sum(emb * emb), emb = tf.nn.embedding_lookup(ev, ids)) are trained
over the SAME id stream, each in its own subprocess so RSS is isolated:

  none     no filter
  counter  tf.CounterFilter(filter_freq=5)
  cbf      tf.CBFFilter(filter_freq=5, max_element_size=<distinct ids>,
                        false_positive_probability=0.01, counter_type=tf.uint8)

Workload (deterministic, numpy seed 0): D distinct ids (default 10M). 1% of
them ("frequent") appear >= 5 times: count = 5 + floor(50000 * rank**-1.2)
(Zipf(1.2) tail on top of the admission threshold). The other 99% appear 1-4
times with P(k) proportional to k**-1.2. Ids are random int64 keys; the
occurrence list is shuffled with a fixed seed and fed in batches of 65,536
through feed_dict.

Measured per system: bytes per distinct id = VmRSS growth (/proc/self/status,
read after graph + stream exist but before variable init, and after the whole
stream) / D; throughput = lookup+update steps/s over the stream after
--warmup untimed steps, reported as a ratio vs no filter; ev.stats() =
[total, admitted, filtered, last evicted].

Goals: CounterFilter throughput >= 0.90x no filter; CBFFilter RSS growth <=
25% of CounterFilter's.

How to run (2 threads; about 30 s and 2.3 GB peak RSS on 2 cores at 10M ids):

    /tmp/venv/bin/python benchmarks/ev_admission.py            # 10M distinct ids
    /tmp/venv/bin/python benchmarks/ev_admission.py --distinct 2000000

Writes benchmarks/results/ev_admission.json and prints a markdown table.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

BATCH = 65536
FREQ = 5
SYSTEMS = ("none", "counter", "cbf")


def make_stream(distinct, seed=0):
    rng = np.random.default_rng(seed)
    keys = rng.choice(np.iinfo(np.int64).max, size=distinct, replace=False).astype(np.int64)
    n_freq = distinct // 100
    ranks = np.arange(1, n_freq + 1, dtype=np.float64)
    freq_counts = FREQ + np.floor(50000.0 * ranks ** -1.2).astype(np.int64)
    p = np.arange(1, 5, dtype=np.float64) ** -1.2
    rare_counts = rng.choice(np.arange(1, 5), size=distinct - n_freq, p=p / p.sum())
    counts = np.concatenate([freq_counts, rare_counts])
    stream = np.repeat(keys, counts)
    rng.shuffle(stream)
    return stream


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def worker(system, stream_path, distinct, threads, warmup):
    import deeprec as tf
    tf.compat.v1.disable_eager_execution()
    stream = np.load(stream_path)
    n_steps = len(stream) // BATCH + (len(stream) % BATCH > 0)
    batches = [stream[i * BATCH:(i + 1) * BATCH] for i in range(n_steps)]
    if system == "none":
        filt = None
    elif system == "counter":
        filt = tf.CounterFilter(filter_freq=FREQ)
    else:
        filt = tf.CBFFilter(filter_freq=FREQ, max_element_size=distinct,
                            false_positive_probability=0.01, counter_type=tf.uint8)
    ids = tf.compat.v1.placeholder(tf.int64, [None])
    ev = tf.get_embedding_variable(
        "ev_" + system, embedding_dim=16,
        ev_option=tf.EmbeddingVariableOption(filter_option=filt))
    emb = tf.nn.embedding_lookup(ev, ids)
    loss = tf.reduce_sum(emb * emb)
    train = tf.train.AdagradOptimizer(0.05).minimize(loss)
    stats = ev.stats()
    cfg = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=threads,
                                   intra_op_parallelism_threads=threads)
    with tf.compat.v1.Session(config=cfg) as sess:
        rss0 = rss_bytes()
        sess.run(tf.compat.v1.global_variables_initializer())
        for b in batches[:warmup]:
            sess.run(train, {ids: b})
        t0 = time.perf_counter()
        for b in batches[warmup:]:
            sess.run(train, {ids: b})
        dt = time.perf_counter() - t0
        rss1 = rss_bytes()
        st = [int(x) for x in sess.run(stats)]
    return {"system": system, "steps_timed": n_steps - warmup, "seconds": dt,
            "steps_per_s": (n_steps - warmup) / dt, "rss_before": rss0, "rss_after": rss1,
            "bytes_per_distinct_id": (rss1 - rss0) / distinct, "stats": st,
            "filter": None if filt is None else dict(vars(filt))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--distinct", type=int, default=10_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "ev_admission.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--stream", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.stream, a.distinct, a.threads, a.warmup)))
        return
    t = time.time()
    stream = make_stream(a.distinct)
    n_adm = a.distinct // 100
    print(f"stream: {len(stream):,} ids, {a.distinct:,} distinct, {n_adm:,} reach "
          f"freq {FREQ}, {-(-len(stream) // BATCH)} batches ({time.time() - t:.1f}s)",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "stream.npy")
        np.save(path, stream)
        del stream
        res = {}
        for s in SYSTEMS:
            out = subprocess.run([sys.executable, __file__, "--worker", s, "--stream", path,
                                  "--distinct", str(a.distinct), "--threads", str(a.threads),
                                  "--warmup", str(a.warmup)],
                                 check=True, capture_output=True, text=True).stdout
            res[s] = json.loads(out.strip().splitlines()[-1])
            print(s, res[s], file=sys.stderr)
    base = res["none"]["steps_per_s"]
    for r in res.values():
        r["throughput_vs_none"] = r["steps_per_s"] / base
    thr = res["counter"]["throughput_vs_none"]
    mem = res["cbf"]["rss_after"] - res["cbf"]["rss_before"]
    mem_c = res["counter"]["rss_after"] - res["counter"]["rss_before"]
    goals = {"counter_throughput_ge_0.90": [thr, thr >= 0.90],
             "cbf_memory_le_0.25_of_counter": [mem / mem_c, mem / mem_c <= 0.25]}
    doc = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
           "cpus": os.cpu_count(), "distinct": a.distinct, "threads": a.threads,
           "batch": BATCH, "filter_freq": FREQ, "systems": res, "goals": goals}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
    print("| system | bytes/distinct id | steps/s | vs none "
          "| stats [total, admitted, filtered, evicted] |")
    print("|---|---:|---:|---:|---|")
    for s, r in res.items():
        print(f"| {s} | {r['bytes_per_distinct_id']:.1f} | {r['steps_per_s']:.1f} | "
              f"{r['throughput_vs_none']:.2f}x | {r['stats']} |")
    print(json.dumps(goals))


if __name__ == "__main__":
    main()
