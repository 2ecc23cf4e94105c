"""EmbeddingVariable: DeepRec's dynamic-shape embedding table (user guide §3.1)."""

from deeprec.embedding import lookup as _lookup
from deeprec.embedding.get_variable import get_embedding_variable
from deeprec.embedding.options import (
    CBFFilter,
    CounterFilter,
    EmbeddingVariableOption,
    GlobalStepEvict,
    InitializerOption,
    L2WeightEvict,
)
from deeprec.embedding.partitioned import PartitionedEmbeddingVariable
from deeprec.embedding.variable import EmbeddingVariable

__all__ = ["CBFFilter", "CounterFilter", "EmbeddingVariable", "EmbeddingVariableOption",
           "GlobalStepEvict", "InitializerOption", "L2WeightEvict",
           "PartitionedEmbeddingVariable", "get_embedding_variable"]
