"""A partitioned EmbeddingVariable: shards that split the ids by `key mod 1000`."""

from collections.abc import Iterator

from tensorflow.python.framework import tensor as tensor_lib
from tensorflow.python.ops import array_ops_stack, math_ops
from tensorflow.python.util import dispatch

from deeprec.embedding.variable import EmbeddingVariable

# DeepRec's routing: key k lives in shard (k mod 1000) mod num_shards, so a
# checkpoint's 1000 key groups can be redistributed over any shard count.
NUM_BUCKETS = 1000


def shard_ids(ids: tensor_lib.Tensor, num_shards: int) -> tensor_lib.Tensor:
    """int32 shard index of each id."""
    return math_ops.cast(
        math_ops.floormod(math_ops.floormod(ids, NUM_BUCKETS), num_shards), "int32")


@dispatch.register_dispatchable_type
class PartitionedEmbeddingVariable:
    """An EmbeddingVariable split into shards `name/part_0` ... `name/part_{n-1}`.

    Iterating yields the shards (each an EmbeddingVariable); lookups through
    `tf.nn.embedding_lookup` route every id to its shard.

    Example:
      >>> import deeprec as tf
      >>> var = tf.get_embedding_variable(
      ...     "pev_doc", embedding_dim=3,
      ...     partitioner=tf.fixed_size_partitioner(num_shards=2))
      >>> [v.op.name for v in var]
      ['pev_doc/part_0', 'pev_doc/part_1']
    """

    def __init__(self, name: str, parts: list[EmbeddingVariable]):
        self._name = name
        self._parts = list(parts)

    @property
    def name(self) -> str:
        return self._name

    @property
    def embedding_dim(self) -> int:
        return self._parts[0].embedding_dim

    @property
    def key_dtype(self):
        return self._parts[0].key_dtype

    @property
    def dtype(self):
        return self._parts[0].dtype

    def get_shape(self):
        return self._parts[0].get_shape()

    shape = property(get_shape)

    def __iter__(self) -> Iterator[EmbeddingVariable]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def __getitem__(self, index: int) -> EmbeddingVariable:
        return self._parts[index]

    def _get_variable_list(self) -> list[EmbeddingVariable]:
        return list(self._parts)

    def total_count(self) -> tensor_lib.Tensor:
        """int64 `[number of keys over all shards, embedding_dim]`."""
        counts = [p.total_count() for p in self._parts]
        return array_ops_stack.stack(
            [math_ops.add_n([c[0] for c in counts]), counts[0][1]])

    def __repr__(self) -> str:
        return (f"<PartitionedEmbeddingVariable '{self._name}' shards="
                f"{len(self._parts)} embedding_dim={self.embedding_dim}>")
