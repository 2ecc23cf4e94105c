"""Shared fixtures: every test builds its graph in a fresh default graph."""

import os
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

import deeprec as tf


@pytest.fixture(autouse=True)
def fresh_graph():
    tf.reset_default_graph()
    yield
    tf.reset_default_graph()


@pytest.fixture
def run_concurrently():
    """run(sess, fetch, threads, runs): every result of `runs` sess.run(fetch)
    calls in each of `threads` threads at once; raises the first error."""
    def run(sess, fetch, threads=4, runs=10):
        results, errors = [], []

        def work():
            try:
                for _ in range(runs):
                    results.append(sess.run(fetch))
            except Exception as e:  # Re-raised in the calling thread.
                errors.append(e)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if errors:
            raise errors[0]
        return results
    return run
