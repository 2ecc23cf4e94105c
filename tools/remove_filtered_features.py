"""Removes the information of filtered features from a checkpoint.

An EmbeddingVariable ``N`` with a feature filter (CounterFilter or CBFFilter)
saves, besides ``N-keys``, ``N-values``, ``N-freqs``, ``N-versions`` and
``N-partition_offset``, the ids, frequencies and versions of the features the
filter has not admitted yet: ``N-keys_filtered``, ``N-freqs_filtered``,
``N-versions_filtered`` and ``N-partition_filter_offset``; its optimizer slots
(``N/Adagrad-keys_filtered`` and so on) may carry them too.  A model that is
about to be served never needs them, so this tool (DeepRec user guide, section
3.3) writes a copy of a checkpoint without them.

Every other tensor is copied unchanged: same name, dtype, shape and values,
string tensors included.  The input must be a V2 checkpoint (``PREFIX.index``
and ``PREFIX.data-*``, what ``tf.compat.v1.train.Saver`` writes by default).
The output is an ordinary V2 checkpoint that ``tf.train.list_variables`` and
``tf.compat.v1.train.Saver.restore`` read, and the ``checkpoint`` state file of
the output directory is updated so that ``tf.train.latest_checkpoint`` finds
it.  A tensor saved as slices of a partitioned variable is written whole; a
partitioned ``Saver`` restores its slices from it.  Only TensorFlow is
imported; deeprec does not have to be installed.

Usage::

    $ python tools/remove_filtered_features.py \\
          --input_checkpoint train/model.ckpt-20000 \\
          --output_checkpoint serve/model.ckpt-20000
    remove_filtered_features: kept 11 tensors, removed 8 tensors, 65846 -> 17108 bytes \
(serve/model.ckpt-20000)

Both arguments are checkpoint prefixes (the path without ``.index`` or
``.data-00000-of-00001``), not directories.  Exit status: 0 on success, 2 for
a missing input checkpoint or an output prefix equal to the input prefix, 1
for any other failure.  From Python, ``main(["--input_checkpoint", ...])``
returns the same status instead of exiting.
"""

import argparse
import os
import sys
import uuid

# Keep TensorFlow's C++ start-up chatter out of the tool's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Name suffixes of the tensors that hold filtered (not yet admitted) features.
FILTERED_SUFFIXES = (
    "-keys_filtered",
    "-freqs_filtered",
    "-versions_filtered",
    "-partition_filter_offset",
)

# Default number of tensor bytes written per SaveV2 call (and held in memory
# at once); larger checkpoints are written as several shards and merged.
DEFAULT_MAX_SHARD_BYTES = 1 << 30

_PROG = "remove_filtered_features"


class UsageError(Exception):
    """A problem with the arguments; reported with exit status 2."""


def is_filtered_tensor(name):
    """Returns True if tensor `name` holds filtered-feature information."""
    return name.endswith(FILTERED_SUFFIXES)


def checkpoint_files(prefix, num_shards=None):
    """Returns the files that make up the V2 checkpoint at `prefix`.

    These are ``prefix.index`` and the ``prefix.data-?????-of-?????`` shards
    (only those ending in ``-of-<num_shards>`` if `num_shards` is given).
    Returns an empty list if there is no ``prefix.index``.
    """
    index = prefix + ".index"
    if not tf.io.gfile.exists(index):
        return []
    of = "?????" if num_shards is None else f"{num_shards:05d}"
    return [index] + sorted(tf.io.gfile.glob(f"{prefix}.data-?????-of-{of}"))


def checkpoint_size(prefix, num_shards=None):
    """Returns the total size in bytes of the files of checkpoint `prefix`.

    `num_shards` is as for `checkpoint_files`.
    """
    return sum(tf.io.gfile.stat(f).length for f in checkpoint_files(prefix, num_shards))


def _missing_input_message(prefix):
    """Explains why `prefix` is not a checkpoint, with a hint if one helps."""
    message = f"input checkpoint not found: {prefix!r} (no {prefix + '.index'!r})"
    if tf.io.gfile.isdir(prefix):
        latest = tf.train.latest_checkpoint(prefix)
        hint = f"; did you mean {latest!r}?" if latest else ""
        return (f"input checkpoint {prefix!r} is a directory; pass a checkpoint "
                f"prefix such as <dir>/model.ckpt-1000{hint}")
    for ending in (".index", ".meta"):
        if prefix.endswith(ending):
            return f"{message}; pass the prefix without {ending!r}"
    if ".data-" in os.path.basename(prefix):
        return f"{message}; pass the prefix without the '.data-...' ending"
    return message


def _same_prefix(a, b):
    """Returns True if checkpoint prefixes `a` and `b` name the same files."""
    if "://" in a or "://" in b:  # Remote filesystems: compare as written.
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(a) == os.path.realpath(b)


def _plan_shards(names, sizes, max_shard_bytes):
    """Splits `names` into consecutive groups of at most `max_shard_bytes`.

    A tensor larger than the limit gets a group of its own.  Returns a list of
    non-empty lists of names, in the order of `names`.
    """
    shards, current, current_bytes = [], [], 0
    for name in names:
        if current and current_bytes + sizes[name] > max_shard_bytes:
            shards.append(current)
            current, current_bytes = [], 0
        current.append(name)
        current_bytes += sizes[name]
    if current:
        shards.append(current)
    return shards


def _tensor_bytes(shape, dtype):
    """Estimates the in-memory size of a tensor (strings count 64 bytes each)."""
    count = 1
    for dim in shape:
        count *= dim
    return count * (64 if dtype == tf.string else dtype.size)


def write_tensors(reader, names, dtypes, output_prefix, max_shard_bytes):
    """Copies tensors `names` from `reader` to a V2 checkpoint at `output_prefix`.

    Tensors are read and written a shard at a time (about `max_shard_bytes`
    each) with ``SaveV2``; several shards are joined with
    ``MergeV2Checkpoints`` into one checkpoint.  The ops run in a private
    graph and session, so this works whether or not eager execution is
    enabled in the calling process.

    Returns:
      The number of data shards written.
    """
    shapes = reader.get_variable_to_shape_map()
    sizes = {n: _tensor_bytes(shapes[n], dtypes[n]) for n in names}
    shards = _plan_shards(names, sizes, max_shard_bytes)
    if len(shards) == 1:
        shard_prefixes = [output_prefix]
        temp_dir = None
    else:
        temp_dir = f"{output_prefix}_temp_{uuid.uuid4().hex}"
        shard_prefixes = [
            os.path.join(temp_dir, f"part-{i:05d}-of-{len(shards):05d}")
            for i in range(len(shards))]
    directory = os.path.dirname(output_prefix)
    if directory:
        tf.io.gfile.makedirs(directory)

    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as sess:
        placeholders = {
            n: tf.compat.v1.placeholder(dtypes[n], shape=shapes[n]) for n in names}
        try:
            for shard, shard_prefix in zip(shards, shard_prefixes, strict=True):
                save = tf.raw_ops.SaveV2(
                    prefix=shard_prefix,
                    tensor_names=shard,
                    shape_and_slices=[""] * len(shard),
                    tensors=[placeholders[n] for n in shard])
                sess.run(save, feed_dict={placeholders[n]: reader.get_tensor(n)
                                          for n in shard})
            if temp_dir is not None:
                sess.run(tf.raw_ops.MergeV2Checkpoints(
                    checkpoint_prefixes=shard_prefixes,
                    destination_prefix=output_prefix,
                    delete_old_dirs=True))
        finally:
            if temp_dir is not None and tf.io.gfile.exists(temp_dir):
                tf.io.gfile.rmtree(temp_dir)
    return len(shards)


def update_checkpoint_state(output_prefix):
    """Makes `output_prefix` the latest checkpoint of its directory.

    Writes the ``checkpoint`` state file with TensorFlow's
    checkpoint-management API.  Checkpoints already listed there stay listed,
    before the new one.  Paths inside the directory, the new one included, are
    written relative to it, so that the directory can be moved.
    """
    directory = os.path.dirname(output_prefix) or "."
    local = "://" not in directory
    if local:
        directory = os.path.abspath(directory)
    latest = os.path.join(directory, os.path.basename(output_prefix))
    state = tf.train.get_checkpoint_state(directory)
    # get_checkpoint_state has joined relative entries to `directory`.
    listed = list(state.all_model_checkpoint_paths) if state is not None else []
    paths = [p for p in dict.fromkeys(listed) if p != latest] + [latest]
    if local:
        # An absolute save_dir keeps relative entries as written; a remote
        # one (not absolute to os.path) makes TensorFlow relativize them.
        paths = [os.path.basename(p) if os.path.dirname(p) == directory else p
                 for p in paths]
    # The v1 function is the public entry to TensorFlow's checkpoint
    # management for a state file; keep its deprecation notice off the output.
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        tf.compat.v1.train.update_checkpoint_state(
            directory, paths[-1], all_model_checkpoint_paths=paths)
    finally:
        logger.setLevel(level)


def remove_filtered_features(input_checkpoint, output_checkpoint,
                             max_shard_bytes=DEFAULT_MAX_SHARD_BYTES):
    """Writes `input_checkpoint` without filtered features to `output_checkpoint`.

    Args:
      input_checkpoint: prefix of an existing checkpoint.
      output_checkpoint: prefix to write; must differ from `input_checkpoint`.
      max_shard_bytes: about how many tensor bytes to hold in memory at once.

    Returns:
      A dict with ``kept`` and ``removed`` (sorted lists of tensor names) and
      ``bytes_before`` and ``bytes_after`` (checkpoint sizes on disk).

    Raises:
      UsageError: if the input does not exist or is the output.
      ValueError: if every tensor of the input would be removed.
    """
    if not checkpoint_files(input_checkpoint):
        raise UsageError(_missing_input_message(input_checkpoint))
    if _same_prefix(input_checkpoint, output_checkpoint):
        raise UsageError(
            f"output checkpoint {output_checkpoint!r} is the input checkpoint; "
            "refusing to overwrite it, choose another output prefix")

    reader = tf.train.load_checkpoint(input_checkpoint)
    dtypes = reader.get_variable_to_dtype_map()
    names = sorted(dtypes)
    kept = [n for n in names if not is_filtered_tensor(n)]
    removed = [n for n in names if is_filtered_tensor(n)]
    if not kept:
        raise ValueError(
            f"every tensor of {input_checkpoint!r} holds filtered features; "
            "nothing would be left to write")

    bytes_before = checkpoint_size(input_checkpoint)
    num_shards = write_tensors(reader, kept, dtypes, output_checkpoint, max_shard_bytes)
    update_checkpoint_state(output_checkpoint)
    return {"kept": kept, "removed": removed, "bytes_before": bytes_before,
            "bytes_after": checkpoint_size(output_checkpoint, num_shards)}


def parse_args(argv=None):
    """Parses the command line (``sys.argv[1:]`` when `argv` is None)."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Copy a checkpoint without the information of features "
                    "filtered by EmbeddingVariable feature filters (the "
                    "*-keys_filtered, *-freqs_filtered, *-versions_filtered and "
                    "*-partition_filter_offset tensors).")
    parser.add_argument("--input_checkpoint", required=True,
                        help="prefix of the checkpoint to read, e.g. "
                             "/models/train/model.ckpt-20000")
    parser.add_argument("--output_checkpoint", required=True,
                        help="prefix of the checkpoint to write, e.g. "
                             "/models/serve/model.ckpt-20000")
    parser.add_argument("--max_shard_bytes", type=int, default=DEFAULT_MAX_SHARD_BYTES,
                        help="tensor bytes read and written at a time; larger "
                             "checkpoints are written as several data shards "
                             "(default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also list the names of the removed tensors")
    args = parser.parse_args(argv)
    if args.max_shard_bytes <= 0:
        parser.error("--max_shard_bytes must be positive")
    return args


def main(argv=None):
    """Runs the tool; returns the exit status (0, 1 or 2) instead of exiting.

    Argument errors found by argparse still raise ``SystemExit(2)``.
    """
    args = parse_args(argv)
    try:
        result = remove_filtered_features(
            args.input_checkpoint, args.output_checkpoint, args.max_shard_bytes)
    except UsageError as e:
        print(f"{_PROG}: error: {e}", file=sys.stderr)
        return 2
    except (tf.errors.OpError, OSError, ValueError) as e:
        message = getattr(e, "message", None) or str(e)
        print(f"{_PROG}: error: {message}", file=sys.stderr)
        return 1
    if args.verbose:
        for name in result["removed"]:
            print(f"removed {name}")
    print(f"{_PROG}: kept {len(result['kept'])} tensors, removed "
          f"{len(result['removed'])} tensors, {result['bytes_before']} -> "
          f"{result['bytes_after']} bytes ({args.output_checkpoint})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
