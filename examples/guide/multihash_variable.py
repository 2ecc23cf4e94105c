# The user guide's example script (section 3.5.3, get_multihash_variable),
# unchanged except for the import: `import tensorflow as tf` became
# `import deeprec as tf`.
import deeprec as tf
def main(unused_argv):
  embedding = tf.get_multihash_variable("var-dist",
                                          [[2,2],[2,2]],
                                         complementary_strategy="Q-R",
                                         operation="concat",
                                         initializer=tf.ones_initializer)
  var = tf.nn.embedding_lookup(embedding, [0,1,2,3])
  fun = tf.multiply(var, 2.0, name='multiply')
  loss1 = tf.reduce_sum(fun, name='reduce_sum')
  opt = tf.train.AdagradOptimizer(0.1)
  g_v = opt.compute_gradients(loss1)
  train_op = opt.apply_gradients(g_v)
  init = tf.global_variables_initializer()
  with tf.Session() as sess:
       sess.run([init])
       print(sess.run([var, train_op]))
       print(sess.run([var, train_op]))
       print(sess.run([var, train_op]))
if __name__=="__main__":
  tf.app.run()
