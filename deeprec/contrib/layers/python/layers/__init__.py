"""Mirror of TF 1.x `tensorflow.contrib.layers.python.layers`."""
