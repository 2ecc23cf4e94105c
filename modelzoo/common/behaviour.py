"""Inputs of behaviour-sequence models (DIN, DSSM, MMoE): user, candidate item, history.

Feature roles follow the names the Taobao-like and MovieLens sets use:

- a sequence feature `hist_<name>` whose `<name>` is a categorical feature is
  a *behaviour*: the ids of the user's past items (or their categories),
  aligned position by position with the other behaviours. The candidate's
  `<name>` and the behaviours are embedded with ONE table, so the model
  compares the candidate with the history in the same vector space (DIN's
  setting);
- other features named `user_*` or `hist_*` describe the user;
- all other features describe the candidate item.

Other sequence features (MovieLens' `genres`) are averaged into one vector,
as the field models do (`fields.field_embedding_columns`). `BehaviourModel`
builds the inputs; a subclass adds the rest (`head`).
"""

from __future__ import annotations

import dataclasses

from modelzoo.common import features, fields, layers
from modelzoo.common.model import Model
from modelzoo.common.tfapi import tf

HISTORY_PREFIX = "hist_"
USER_PREFIX = "user_"


@dataclasses.dataclass(frozen=True)
class FeatureRoles:
    """Feature names by role (see the module docstring).

    Attributes:
      behaviours: `(sequence name, candidate feature name)` pairs.
      user: Other user-side categorical or sequence features.
      item: Other item-side categorical or sequence features.
      user_dense, item_dense: Dense features by side.
    """

    behaviours: tuple[tuple[str, str], ...]
    user: tuple[str, ...]
    item: tuple[str, ...]
    user_dense: tuple[str, ...]
    item_dense: tuple[str, ...]


def _user_side(name: str) -> bool:
    return name.startswith((USER_PREFIX, HISTORY_PREFIX))


def feature_roles(schema) -> FeatureRoles:
    """Splits a schema's features by role.

    Example:
      >>> from modelzoo.data.taobao import SCHEMA
      >>> roles = feature_roles(SCHEMA)
      >>> roles.behaviours
      (('hist_item_id', 'item_id'), ('hist_category_id', 'category_id'))
      >>> roles.user, roles.item, roles.item_dense
      (('user_id', 'user_age', 'user_gender'), (), ('price',))
    """
    categorical = set(schema.categorical)
    behaviours = tuple((name, name[len(HISTORY_PREFIX):]) for name in schema.sequence
                       if name.startswith(HISTORY_PREFIX)
                       and name[len(HISTORY_PREFIX):] in categorical)
    paired = {name for pair in behaviours for name in pair}
    others = [n for n in fields.field_names(schema) if n not in paired]
    return FeatureRoles(
        behaviours=behaviours,
        user=tuple(n for n in others if _user_side(n)),
        item=tuple(n for n in others if not _user_side(n)),
        user_dense=tuple(n for n in schema.dense if _user_side(n)),
        item_dense=tuple(n for n in schema.dense if not _user_side(n)))


@dataclasses.dataclass
class BehaviourTensors:
    """What `BehaviourInputs` builds for a batch.

    Attributes:
      user: `[batch, d_user]` user-side embeddings and dense features.
      item: `[batch, d_item]` the candidate's embeddings (shared tables
        first) and item-side dense features.
      target: `[batch, d_hist]` the candidate's vectors in the behaviour
        tables, in the order of `history`'s last axis.
      history: `[batch, length, d_hist]` the behaviours' vectors, zeros
        past each row's length.
      mask: `[batch, length]` bool, True where a behaviour exists.
    """

    user: object
    item: object
    target: object
    history: object
    mask: object

    def pooled_history(self):
        """`[batch, d_hist]` mean of each row's behaviour vectors (zeros for no history)."""
        weights = tf.cast(self.mask, tf.float32)
        total = tf.reduce_sum(self.history * weights[:, :, None], axis=1)
        count = tf.maximum(tf.reduce_sum(weights, axis=1, keepdims=True), 1.0)
        return total / count


def _concat(parts):
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)


class BehaviourInputs:
    """Builds `BehaviourTensors` from raw features with EV or hash-bucket columns (per the
    flags); one call per graph, all variables under the current variable scope.

    Raises:
      ValueError: If the data set has no behaviour sequence or no user-side feature.
    """

    def __init__(self, meta, args):
        self.roles = feature_roles(meta["schema"])
        if not self.roles.behaviours:
            raise ValueError(f"data set '{meta['name']}' has no behaviour sequence "
                             f"(a sequence '{HISTORY_PREFIX}<name>' next to a categorical "
                             f"feature '<name>'); this model needs one")
        if not (self.roles.user or self.roles.user_dense):
            raise ValueError(f"data set '{meta['name']}' has no user feature "
                             f"('{USER_PREFIX}*'); this model needs one")
        self.meta, self.dimension = meta, args.embedding_dim
        # One column per candidate feature; its table also embeds the history.
        self.shared = {target: features.embedding_column(
            features.categorical_column(meta, target, args), args)
            for _, target in self.roles.behaviours}
        self.user_columns = fields.field_embedding_columns(meta, args, self.roles.user)
        self.item_columns = fields.field_embedding_columns(meta, args, self.roles.item)

    def _shared_lookup(self, features_dict, sequence: str, target: str):
        """(candidate vectors [batch, dim], behaviour vectors [batch, length, dim], the
        behaviours' SparseTensor) from one table."""
        ids = features_dict[sequence]
        candidates = tf.reshape(features_dict[target], [-1])
        # One lookup of [candidates; behaviour ids] through the candidate's column.
        flat = tf.concat([candidates, ids.values], axis=0)
        with tf.variable_scope(target):
            vectors = tf.feature_column.input_layer({target: flat}, [self.shared[target]])
        count = tf.shape(candidates)[0]
        dense_shape = tf.concat([ids.dense_shape, [self.dimension]], axis=0)
        history = tf.scatter_nd(ids.indices, vectors[count:], dense_shape)
        history.set_shape([None, None, self.dimension])
        return vectors[:count], history, ids

    def _side(self, features_dict, scope: str, columns, dense_names) -> list:
        """`[batch, *]` tensors of one side's embedding columns and dense features."""
        parts = []
        with tf.variable_scope(scope):
            if columns:
                parts.append(tf.feature_column.input_layer(features_dict, columns))
            dense = layers.dense_input(features_dict, self.meta, dense_names)
            if dense is not None:
                parts.append(dense)
        return parts

    def __call__(self, features_dict) -> BehaviourTensors:
        """The tensors for one batch of raw features."""
        with tf.variable_scope("behaviour"):
            looked_up = [self._shared_lookup(features_dict, sequence, target)
                         for sequence, target in self.roles.behaviours]
        targets = [t for t, _, _ in looked_up]
        # Behaviours are aligned: the first one's ids mark where each row has events.
        first = looked_up[0][2]
        mask = tf.scatter_nd(first.indices, tf.ones_like(first.values, tf.float32),
                             first.dense_shape) > 0
        user = self._side(features_dict, "user", self.user_columns, self.roles.user_dense)
        item = self._side(features_dict, "item", self.item_columns, self.roles.item_dense)
        return BehaviourTensors(user=_concat(user), item=_concat(targets + item),
                                target=_concat(targets),
                                history=_concat([h for _, h, _ in looked_up]), mask=mask)


class BehaviourModel(Model):
    """A model over `BehaviourInputs`; subclasses implement `head`."""

    def __init__(self, args, meta):
        super().__init__(args, meta)
        self.inputs = BehaviourInputs(meta, args)

    def head(self, tensors: BehaviourTensors, training: bool) -> dict:
        """`{label: [batch] logits}` (and any extra outputs) from the batch's tensors."""
        raise NotImplementedError

    def logits(self, features_dict, training):
        with tf.variable_scope("inputs"):
            tensors = self.inputs(features_dict)
        return self.head(tensors, training)
