"""EmbeddingVariable (user guide §3.1) and Multi-Hash Variable (§3.5)."""

from deeprec.embedding import lookup as _lookup
from deeprec.embedding.get_variable import get_embedding_variable
from deeprec.embedding.multihash import MultiHashVariable, get_multihash_variable
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
           "GlobalStepEvict", "InitializerOption", "L2WeightEvict", "MultiHashVariable",
           "PartitionedEmbeddingVariable", "get_embedding_variable", "get_multihash_variable"]
