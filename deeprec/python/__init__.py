"""Mirror of `tensorflow.python`: modules deeprec changes live here, the rest alias TF's."""
