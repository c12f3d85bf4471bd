// Fused TopK encoder for CPU: top-k of (x @ W + b) per row without the [batch, d_sae] pre-activations.
//
// A block of rows is multiplied by one latent block of W at a time (at::addmm_out, so MKL/oneDNN runs the
// GEMM on all threads) into a tile small enough to stay in cache; the threads then fold the tile's rows
// (at::parallel_for) into a running per-row top-k: a min-heap whose root, the current k-th value, rejects
// nearly every entry with one comparison. Memory beyond the inputs: the tile and k entries per row.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <vector>

namespace {

struct Entry {
  float value;
  int64_t index;
};

// Min-heap order: the root holds the smallest kept value.
bool greater(const Entry& a, const Entry& b) { return a.value > b.value; }

template <typename scalar_t>
void fold_tile(const scalar_t* tile, int64_t n, int64_t offset, Entry* heap, int64_t& size, int64_t k) {
  for (int64_t j = 0; j < n; ++j) {
    const float v = static_cast<float>(tile[j]);
    if (size < k) {
      heap[size++] = {v, offset + j};
      std::push_heap(heap, heap + size, greater);
    } else if (v > heap[0].value) {
      std::pop_heap(heap, heap + k, greater);
      heap[k - 1] = {v, offset + j};
      std::push_heap(heap, heap + k, greater);
    }
  }
}

}  // namespace

std::vector<at::Tensor> fused_topk(const at::Tensor& x, const at::Tensor& W, const at::Tensor& b, int64_t k,
                                   int64_t row_block, int64_t latent_block) {
  TORCH_CHECK(x.dim() == 2 && W.dim() == 2 && b.dim() == 1, "fused_topk: x [batch, d_in], W [d_in, d_sae], b [d_sae]");
  TORCH_CHECK(x.size(1) == W.size(0) && W.size(1) == b.size(0), "fused_topk: shapes of x, W and b do not chain");
  TORCH_CHECK(k >= 1 && k <= W.size(1), "fused_topk: k must be in 1..d_sae");
  const int64_t batch = x.size(0), d_sae = W.size(1);
  auto values = at::empty({batch, k}, x.options());
  auto indices = at::empty({batch, k}, x.options().dtype(at::kLong));
  auto tile = at::empty({std::min(row_block, batch) * std::min(latent_block, d_sae)}, x.options());
  std::vector<Entry> heaps(std::min(row_block, batch) * k);
  std::vector<int64_t> sizes(std::min(row_block, batch));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "fused_topk", [&] {
    for (int64_t r0 = 0; r0 < batch; r0 += row_block) {
      const int64_t rows = std::min(row_block, batch - r0);
      const auto x_rows = x.narrow(0, r0, rows);
      std::fill(sizes.begin(), sizes.end(), 0);
      for (int64_t c0 = 0; c0 < d_sae; c0 += latent_block) {
        const int64_t cols = std::min(latent_block, d_sae - c0);
        auto out = tile.narrow(0, 0, rows * cols).view({rows, cols});
        at::addmm_out(out, b.narrow(0, c0, cols), x_rows, W.narrow(1, c0, cols));  // the GEMM runs multi-threaded
        const scalar_t* data = out.data_ptr<scalar_t>();
        at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
          for (int64_t r = begin; r < end; ++r) {
            fold_tile(data + r * cols, cols, c0, heaps.data() + r * k, sizes[r], k);
          }
        });
      }
      auto* v_out = values.data_ptr<scalar_t>();
      auto* i_out = indices.data_ptr<int64_t>();
      for (int64_t r = 0; r < rows; ++r) {
        Entry* heap = heaps.data() + r * k;
        std::sort_heap(heap, heap + k, greater);  // descending by value
        for (int64_t j = 0; j < k; ++j) {
          v_out[(r0 + r) * k + j] = static_cast<scalar_t>(heap[j].value);
          i_out[(r0 + r) * k + j] = heap[j].index;
        }
      }
    }
  });
  return {values, indices};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("fused_topk", &fused_topk, "top-k of x @ W + b per row, blocked over latents (values, indices)");
}
