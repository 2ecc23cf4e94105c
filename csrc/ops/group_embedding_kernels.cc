// CPU kernels of the grouped embedding lookup (see group_embedding_ops.cc).
//
// Each kernel runs the per-table logic of embedding_lookup_kernels.h (shared
// with the fused lookup) for all N tables of its group. The pre-lookup
// kernels plan each table whole, tables in parallel. The post-lookup kernels
// first set up every table's combination, in parallel over tables; then,
// with the outputs allocated, they cut the row work of all tables into
// chunks of similar cost, so that small and large tables (dims 8 to 64, say)
// keep the op's threads equally busy. Errors name the op, the input and the
// table (`sp_values[3]`).
//
// Kernels keep no state between calls (the dedup maps reuse per-thread scratch
// memory, nothing else), so concurrent runs are independent.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
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
using lookup::EntryOutputs;
using lookup::Groups;
using lookup::LookupPlanner;
using lookup::PlanOptions;
using tensorflow::DataType;
using tensorflow::DEVICE_CPU;
using tensorflow::OpInputList;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::OpOutputList;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::TensorShapeUtils;
namespace errors = tensorflow::errors;

// Cycles of work per task when the row work of a group is cut into chunks:
// large enough to amortize scheduling, small enough to balance two threads
// over a group of small tables.
constexpr int64_t kChunkCost = 200000;

// Runs fn(k) for every table k < n on the op's thread pool, where a table
// costs about `cost` cycles, and returns the first error in table order.
Status ForEachTable(OpKernelContext* ctx, int n, int64_t cost,
                    const std::function<Status(int)>& fn) {
  std::vector<Status> status(n);
  ParallelRange(ctx, n, cost, [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; ++k) status[k] = fn(static_cast<int>(k));
  });
  for (const Status& s : status) TF_RETURN_IF_ERROR(s);
  return tensorflow::OkStatus();
}

// A range [lo, hi) of the rows of table `table`, worked on by one task.
struct Chunk {
  int table;
  int64_t lo, hi;
};

// Runs fn(table, lo, hi) for every chunk on the op's thread pool, where a
// chunk costs about `cost` cycles.
void RunChunks(OpKernelContext* ctx, const std::vector<Chunk>& chunks,
               int64_t cost,
               const std::function<void(int, int64_t, int64_t)>& fn) {
  ParallelRange(ctx, chunks.size(), cost, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      fn(chunks[i].table, chunks[i].lo, chunks[i].hi);
    }
  });
}

// Runs fn(k, lo, hi) over [0, sizes[k]) of every table k, in chunks of
// about kChunkCost cycles (a unit of table k costs unit_cost[k]), on the
// op's thread pool.
void ForEachChunk(OpKernelContext* ctx, const std::vector<int64_t>& sizes,
                  const std::vector<int64_t>& unit_cost,
                  const std::function<void(int, int64_t, int64_t)>& fn) {
  std::vector<Chunk> chunks;
  for (size_t k = 0; k < sizes.size(); ++k) {
    const int64_t step =
        std::max<int64_t>(1, kChunkCost / std::max<int64_t>(1, unit_cost[k]));
    for (int64_t lo = 0; lo < sizes[k]; lo += step) {
      chunks.push_back(
          {static_cast<int>(k), lo, std::min(sizes[k], lo + step)});
    }
  }
  RunChunks(ctx, chunks, kChunkCost, fn);
}

// The attrs every group op has: N tables whose partitions make up
// num_gathers gathered tensors.
class GroupKernel : public OpKernel {
 public:
  explicit GroupKernel(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &n_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_gathers", &num_gathers_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_partitions", &num_partitions_));
    OP_REQUIRES_OK(ctx,
                   RequireTables("num_partitions", num_partitions_.size()));
    offsets_.assign(1, 0);
    for (int k = 0; k < n_; ++k) {
      OP_REQUIRES(
          ctx, num_partitions_[k] >= 1,
          errors::InvalidArgument(type_string(), ": num_partitions[", k,
                                  "] = ", num_partitions_[k], " is not >= 1"));
      offsets_.push_back(offsets_.back() + num_partitions_[k]);
    }
    OP_REQUIRES(ctx, offsets_.back() == num_gathers_,
                errors::InvalidArgument(
                    type_string(), ": num_partitions add up to ",
                    offsets_.back(), " but num_gathers is ", num_gathers_));
  }

 protected:
  Status RequireTables(const char* attr, size_t size) const {
    if (static_cast<int>(size) == n_) return tensorflow::OkStatus();
    return errors::InvalidArgument(type_string(), ": ", attr, " has ", size,
                                   " entries but there are ", n_, " tables");
  }

  ArgNames Names(int k) const { return ArgNames(type_string(), k); }

  int n_ = 0;
  int num_gathers_ = 0;
  std::vector<int> num_partitions_;
  std::vector<int> offsets_;  // Table k's partitions: [offsets_[k], [k+1]).
};

// The pre-lookup ops: plan every table, allocate, write the plans.
class GroupPreLookUpKernel : public GroupKernel {
 public:
  explicit GroupPreLookUpKernel(OpKernelConstruction* ctx) : GroupKernel(ctx) {
    if (!ctx->status().ok()) return;  // The base rejected the attrs.
    std::vector<std::string> strategies;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("partition_strategies", &strategies));
    OP_REQUIRES_OK(ctx,
                   RequireTables("partition_strategies", strategies.size()));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("Tids", &ids_types_));
    OP_REQUIRES_OK(ctx, RequireTables("Tids", ids_types_.size()));
    std::vector<DataType> partitioned;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("Tpartitioned", &partitioned));
    OP_REQUIRES(ctx, static_cast<int>(partitioned.size()) == num_gathers_,
                errors::InvalidArgument(
                    type_string(), ": Tpartitioned has ", partitioned.size(),
                    " entries but num_gathers is ", num_gathers_));
    options_.resize(n_);
    for (int k = 0; k < n_; ++k) {
      PlanOptions& o = options_[k];
      o.num_partitions = num_partitions_[k];
      OP_REQUIRES_OK(ctx, lookup::ParseStrategy(strategies[k], &o.strategy));
      // Each distinct id of a partition is gathered once (EmbeddingVariables
      // count its entries through partitioned_counts). On 50
      // EmbeddingVariables with Zipf ids (benchmarks/embedding_lookups.py),
      // a training step that gathered every entry instead took 1.3x the CPU
      // time: its gathers, combination, gradient and optimizer update handle
      // twice the rows.
      o.unique = true;
      for (int g = offsets_[k]; g < offsets_[k + 1]; ++g) {
        OP_REQUIRES(ctx, partitioned[g] == ids_types_[k],
                    errors::InvalidArgument(
                        type_string(), ": Tpartitioned[", g, "] is ",
                        tensorflow::DataTypeString(partitioned[g]),
                        " but the ids of table ", k, " are ",
                        tensorflow::DataTypeString(ids_types_[k])));
      }
    }
  }

 protected:
  // Checks table_rows (input `index`, one row count per table).
  Status TableRows(OpKernelContext* ctx, int index,
                   const int64_t** table_rows) const {
    const Tensor& t = ctx->input(index);
    if (!TensorShapeUtils::IsVector(t.shape()) || t.dim_size(0) != n_) {
      return errors::InvalidArgument(type_string(),
                                     ": table_rows must have shape [", n_,
                                     "], got ", t.shape().DebugString());
    }
    *table_rows = t.flat<int64_t>().data();
    for (int k = 0; k < n_; ++k) {
      if (lookup::Bounded(options_[k]) && (*table_rows)[k] < 0) {
        return errors::InvalidArgument(type_string(), ": table_rows[", k,
                                       "] = ", (*table_rows)[k],
                                       " is not >= 0");
      }
    }
    return tensorflow::OkStatus();
  }

  // One planner per table, with its options.
  template <typename T>
  std::vector<LookupPlanner<T>> Planners() const {
    std::vector<LookupPlanner<T>> planners;
    planners.reserve(n_);
    for (int k = 0; k < n_; ++k) planners.emplace_back(Names(k), options_[k]);
    return planners;
  }

  // The op's outputs, looked up once per run.
  struct PlanOutputs {
    OpOutputList ids, counts, positions, rows, weights, sources;
    bool with_sources = false;

    Status Fetch(OpKernelContext* ctx, bool sources_too) {
      with_sources = sources_too;
      TF_RETURN_IF_ERROR(ctx->output_list("partitioned_ids", &ids));
      TF_RETURN_IF_ERROR(ctx->output_list("partitioned_counts", &counts));
      TF_RETURN_IF_ERROR(ctx->output_list("positions", &positions));
      TF_RETURN_IF_ERROR(ctx->output_list("rows", &rows));
      TF_RETURN_IF_ERROR(ctx->output_list("weights", &weights));
      return with_sources ? ctx->output_list("sources", &sources)
                          : tensorflow::OkStatus();
    }
  };

  // Runs count(k) and then writes table k's plan, for every table in
  // parallel: each table is planned right after it is counted, while its
  // ids and indices are still in the cache (counting all tables first and
  // writing them after, as an earlier version did, read them from memory
  // again). `cost` is the cycles of counting and planning one table.
  template <typename T>
  Status PlanTables(OpKernelContext* ctx,
                    std::vector<LookupPlanner<T>>* planners, bool with_sources,
                    int64_t cost, const std::function<Status(int)>& count) {
    PlanOutputs out;
    TF_RETURN_IF_ERROR(out.Fetch(ctx, with_sources));
    std::mutex alloc;
    return ForEachTable(ctx, n_, cost, [&](int k) {
      TF_RETURN_IF_ERROR(count(k));
      return WritePlan(ctx, k, &(*planners)[k], &out, &alloc);
    });
  }

  // Allocates table k's entry outputs (positions, rows, weights and, with
  // sources, sources) and has its counted planner write them, then its
  // partitioned ids and their counts. `alloc` serializes the allocations,
  // which tables make from several threads.
  template <typename T>
  Status WritePlan(OpKernelContext* ctx, int k, LookupPlanner<T>* planner,
                   PlanOutputs* outputs, std::mutex* alloc) {
    EntryOutputs<T> out;
    {
      std::lock_guard<std::mutex> lock(*alloc);
      const TensorShape entries({planner->entries()});
      Tensor* t = nullptr;
      TF_RETURN_IF_ERROR(outputs->positions.allocate(k, entries, &t));
      out.positions = t->flat<int64_t>().data();
      TF_RETURN_IF_ERROR(outputs->rows.allocate(k, entries, &t));
      out.rows = t->flat<int64_t>().data();
      TF_RETURN_IF_ERROR(outputs->weights.allocate(k, entries, &t));
      out.weights = t->flat<T>().data();
      if (outputs->with_sources) {
        TF_RETURN_IF_ERROR(outputs->sources.allocate(k, entries, &t));
        out.sources = t->flat<int64_t>().data();
      }
    }
    planner->Write(out);
    std::vector<Tensor*> id_tensors;
    std::vector<int64_t*> count_data;
    {
      std::lock_guard<std::mutex> lock(*alloc);
      for (int g = offsets_[k]; g < offsets_[k + 1]; ++g) {
        const TensorShape shape({planner->gathered(g - offsets_[k])});
        Tensor* t = nullptr;
        TF_RETURN_IF_ERROR(outputs->ids.allocate(g, shape, &t));
        id_tensors.push_back(t);
        TF_RETURN_IF_ERROR(outputs->counts.allocate(g, shape, &t));
        count_data.push_back(t->flat<int64_t>().data());
      }
    }
    planner->WriteIds(id_tensors, count_data);
    return tensorflow::OkStatus();
  }

  std::vector<DataType> ids_types_;
  std::vector<PlanOptions> options_;
};

template <typename T>
class GroupEmbeddingSparsePreLookUpOp : public GroupPreLookUpKernel {
 public:
  explicit GroupEmbeddingSparsePreLookUpOp(OpKernelConstruction* ctx)
      : GroupPreLookUpKernel(ctx) {
    if (!ctx->status().ok()) return;  // A base rejected the attrs.
    std::vector<std::string> combiners;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("combiners", &combiners));
    OP_REQUIRES_OK(ctx, RequireTables("combiners", combiners.size()));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("weighted", &weighted_));
    OP_REQUIRES_OK(ctx, RequireTables("weighted", weighted_.size()));
    bool is_sequence = false;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("is_sequence", &is_sequence));
    for (int k = 0; k < n_; ++k) {
      PlanOptions& o = options_[k];
      o.sparse_rank = 2;
      o.combine_last = !is_sequence;
      // tf.nn.safe_embedding_lookup_sparse's pruning.
      o.prune_ids = true;
      o.prune_weights = combiners[k] != "sum";
    }
  }

  void Compute(OpKernelContext* ctx) override {
    OpInputList values, indices, dense_shapes, weights;
    OP_REQUIRES_OK(ctx, ctx->input_list("sp_values", &values));
    OP_REQUIRES_OK(ctx, ctx->input_list("sp_indices", &indices));
    OP_REQUIRES_OK(ctx, ctx->input_list("sp_dense_shape", &dense_shapes));
    OP_REQUIRES_OK(ctx, ctx->input_list("sp_weights", &weights));
    const int64_t* table_rows = nullptr;
    OP_REQUIRES_OK(ctx, TableRows(ctx, 4 * n_, &table_rows));
    int64_t total = 0;
    for (int k = 0; k < n_; ++k) total += values[k].NumElements();
    std::vector<LookupPlanner<T>> planners = Planners<T>();
    OP_REQUIRES_OK(
        ctx,
        PlanTables<T>(ctx, &planners, true, 90 * (total / n_ + 1), [&](int k) {
          return planners[k].CountSparse(values[k], indices[k], dense_shapes[k],
                                         weighted_[k] ? &weights[k] : nullptr,
                                         table_rows[k]);
        }));
  }

 private:
  std::vector<bool> weighted_;
};

template <typename T>
class GroupEmbeddingPreLookUpOp : public GroupPreLookUpKernel {
 public:
  using GroupPreLookUpKernel::GroupPreLookUpKernel;

  void Compute(OpKernelContext* ctx) override {
    OpInputList ids;
    OP_REQUIRES_OK(ctx, ctx->input_list("ids", &ids));
    const int64_t* table_rows = nullptr;
    OP_REQUIRES_OK(ctx, TableRows(ctx, n_, &table_rows));
    int64_t total = 0;
    for (int k = 0; k < n_; ++k) total += ids[k].NumElements();
    std::vector<LookupPlanner<T>> planners = Planners<T>();
    OP_REQUIRES_OK(
        ctx,
        PlanTables<T>(ctx, &planners, false, 75 * (total / n_ + 1), [&](int k) {
          return planners[k].CountDense(ids[k], table_rows[k]);
        }));
    OpOutputList shapes;
    OP_REQUIRES_OK(ctx, ctx->output_list("ids_shapes", &shapes));
    for (int k = 0; k < n_; ++k) {
      const TensorShape& shape = ids[k].shape();
      Tensor* t = nullptr;
      OP_REQUIRES_OK(ctx, shapes.allocate(k, TensorShape({shape.dims()}), &t));
      for (int d = 0; d < shape.dims(); ++d) {
        t->flat<int64_t>()(d) = shape.dim_size(d);
      }
    }
  }
};

// The post-lookup ops: set up every table's combination, then work on
// chunks of rows.
class GroupPostLookUpKernel : public GroupKernel {
 public:
  explicit GroupPostLookUpKernel(OpKernelConstruction* ctx) : GroupKernel(ctx) {
    if (!ctx->status().ok()) return;  // The base rejected the attrs.
    std::vector<std::string> combiners;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("combiners", &combiners));
    OP_REQUIRES_OK(ctx, RequireTables("combiners", combiners.size()));
    combiners_.resize(n_);
    for (int k = 0; k < n_; ++k) {
      OP_REQUIRES_OK(ctx, lookup::ParseCombiner(combiners[k], &combiners_[k]));
    }
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_norms", &max_norms_));
    OP_REQUIRES_OK(ctx, RequireTables("max_norms", max_norms_.size()));
  }

 protected:
  // One table's combination and its entries grouped by output row or by
  // gathered row.
  template <typename T>
  struct Table {
    Combination<T> c;
    Groups groups;
  };

  // The inputs every post-lookup op has, fetched once per run.
  struct Inputs {
    OpInputList shards, positions, rows, weights;

    Status Fetch(OpKernelContext* ctx) {
      TF_RETURN_IF_ERROR(ctx->input_list("emb_shards", &shards));
      TF_RETURN_IF_ERROR(ctx->input_list("positions", &positions));
      TF_RETURN_IF_ERROR(ctx->input_list("rows", &rows));
      return ctx->input_list("weights", &weights);
    }
  };

  // Sets up table k's combination; `num_rows` gives its output rows once
  // the shards are collected (and its dim is known).
  template <typename T>
  Status InitTable(const Inputs& in, int k, bool with_scales,
                   const std::function<Status(int64_t dim, int64_t*)>& num_rows,
                   Table<T>* table) const {
    Combination<T>& c = table->c;
    c.combiner = combiners_[k];
    c.max_norm = static_cast<T>(max_norms_[k]);
    TF_RETURN_IF_ERROR(c.gathered.Collect(Names(k), in.shards, offsets_[k],
                                          num_partitions_[k]));
    int64_t output_rows = 0;
    TF_RETURN_IF_ERROR(num_rows(c.dim(), &output_rows));
    return c.Init(Names(k), in.positions[k], in.rows[k], in.weights[k],
                  output_rows, with_scales);
  }

  // Rows of table k's top gradient (rank >= 1, last dimension `dim`): all
  // but its last dimension. `arg` names it in errors.
  Status TopGradRows(int k, const Tensor& t, const char* arg, int64_t dim,
                     int64_t* rows) const {
    if (t.dims() < 1 || t.dim_size(t.dims() - 1) != dim) {
      return errors::InvalidArgument(type_string(), ": ", Names(k)(arg),
                                     " must have shape [..., ", dim, "], got ",
                                     t.shape().DebugString());
    }
    *rows = 1;
    for (int d = 0; d + 1 < t.dims(); ++d) *rows *= t.dim_size(d);
    return tensorflow::OkStatus();
  }

  std::vector<lookup::Combiner> combiners_;
  std::vector<float> max_norms_;
};

template <typename T>
class GroupEmbeddingSparsePostLookUpOp : public GroupPostLookUpKernel {
 public:
  explicit GroupEmbeddingSparsePostLookUpOp(OpKernelConstruction* ctx)
      : GroupPostLookUpKernel(ctx) {
    if (!ctx->status().ok()) return;  // A base rejected the attrs.
    OP_REQUIRES_OK(ctx, ctx->GetAttr("is_sequence", &is_sequence_));
  }

  void Compute(OpKernelContext* ctx) override {
    OpInputList dense_shapes;
    OP_REQUIRES_OK(ctx, ctx->input_list("sp_dense_shape", &dense_shapes));
    Inputs in;
    OP_REQUIRES_OK(ctx, in.Fetch(ctx));
    std::vector<Table<T>> tables(n_);
    OP_REQUIRES_OK(
        ctx, ForEachTable(ctx, n_, 1000, [&](int k) {
          auto num_rows = [&](int64_t, int64_t* rows) {
            return lookup::OutputRowCount(Names(k), dense_shapes[k],
                                          !is_sequence_, rows);
          };
          TF_RETURN_IF_ERROR(InitTable<T>(in, k, true, num_rows, &tables[k]));
          tables[k].groups = lookup::GroupByKey(tables[k].c.rows, tables[k].c.n,
                                                tables[k].c.num_rows);
          return tensorflow::OkStatus();
        }));
    OpOutputList outputs;
    OP_REQUIRES_OK(ctx, ctx->output_list("embeddings", &outputs));
    std::vector<T*> out(n_);
    std::vector<int64_t> sizes(n_), unit_cost(n_);
    for (int k = 0; k < n_; ++k) {
      const Combination<T>& c = tables[k].c;
      TensorShape shape({c.num_rows, c.dim()});
      if (is_sequence_) {
        const auto dims = dense_shapes[k].flat<int64_t>();
        OP_REQUIRES_OK(
            ctx, TensorShapeUtils::MakeShape(dims.data(), dims.size(), &shape));
        shape.AddDim(c.dim());
      }
      Tensor* t = nullptr;
      OP_REQUIRES_OK(ctx, outputs.allocate(k, shape, &t));
      out[k] = t->flat<T>().data();
      sizes[k] = c.num_rows;
      unit_cost[k] = (c.n / std::max<int64_t>(c.num_rows, 1) + 1) * 2 * c.dim();
    }
    ForEachChunk(ctx, sizes, unit_cost, [&](int k, int64_t lo, int64_t hi) {
      tables[k].c.Combine(tables[k].groups, lo, hi, out[k]);
    });
  }

 private:
  bool is_sequence_ = false;
};

template <typename T>
class GroupEmbeddingSparsePostLookUpGradOp : public GroupPostLookUpKernel {
 public:
  using GroupPostLookUpKernel::GroupPostLookUpKernel;

  void Compute(OpKernelContext* ctx) override {
    OpInputList top_grads;
    OP_REQUIRES_OK(ctx, ctx->input_list("top_grads", &top_grads));
    Inputs in;
    OP_REQUIRES_OK(ctx, in.Fetch(ctx));
    std::vector<Table<T>> tables(n_);
    OP_REQUIRES_OK(ctx, ForEachTable(ctx, n_, 1000, [&](int k) {
                     auto num_rows = [&](int64_t dim, int64_t* rows) {
                       return TopGradRows(k, top_grads[k], "top_grads", dim,
                                          rows);
                     };
                     return InitTable<T>(in, k, false, num_rows, &tables[k]);
                   }));
    OpOutputList grads;
    OP_REQUIRES_OK(ctx, ctx->output_list("grad_shards", &grads));
    std::vector<lookup::GradientRows<T>> grad_rows;
    grad_rows.reserve(n_);
    std::vector<Chunk> chunks;
    int64_t total_cost = 0;
    const int threads =
        ctx->device()->tensorflow_cpu_worker_threads()->num_threads;
    for (int k = 0; k < n_; ++k) {
      const Combination<T>& c = tables[k].c;
      std::vector<Tensor*> tensors(num_partitions_[k]);
      for (int g = offsets_[k]; g < offsets_[k + 1]; ++g) {
        OP_REQUIRES_OK(ctx, grads.allocate(g, in.shards[g].shape(),
                                           &tensors[g - offsets_[k]]));
      }
      grad_rows.emplace_back(tensors, c.dim());
      const int64_t gathered = c.gathered.size();
      const int64_t splits =
          lookup::GradientSplits(gathered, c.n, c.dim(), threads);
      for (int64_t s = 0; s < splits; ++s) {
        chunks.push_back(
            {k, s * gathered / splits, (s + 1) * gathered / splits});
      }
      total_cost += 2 * c.n * (c.dim() + 1);
    }
    RunChunks(ctx, chunks, total_cost / std::max<size_t>(1, chunks.size()) + 1,
              [&](int k, int64_t lo, int64_t hi) {
                tables[k].c.Gradient(top_grads[k].flat<T>().data(), lo, hi,
                                     grad_rows[k]);
              });
  }
};

template <typename T>
class GroupEmbeddingSparsePostLookUpWeightsGradOp
    : public GroupPostLookUpKernel {
 public:
  using GroupPostLookUpKernel::GroupPostLookUpKernel;

  void Compute(OpKernelContext* ctx) override {
    OpInputList top_grads, embeddings;
    OP_REQUIRES_OK(ctx, ctx->input_list("top_grads", &top_grads));
    OP_REQUIRES_OK(ctx, ctx->input_list("embeddings", &embeddings));
    Inputs in;
    OP_REQUIRES_OK(ctx, in.Fetch(ctx));
    std::vector<Table<T>> tables(n_);
    OP_REQUIRES_OK(ctx, ForEachTable(ctx, n_, 1000, [&](int k) {
                     if (embeddings[k].shape() != top_grads[k].shape()) {
                       return errors::InvalidArgument(
                           type_string(), ": ", Names(k)("embeddings"),
                           " has shape ", embeddings[k].shape().DebugString(),
                           " but ", Names(k)("top_grads"), " has ",
                           top_grads[k].shape().DebugString());
                     }
                     auto num_rows = [&](int64_t dim, int64_t* rows) {
                       return TopGradRows(k, top_grads[k], "top_grads", dim,
                                          rows);
                     };
                     return InitTable<T>(in, k, false, num_rows, &tables[k]);
                   }));
    OpOutputList outputs;
    OP_REQUIRES_OK(ctx, ctx->output_list("grad_weights", &outputs));
    std::vector<T*> out(n_);
    std::vector<int64_t> sizes(n_), unit_cost(n_);
    for (int k = 0; k < n_; ++k) {
      Tensor* t = nullptr;
      OP_REQUIRES_OK(ctx,
                     outputs.allocate(k, TensorShape({tables[k].c.n}), &t));
      out[k] = t->flat<T>().data();
      sizes[k] = tables[k].c.n;
      unit_cost[k] = 6 * tables[k].c.dim();
    }
    ForEachChunk(ctx, sizes, unit_cost, [&](int k, int64_t lo, int64_t hi) {
      tables[k].c.WeightsGradient(top_grads[k].flat<T>().data(),
                                  embeddings[k].flat<T>().data(), lo, hi,
                                  out[k]);
    });
  }
};

#define REGISTER_GROUP_KERNELS(T)                                           \
  REGISTER_KERNEL_BUILDER(Name("GroupEmbeddingSparsePreLookUp")             \
                              .Device(DEVICE_CPU)                           \
                              .TypeConstraint<T>("T"),                      \
                          GroupEmbeddingSparsePreLookUpOp<T>);              \
  REGISTER_KERNEL_BUILDER(Name("GroupEmbeddingPreLookUp")                   \
                              .Device(DEVICE_CPU)                           \
                              .TypeConstraint<T>("T"),                      \
                          GroupEmbeddingPreLookUpOp<T>);                    \
  REGISTER_KERNEL_BUILDER(Name("GroupEmbeddingSparsePostLookUp")            \
                              .Device(DEVICE_CPU)                           \
                              .TypeConstraint<T>("T"),                      \
                          GroupEmbeddingSparsePostLookUpOp<T>);             \
  REGISTER_KERNEL_BUILDER(Name("GroupEmbeddingSparsePostLookUpGrad")        \
                              .Device(DEVICE_CPU)                           \
                              .TypeConstraint<T>("T"),                      \
                          GroupEmbeddingSparsePostLookUpGradOp<T>);         \
  REGISTER_KERNEL_BUILDER(Name("GroupEmbeddingSparsePostLookUpWeightsGrad") \
                              .Device(DEVICE_CPU)                           \
                              .TypeConstraint<T>("T"),                      \
                          GroupEmbeddingSparsePostLookUpWeightsGradOp<T>)
REGISTER_GROUP_KERNELS(float);
REGISTER_GROUP_KERNELS(double);
#undef REGISTER_GROUP_KERNELS

}  // namespace
}  // namespace deeprec
