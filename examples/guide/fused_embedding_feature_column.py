# The user guide's example script (section 3.10.2, feature_column), unchanged
# except for the imports (`tensorflow` became `deeprec`), the lines the printed
# listing wraps or cuts (the ids' values and dense_shape are completed as in
# section 3.1.3), and its "dimension=3." typo for "dimension=3,".
import deeprec as tf
from deeprec.python.framework import ops
columns = tf.feature_column.categorical_column_with_embedding("col_emb", dtype=tf.dtypes.int64)
W = tf.feature_column.embedding_column(categorical_column=columns,
           dimension=3,
           initializer=tf.ones_initializer(tf.dtypes.float32),
           do_fusion=True)
ids={}
ids["col_emb"] = tf.SparseTensor(indices=[[0,0],[1,1],[2,2],[3,3],[4,4]], values=tf.cast([1,2,3,4,5], tf.dtypes.int64), dense_shape=[5, 5])
emb = tf.feature_column.input_layer(ids, [W])
fun = tf.multiply(emb, 2.0, name='multiply')
loss = tf.reduce_sum(fun, name='reduce_sum')
opt = tf.train.FtrlOptimizer(0.1, l1_regularization_strength=2.0, l2_regularization_strength=0.00001)
g_v = opt.compute_gradients(loss)
train_op = opt.apply_gradients(g_v)
init = tf.global_variables_initializer()
with tf.Session() as sess:
   sess.run(init)
   print("init global done")
   print(sess.run([emb, train_op,loss]))
   print(sess.run([emb, train_op,loss]))
   print(sess.run([emb, train_op,loss]))
