// The TensorFlow resource behind a KvVarHandleOp: one column of an engine
// EmbeddingTable. A primary EmbeddingVariable owns column 0 of its table; an
// optimizer slot shares the primary's table and owns another column, so one
// key lookup reaches the value and every slot.
#ifndef DEEPREC_OPS_EMBEDDING_VAR_H_
#define DEEPREC_OPS_EMBEDDING_VAR_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "csrc/embedding/embedding_table.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/platform/mutex.h"

namespace deeprec {

template <typename K>
class EmbeddingVar : public tensorflow::ResourceBase {
 public:
  using Table = embedding::EmbeddingTable<K>;

  std::string DebugString() const override {
    tensorflow::tf_shared_lock l(mu_);
    return "EmbeddingVar(column " + std::to_string(column_) + ")";
  }

  // The primary reports the whole table (slots included); slots report 0 so
  // that the table is counted once.
  int64_t MemoryUsed() const override {
    std::shared_ptr<Table> table = this->table();
    return table && column() == 0 ? table->MemoryBytes() : 0;
  }

  // Makes this variable the primary (column 0) of a new table from `make`,
  // unless `if_uninitialized` and it already has a table. Atomic, so that
  // concurrent restores of a variable and its slots create one table.
  void InitPrimary(const std::function<std::shared_ptr<Table>()>& make,
                   bool if_uninitialized) {
    tensorflow::mutex_lock l(mu_);
    if (if_uninitialized && table_) return;
    table_ = make();
    column_ = 0;
  }

  // Makes this variable an optimizer-slot column of `table`, adding the
  // column with `defaults` unless it is already attached to that table.
  void AttachSlot(std::shared_ptr<Table> table, std::vector<float> defaults) {
    tensorflow::mutex_lock l(mu_);
    if (table_ == table) return;
    column_ = table->AddColumn(std::move(defaults));
    table_ = std::move(table);
  }

  // The table this variable reads and writes, or null before initialization.
  // Callers keep the returned pointer for the whole op, so a concurrent
  // re-initialization never frees a table in use.
  std::shared_ptr<Table> table() const {
    tensorflow::tf_shared_lock l(mu_);
    return table_;
  }

  int column() const {
    tensorflow::tf_shared_lock l(mu_);
    return column_;
  }

 private:
  mutable tensorflow::mutex mu_;
  std::shared_ptr<Table> table_;
  int column_ = 0;
};

// Looks up the initialized EmbeddingVar behind input `index`; fails with
// FailedPrecondition naming the variable when it has not been initialized.
template <typename K>
tensorflow::Status LookupEmbeddingVar(
    tensorflow::OpKernelContext* ctx, int index,
    tensorflow::core::RefCountPtr<EmbeddingVar<K>>* var,
    std::shared_ptr<embedding::EmbeddingTable<K>>* table) {
  const tensorflow::ResourceHandle& handle = HandleFromInput(ctx, index);
  tensorflow::Status s = LookupResource(ctx, handle, var);
  if (s.ok()) *table = (*var)->table();
  if (!s.ok() || !*table) {
    return tensorflow::errors::FailedPrecondition(
        ctx->op_kernel().type_string(), ": EmbeddingVariable '", handle.name(),
        "' is not initialized; run its initializer (e.g. "
        "tf.global_variables_initializer()) first.");
  }
  return tensorflow::OkStatus();
}

}  // namespace deeprec

#endif  // DEEPREC_OPS_EMBEDDING_VAR_H_
