// CPU kernels of the fused sparse embedding lookup: FusedEmbeddingSparse
// PreLookUp, PostLookUp, PostLookUpGrad and PostLookUpWeightsGrad (see
// fused_embedding_ops.cc). The lookup logic lives in
// embedding_lookup_kernels.h, shared with the grouped lookup; these kernels
// read the attrs and tensors of one feature and spread its rows over the
// op's thread pool.
//
// Kernels keep no state between calls, so concurrent runs are independent.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "csrc/ops/embedding_lookup_kernels.h"
#include "csrc/ops/kernel_util.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace deeprec {
namespace {

using lookup::ArgNames;
using lookup::Combination;
using lookup::Groups;
using lookup::PlanOptions;
using tensorflow::DEVICE_CPU;
using tensorflow::OpInputList;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::OpOutputList;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::TensorShapeUtils;
namespace errors = tensorflow::errors;

template <typename Tids, typename T>
class FusedEmbeddingSparsePreLookUpOp : public OpKernel {
 public:
  explicit FusedEmbeddingSparsePreLookUpOp(OpKernelConstruction* ctx)
      : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx,
                   ctx->GetAttr("num_partitions", &options_.num_partitions));
    std::string strategy;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("partition_strategy", &strategy));
    OP_REQUIRES_OK(ctx, lookup::ParseStrategy(strategy, &options_.strategy));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("sparse_rank", &options_.sparse_rank));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("prune_invalid_ids", &options_.prune_ids));
    OP_REQUIRES_OK(
        ctx, ctx->GetAttr("prune_invalid_weights", &options_.prune_weights));
    OP_REQUIRES_OK(ctx,
                   ctx->GetAttr("fill_empty_rows", &options_.fill_empty_rows));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("default_id", &options_.default_id));
    OP_REQUIRES(ctx,
                static_cast<int64_t>(static_cast<Tids>(options_.default_id)) ==
                    options_.default_id,
                errors::InvalidArgument(
                    type_string(), ": default_id = ", options_.default_id,
                    " does not fit the ids' dtype ",
                    tensorflow::DataTypeString(
                        tensorflow::DataTypeToEnum<Tids>::value)));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("unique", &options_.unique));
  }

  void Compute(OpKernelContext* ctx) override {
    const ArgNames names(type_string());
    const Tensor& table_rows_t = ctx->input(4);
    OP_REQUIRES(ctx, TensorShapeUtils::IsScalar(table_rows_t.shape()),
                errors::InvalidArgument(
                    type_string(), ": table_rows must be a scalar, ",
                    "got shape ", table_rows_t.shape().DebugString()));
    const int64_t table_rows = table_rows_t.scalar<int64_t>()();
    OP_REQUIRES(
        ctx, !lookup::Bounded(options_) || table_rows >= 0,
        errors::InvalidArgument(type_string(),
                                ": table_rows must be >= 0, got ", table_rows));
    lookup::LookupPlanner<T> planner(names, options_);
    const Tensor& weights = ctx->input(3);
    OP_REQUIRES_OK(
        ctx, planner.CountSparse(ctx->input(0), ctx->input(1), ctx->input(2),
                                 &weights, table_rows));
    const int parts = options_.num_partitions;
    const TensorShape entries({planner.entries()});
    lookup::EntryOutputs<T> out;
    Tensor* t = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(parts, entries, &t));
    out.positions = t->flat<int64_t>().data();
    OP_REQUIRES_OK(ctx, ctx->allocate_output(parts + 1, entries, &t));
    out.rows = t->flat<int64_t>().data();
    OP_REQUIRES_OK(ctx, ctx->allocate_output(parts + 2, entries, &t));
    out.weights = t->flat<T>().data();
    OP_REQUIRES_OK(ctx, ctx->allocate_output(parts + 3, entries, &t));
    out.sources = t->flat<int64_t>().data();
    planner.Write(out);

    OpOutputList partitioned_ids;
    OP_REQUIRES_OK(ctx, ctx->output_list("partitioned_ids", &partitioned_ids));
    OpOutputList partitioned_counts;
    OP_REQUIRES_OK(ctx,
                   ctx->output_list("partitioned_counts", &partitioned_counts));
    std::vector<Tensor*> ids(parts);
    std::vector<int64_t*> counts(parts);
    for (int p = 0; p < parts; ++p) {
      const TensorShape shape({planner.gathered(p)});
      OP_REQUIRES_OK(ctx, partitioned_ids.allocate(p, shape, &ids[p]));
      Tensor* t = nullptr;
      OP_REQUIRES_OK(ctx, partitioned_counts.allocate(p, shape, &t));
      counts[p] = t->flat<int64_t>().data();
    }
    planner.WriteIds(ids, counts);
  }

 private:
  PlanOptions options_;
};

// The attrs shared by the post-lookup op and its gradients.
class PostLookUpKernel : public OpKernel {
 public:
  explicit PostLookUpKernel(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string combiner;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("combiner", &combiner));
    OP_REQUIRES_OK(ctx, lookup::ParseCombiner(combiner, &combiner_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_norm", &max_norm_));
  }

 protected:
  // Collects the shards (input list "emb_shards") into `c`.
  template <typename T>
  tensorflow::Status Collect(OpKernelContext* ctx, Combination<T>* c) const {
    OpInputList shards;
    TF_RETURN_IF_ERROR(ctx->input_list("emb_shards", &shards));
    c->combiner = combiner_;
    c->max_norm = static_cast<T>(max_norm_);
    return c->gathered.Collect(ArgNames(type_string()), shards, 0,
                               shards.size());
  }

  // Validates the entry inputs at `first` (positions, rows, weights) of a
  // lookup with `num_rows` output rows.
  template <typename T>
  tensorflow::Status Init(OpKernelContext* ctx, int first, int64_t num_rows,
                          bool with_scales, Combination<T>* c) const {
    return c->Init(ArgNames(type_string()), ctx->input(first),
                   ctx->input(first + 1), ctx->input(first + 2), num_rows,
                   with_scales);
  }

  int NumShards(OpKernelContext* ctx) const {
    OpInputList shards;
    return ctx->input_list("emb_shards", &shards).ok() ? shards.size() : 0;
  }

  lookup::Combiner combiner_ = lookup::Combiner::kMean;
  float max_norm_ = -1;
};

template <typename T>
class FusedEmbeddingSparsePostLookUpOp : public PostLookUpKernel {
 public:
  using PostLookUpKernel::PostLookUpKernel;

  void Compute(OpKernelContext* ctx) override {
    const int first = NumShards(ctx);
    int64_t num_rows = 0;
    OP_REQUIRES_OK(
        ctx, lookup::OutputRowCount(ArgNames(type_string()),
                                    ctx->input(first + 3), true, &num_rows));
    Combination<T> c;
    OP_REQUIRES_OK(ctx, Collect(ctx, &c));
    OP_REQUIRES_OK(ctx, Init(ctx, first, num_rows, true, &c));
    const int64_t dim = c.dim();
    Tensor* out_t = nullptr;
    OP_REQUIRES_OK(
        ctx, ctx->allocate_output(0, TensorShape({num_rows, dim}), &out_t));
    T* out = out_t->flat<T>().data();
    const Groups by_row = lookup::GroupByKey(c.rows, c.n, num_rows);
    const int64_t cost = (c.n / std::max<int64_t>(num_rows, 1) + 1) * 3 * dim;
    ParallelRange(ctx, num_rows, cost, [&](int64_t lo, int64_t hi) {
      c.Combine(by_row, lo, hi, out);
    });
  }
};

template <typename T>
class FusedEmbeddingSparsePostLookUpGradOp : public PostLookUpKernel {
 public:
  using PostLookUpKernel::PostLookUpKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& top_grad_t = ctx->input(0);
    const int first = 1 + NumShards(ctx);
    Combination<T> c;
    OP_REQUIRES_OK(ctx, Collect(ctx, &c));
    const int64_t dim = c.dim();
    OP_REQUIRES_OK(ctx, lookup::CheckRowsByDim(ArgNames(type_string()),
                                               top_grad_t, "top_grad", dim));
    OP_REQUIRES_OK(ctx, Init(ctx, first, top_grad_t.dim_size(0), false, &c));
    OpInputList shards;
    OP_REQUIRES_OK(ctx, ctx->input_list("emb_shards", &shards));
    OpOutputList grads;
    OP_REQUIRES_OK(ctx, ctx->output_list("grad_shards", &grads));
    std::vector<Tensor*> grad_tensors(shards.size());
    for (int p = 0; p < shards.size(); ++p) {
      OP_REQUIRES_OK(ctx,
                     grads.allocate(p, shards[p].shape(), &grad_tensors[p]));
    }
    const lookup::GradientRows<T> grad_rows(grad_tensors, dim);
    const T* top_grad = top_grad_t.flat<T>().data();
    const int64_t num_gathered = c.gathered.size();
    const int threads =
        ctx->device()->tensorflow_cpu_worker_threads()->num_threads;
    const int64_t splits =
        lookup::GradientSplits(num_gathered, c.n, dim, threads);
    ParallelRange(ctx, splits, 3 * c.n * dim / splits + 1,
                  [&](int64_t lo, int64_t hi) {
                    for (int64_t s = lo; s < hi; ++s) {
                      c.Gradient(top_grad, s * num_gathered / splits,
                                 (s + 1) * num_gathered / splits, grad_rows);
                    }
                  });
  }
};

template <typename T>
class FusedEmbeddingSparsePostLookUpWeightsGradOp : public PostLookUpKernel {
 public:
  using PostLookUpKernel::PostLookUpKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& top_grad_t = ctx->input(0);
    const int first = 1 + NumShards(ctx);
    const Tensor& embeddings_t = ctx->input(first + 3);
    Combination<T> c;
    OP_REQUIRES_OK(ctx, Collect(ctx, &c));
    OP_REQUIRES_OK(ctx,
                   lookup::CheckRowsByDim(ArgNames(type_string()), top_grad_t,
                                          "top_grad", c.dim()));
    OP_REQUIRES(ctx, embeddings_t.shape() == top_grad_t.shape(),
                errors::InvalidArgument(
                    type_string(), ": embeddings has shape ",
                    embeddings_t.shape().DebugString(), " but top_grad has ",
                    top_grad_t.shape().DebugString()));
    OP_REQUIRES_OK(ctx, Init(ctx, first, top_grad_t.dim_size(0), false, &c));
    Tensor* out_t = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({c.n}), &out_t));
    T* out = out_t->flat<T>().data();
    const T* top_grad = top_grad_t.flat<T>().data();
    const T* embeddings = embeddings_t.flat<T>().data();
    ParallelRange(ctx, c.n, 6 * c.dim(), [&](int64_t lo, int64_t hi) {
      c.WeightsGradient(top_grad, embeddings, lo, hi, out);
    });
  }
};

#define REGISTER_PRE_LOOKUP(Tids, T)                            \
  REGISTER_KERNEL_BUILDER(Name("FusedEmbeddingSparsePreLookUp") \
                              .Device(DEVICE_CPU)               \
                              .TypeConstraint<Tids>("Tids")     \
                              .TypeConstraint<T>("T"),          \
                          FusedEmbeddingSparsePreLookUpOp<Tids, T>)
REGISTER_PRE_LOOKUP(int32_t, float);
REGISTER_PRE_LOOKUP(int64_t, float);
REGISTER_PRE_LOOKUP(int32_t, double);
REGISTER_PRE_LOOKUP(int64_t, double);
#undef REGISTER_PRE_LOOKUP

#define REGISTER_POST_LOOKUP(T)                                             \
  REGISTER_KERNEL_BUILDER(Name("FusedEmbeddingSparsePostLookUp")            \
                              .Device(DEVICE_CPU)                           \
                              .TypeConstraint<T>("T"),                      \
                          FusedEmbeddingSparsePostLookUpOp<T>);             \
  REGISTER_KERNEL_BUILDER(Name("FusedEmbeddingSparsePostLookUpGrad")        \
                              .Device(DEVICE_CPU)                           \
                              .TypeConstraint<T>("T"),                      \
                          FusedEmbeddingSparsePostLookUpGradOp<T>);         \
  REGISTER_KERNEL_BUILDER(Name("FusedEmbeddingSparsePostLookUpWeightsGrad") \
                              .Device(DEVICE_CPU)                           \
                              .TypeConstraint<T>("T"),                      \
                          FusedEmbeddingSparsePostLookUpWeightsGradOp<T>)
REGISTER_POST_LOOKUP(float);
REGISTER_POST_LOOKUP(double);
#undef REGISTER_POST_LOOKUP

}  // namespace
}  // namespace deeprec
