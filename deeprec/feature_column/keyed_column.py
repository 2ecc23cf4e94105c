"""`KeyedCategoricalColumn`: what DeepRec's own categorical columns share.

A categorical column that reads one input feature (`key`), turns its values
into ids without weights, and answers TensorFlow's v2 and v1 column
protocols alike (`transform_feature` / `_transform_feature`,
`get_sparse_tensors` / `_get_sparse_tensors`, ...). A subclass gives `ids`
and `num_buckets`, and the `key` and `dtype` fields.
"""

from tensorflow.python.feature_column import feature_column_v2 as fc_v2


class KeyedCategoricalColumn:
    """Mixin for a categorical column of one key's values (see module doc).

    It comes before `fc_v2.CategoricalColumn` in a subclass's bases, so that
    its methods implement that class's abstract ones.

    Example:
      >>> import deeprec as tf
      >>> col = tf.feature_column.categorical_column_with_multihash("c", dims=[4, 4])
      >>> isinstance(col, KeyedCategoricalColumn), col.name, col.parents
      (True, 'c', ['c'])
    """

    __slots__ = ()

    @property
    def _is_v2_column(self) -> bool:
        return True

    @property
    def name(self) -> str:
        return self.key

    @property
    def parents(self) -> list:
        return [self.key]

    @property
    def _num_buckets(self) -> int:
        return self.num_buckets

    @property
    def _parse_example_spec(self) -> dict:
        return self.parse_example_spec

    def sparse_input(self, value):
        """The feature as a SparseTensor without TF's ignore value for its dtype."""
        return fc_v2._to_sparse_input_and_drop_ignore_values(value)  # pylint: disable=protected-access

    def ids(self, sparse_input):
        """The SparseTensor of this column's ids for the SparseTensor of its values."""
        raise NotImplementedError

    def transform_feature(self, transformation_cache, state_manager):
        return self.ids(self.sparse_input(transformation_cache.get(self.key, state_manager)))

    def _transform_feature(self, inputs):
        return self.ids(self.sparse_input(inputs.get(self.key)))

    def get_sparse_tensors(self, transformation_cache, state_manager):
        return fc_v2.CategoricalColumn.IdWeightPair(
            transformation_cache.get(self, state_manager), None)

    def _get_sparse_tensors(self, inputs, weight_collections=None, trainable=None):
        del weight_collections, trainable
        return fc_v2.CategoricalColumn.IdWeightPair(inputs.get(self), None)
