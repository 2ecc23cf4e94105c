"""`deeprec.python.ops`: `tensorflow.python.ops` with DeepRec's `embedding_ops`.

Every other module is TensorFlow's (see deeprec/_module_tree.py).
"""

from deeprec.python import submodule_getattr

__getattr__ = submodule_getattr(__name__)
