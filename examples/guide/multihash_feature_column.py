# The user guide's example script (section 3.5.3,
# categorical_column_with_multihash) with its imports ported (`tensorflow`
# became `deeprec`). The guide's typesetting marks a wrapped line with an
# arrow (dropped here) and breaks the script across a page, which loses the
# indentation of its last four lines; they are restored to the body of the
# `with` block.
import deeprec as tf
from deeprec.python.framework import ops
from deeprec.python.feature_column import feature_column_v2 as fc2
columns = fc2.categorical_column_with_multihash("col_emb", dims = (2,2))
W = tf.feature_column.embedding_column(categorical_column=columns,
            dimension=(2,3),
            initializer=tf.ones_initializer(tf.dtypes.float32))
ids={}
ids["col_emb"] = tf.SparseTensor(indices=[[0,0],[1,1],[2,2],[3,3]], values=tf.cast([0,1,
2,3], tf.dtypes.int64), dense_shape=[4, 4])
emb = tf.feature_column.input_layer(ids, [W])
fun = tf.multiply(emb, 2.0, name='multiply')
loss1 = tf.reduce_sum(fun, name='reduce_sum')
opt = tf.train.AdagradOptimizer(0.1)
g_v = opt.compute_gradients(loss1)
train_op = opt.apply_gradients(g_v)
init = tf.global_variables_initializer()
with tf.Session() as sess:
    sess.run(init)
    print("init global done")
    print(sess.run([emb, train_op]))
    print(sess.run([emb, train_op]))
    print(sess.run([emb, train_op]))
