# The user guide's example script (section 3.4.3), unchanged except for the
# import (`import tensorflow as tf` became `import deeprec as tf`), the lines
# the printed listing wraps, and two typesetting slips: "Ftrl0ptimizer" for
# FtrlOptimizer and "1" for the loss `l` in the last print.
import deeprec as tf
columns = tf.feature_column.categorical_column_with_adaptive_embedding("col_emb", hash_bucket_size=100, dtype=tf.int64)
W = tf.feature_column.embedding_column(categorical_column=columns,
                                        dimension=3,
                                        initializer=tf.ones_initializer(tf.float32))
ids={}
ids["col_emb"] = tf.SparseTensor(indices=[[0,0],[1,0],[2,0],[3,0],[4,0],[5,0],[6,0],[7,0], [8, 0], [9, 0]],
                                  values=tf.cast([1,2,3,4,5,6,7,8,9,0], tf.int64),
                                  dense_shape=[10, 1])
adaptive_mask_tensors={}
adaptive_mask_tensors["col_emb"] = tf.cast([1,0,1,0,1,0,0,1,0,1], tf.int32)
emb = tf.feature_column.input_layer(ids, [W], adaptive_mask_tensors=adaptive_mask_tensors)
fun = tf.multiply(emb, 2.0, name='multiply')
loss = tf.reduce_sum(fun, name='reduce_sum')
graph=tf.get_default_graph()
opt = tf.train.FtrlOptimizer(0.1, l1_regularization_strength=2.0, l2_regularization_strength=0.00001)
g_v = opt.compute_gradients(loss)
train_op = opt.apply_gradients(g_v)
init = tf.global_variables_initializer()
with tf.Session() as sess:
  sess.run([init])
  emb1, top, l = sess.run([emb, train_op, loss])
  print(emb1, top, l)
