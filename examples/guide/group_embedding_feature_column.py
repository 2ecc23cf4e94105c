# The user guide's example script (section 3.6.2, Group Embedding, "Usage of
# feature_column") with its imports ported (`tensorflow` became `deeprec`).
# Changed to run on CPU: the GPU-only lines are dropped (`with
# tf.device('/gpu:0'):`, whose body is kept, and the two
# `sess_config.gpu_options` settings). The listing's typesetting slips are
# fixed: `::` after the two `with` statements, `dimension=30.` (a comma),
# `11_regularization_strength` / `12_regularization_strength` (l1 / l2, the
# latter broken across lines), `train_{op}` and `opt_apply_gradients`
# (train_op = opt.apply_gradients), the lines the printed listing wraps and
# the indentation of its last lines.
import deeprec as tf
from deeprec.python.feature_column import feature_column as fc_old
from deeprec.python.framework import dtypes
ev_opt = tf.EmbeddingVariableOption(evict_option=None,
                                    filter_option=None)
# group_name represent for the grouped embedding variable
with tf.feature_column.group_embedding_column_scope(name="item"):
  ad0_col = tf.feature_column.categorical_column_with_embedding(
      key='ad0', dtype=dtypes.int64, ev_option=ev_opt)
  ad0_fc = tf.feature_column.embedding_column(
   categorical_column=ad0_col,
    dimension=20,
    initializer=tf.constant_initializer(0.5))
  ad1_fc = tf.feature_column.embedding_column(
    tf.feature_column.categorical_column_with_embedding(
      key='ad1', dtype=dtypes.int64, ev_option=ev_opt),
    dimension=30,
    initializer=tf.constant_initializer(0.5))
with tf.feature_column.group_embedding_column_scope(name="user"):
  user0_fc = tf.feature_column.embedding_column(
      tf.feature_column.categorical_column_with_embedding(
        key='user0', dtype=dtypes.int64, ev_option=ev_opt),
      dimension=20,
      initializer=tf.constant_initializer(0.5))
columns = [ad0_fc, ad1_fc, user0_fc]
ids={}
ids["ad0"] = tf.SparseTensor(indices=[[0,0],[0,1],[1,1],[2,2],[3,3],[4,3],[4,4]], \
                        values=tf.cast([1,3,2,3,4,5,3], tf.dtypes.int64), dense_shape=[5, 5])
ids["ad1"] = tf.SparseTensor(indices=[[0,0],[0,1],[1,1],[2,2],[3,3],[4,3],[4,4]], \
                        values=tf.cast([1,3,2,3,4,5,3], tf.dtypes.int64), dense_shape=[5, 5])
ids["user0"] = tf.SparseTensor(indices=[[0,0],[0,1],[1,1],[2,2],[3,3],[4,3],[4,4]], \
                        values=tf.cast([1,3,2,3,4,5,3], tf.dtypes.int64), dense_shape=[5, 5])
emb = tf.feature_column.input_layer(ids, columns)
fun = tf.multiply(emb, 2.0, name='multiply')
loss = tf.reduce_sum(fun, name='reduce_sum')
opt = tf.train.FtrlOptimizer(0.1, l1_regularization_strength=2.0, l2_regularization_strength=0.00001)
g_v = opt.compute_gradients(loss)
train_op = opt.apply_gradients(g_v)
init = tf.global_variables_initializer()
sess_config = tf.ConfigProto()
with tf.Session(config=sess_config) as sess:
    sess.run(init)
    print("init global done")
    print(sess.run([fun, train_op,loss]))
