// Fused TopK encoder for CPU: top-k of (x @ W + b) per row without the [batch, d_sae] pre-activations.
//
// A block of rows is multiplied by one latent block of W at a time (at::addmm_out, so MKL/oneDNN runs the
// GEMM on all threads) into a tile small enough to stay in cache; the threads then fold the tile's rows
// (at::parallel_for) into a running per-row top-k: a min-heap whose root, the current k-th value, rejects
// nearly every entry with one comparison. Memory beyond the inputs: the tile and k entries per row.
//
// row_topk: the top k of each row of a dense matrix plus a bias row, faster than torch.topk on CPU (and without
// addmm's copy of the bias into the product). Per row, the maxima of 32-entry groups bound the k-th value from
// below (k groups reach their k-th largest maximum), so only the groups at or above that bound are scanned
// again, and a partial sort of the few entries found picks the k. Values come back as float32.
//
// csr_dense and pair_dots: the sparse products of TopK training (see each). Their inner loops are compiled once
// per x86 vector width (target_clones: AVX-512, AVX2, baseline) and the loader picks the widest this CPU has, so
// the extension stays portable while using the wide registers where they exist.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
#define MECHSCOPE_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MECHSCOPE_VECTOR_CLONES
#endif

namespace {

constexpr int64_t DOT_LANES = 16;

// <a, b> in DOT_LANES independent partial sums, so that the compiler vectorises it without reassociating.
MECHSCOPE_VECTOR_CLONES
float dot(const float* a, const float* b, int64_t n) {
  float lanes[DOT_LANES] = {};
  int64_t t = 0;
  for (; t + DOT_LANES <= n; t += DOT_LANES) {
    for (int64_t l = 0; l < DOT_LANES; ++l) lanes[l] += a[t + l] * b[t + l];
  }
  float sum = 0.0f;
  for (; t < n; ++t) sum += a[t] * b[t];
  for (int64_t l = 0; l < DOT_LANES; ++l) sum += lanes[l];
  return sum;
}

// acc += w * row.
MECHSCOPE_VECTOR_CLONES
void axpy(float* acc, float w, const float* row, int64_t n) {
  for (int64_t t = 0; t < n; ++t) acc[t] += w * row[t];
}

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

// Ordering key: NaN above everything, as torch.topk orders it.
inline float key(float v) { return v != v ? std::numeric_limits<float>::infinity() : v; }

constexpr int64_t GROUP = 32;
constexpr int64_t LANES = 8;

template <typename scalar_t>
inline float to_float(scalar_t v) { return static_cast<float>(v); }
template <>
inline float to_float<c10::BFloat16>(c10::BFloat16 v) {  // the bit shift it is, so that loops over it vectorise
  const uint32_t bits = static_cast<uint32_t>(v.x) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Each group's maximum (NaN counted as +inf), written lane by lane so that the compiler can vectorise it.
template <typename scalar_t>
void group_maxima(const scalar_t* row, const float* bias, int64_t n, float* maxima) {
  const int64_t full = n / GROUP;
  for (int64_t g = 0; g < full; ++g) {
    float lanes[LANES];
    bool nan = false;
    std::fill(lanes, lanes + LANES, -std::numeric_limits<float>::infinity());
    for (int64_t j = 0; j < GROUP; j += LANES) {
      for (int64_t l = 0; l < LANES; ++l) {
        const float v = to_float(row[g * GROUP + j + l]) + bias[g * GROUP + j + l];
        nan |= v != v;
        lanes[l] = v > lanes[l] ? v : lanes[l];
      }
    }
    maxima[g] = nan ? std::numeric_limits<float>::infinity() : *std::max_element(lanes, lanes + LANES);
  }
  if (full * GROUP < n) {
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t j = full * GROUP; j < n; ++j) m = std::max(m, key(to_float(row[j]) + bias[j]));
    maxima[full] = m;
  }
}

template <typename scalar_t>
void top_of_row(const scalar_t* row, const float* bias, int64_t n, int64_t k, std::vector<float>& maxima,
                std::vector<float>& order, std::vector<Entry>& found, float* v_out, int64_t* i_out) {
  const int64_t groups = (n + GROUP - 1) / GROUP;
  float bound = -std::numeric_limits<float>::infinity();
  maxima.resize(groups);
  group_maxima(row, bias, n, maxima.data());
  if (groups > k) {
    order.assign(maxima.begin(), maxima.end());
    std::nth_element(order.begin(), order.begin() + (k - 1), order.end(), std::greater<float>());
    bound = order[k - 1];
  }
  found.clear();
  for (int64_t g = 0; g < groups; ++g) {
    if (maxima[g] < bound) continue;
    const int64_t end = std::min(n, (g + 1) * GROUP);
    for (int64_t j = g * GROUP; j < end; ++j) {
      const float v = key(to_float(row[j]) + bias[j]);
      if (v >= bound) found.push_back({v, j});
    }
  }
  std::nth_element(found.begin(), found.begin() + (k - 1), found.end(), greater);
  for (int64_t j = 0; j < k; ++j) {
    v_out[j] = to_float(row[found[j].index]) + bias[found[j].index];
    i_out[j] = found[j].index;
  }
}

}  // namespace

std::vector<at::Tensor> row_topk(const at::Tensor& pre, const c10::optional<at::Tensor>& bias, int64_t k,
                                 const c10::optional<at::Tensor>& rows) {
  TORCH_CHECK(pre.dim() == 2, "row_topk: pre must be [rows, columns]");
  TORCH_CHECK(k >= 1 && k <= pre.size(1), "row_topk: k must be in 1..columns");
  TORCH_CHECK(!bias.has_value() || (bias->dim() == 1 && bias->size(0) == pre.size(1)), "row_topk: bias must be [columns]");
  TORCH_CHECK(!rows.has_value() || (rows->dim() == 1 && rows->scalar_type() == at::kLong), "row_topk: rows must be int64 [n]");
  const auto dense = pre.contiguous();
  const int64_t n = dense.size(1);
  const auto picked = rows.has_value() ? rows->contiguous() : at::arange(dense.size(0), dense.options().dtype(at::kLong));
  const int64_t count = picked.size(0);
  const int64_t* row_index = picked.data_ptr<int64_t>();
  for (int64_t r = 0; r < count; ++r) TORCH_CHECK(row_index[r] >= 0 && row_index[r] < dense.size(0), "row_topk: row out of range");
  const auto offsets = bias.has_value() ? bias->to(at::kFloat).contiguous() : at::zeros({n}, dense.options().dtype(at::kFloat));
  const float* b = offsets.data_ptr<float>();
  auto values = at::empty({count, k}, dense.options().dtype(at::kFloat));
  auto indices = at::empty({count, k}, dense.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dense.scalar_type(), "row_topk", [&] {
    const scalar_t* data = dense.data_ptr<scalar_t>();
    float* v_out = values.data_ptr<float>();
    int64_t* i_out = indices.data_ptr<int64_t>();
    at::parallel_for(0, count, 8, [&](int64_t begin, int64_t end) {
      std::vector<float> maxima, order;
      std::vector<Entry> found;
      for (int64_t r = begin; r < end; ++r) {
        top_of_row(data + row_index[r] * n, b, n, k, maxima, order, found, v_out + r * k, i_out + r * k);
      }
    });
  });
  return {values, indices};
}

// csr_dense: a CSR matrix [n_rows, *] times a dense [*, d] matrix, each output row accumulated in place from the
// dense rows its entries pick (no zero fill of the output, no copy out of a sparse library's buffer).
at::Tensor csr_dense(const at::Tensor& crow, const at::Tensor& cols, const at::Tensor& values, const at::Tensor& dense) {
  TORCH_CHECK(crow.dim() == 1 && cols.dim() == 1 && values.dim() == 1 && dense.dim() == 2, "csr_dense: crow, cols, values 1-d; dense 2-d");
  TORCH_CHECK(crow.scalar_type() == at::kLong && cols.scalar_type() == at::kLong, "csr_dense: int64 crow and cols");
  TORCH_CHECK(values.scalar_type() == at::kFloat && dense.scalar_type() == at::kFloat, "csr_dense: float32 values and dense");
  TORCH_CHECK(cols.size(0) == values.size(0), "csr_dense: one value per column index");
  const auto c = crow.contiguous(), k = cols.contiguous(), v = values.contiguous(), y = dense.contiguous();
  const int64_t n_rows = c.size(0) - 1, d = y.size(1), n_dense = y.size(0);
  const int64_t* cp = c.data_ptr<int64_t>();
  const int64_t* kp = k.data_ptr<int64_t>();
  const float* vp = v.data_ptr<float>();
  const float* yp = y.data_ptr<float>();
  TORCH_CHECK(n_rows >= 0 && cp[n_rows] == cols.size(0), "csr_dense: crow must end at the number of entries");
  for (int64_t e = 0; e < cols.size(0); ++e) TORCH_CHECK(kp[e] >= 0 && kp[e] < n_dense, "csr_dense: column out of range");
  auto out = at::empty({n_rows, d}, y.options());
  float* op = out.data_ptr<float>();
  at::parallel_for(0, n_rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* acc = op + r * d;
      std::fill(acc, acc + d, 0.0f);
      for (int64_t e = cp[r]; e < cp[r + 1]; ++e) axpy(acc, vp[e], yp + kp[e] * d, d);
    }
  });
  return out;
}

// pair_dots: out[e] = <A[rows[e]], B[cols[e]]> for a list of (row, column) pairs, the values of a sampled product
// A @ B^T. The pairs are visited grouped by column (a counting sort), so each row of B, the large matrix (an
// encoder's or decoder's latents), is read from memory once while the rows of A it meets come from cache.
at::Tensor pair_dots(const at::Tensor& A, const at::Tensor& B, const at::Tensor& rows, const at::Tensor& cols) {
  TORCH_CHECK(A.dim() == 2 && B.dim() == 2 && A.size(1) == B.size(1), "pair_dots: A [n, d] and B [m, d]");
  TORCH_CHECK(A.scalar_type() == at::kFloat && B.scalar_type() == at::kFloat, "pair_dots: float32 A and B");
  TORCH_CHECK(rows.dim() == 1 && cols.dim() == 1 && rows.size(0) == cols.size(0), "pair_dots: rows and cols [pairs]");
  TORCH_CHECK(rows.scalar_type() == at::kLong && cols.scalar_type() == at::kLong, "pair_dots: int64 rows and cols");
  const auto a = A.stride(1) == 1 ? A : A.contiguous(), b = B.stride(1) == 1 ? B : B.contiguous();
  const auto r = rows.contiguous(), c = cols.contiguous();
  const int64_t pairs = r.size(0), d = a.size(1), m = b.size(0), a_step = a.stride(0), b_step = b.stride(0);
  const int64_t* rp = r.data_ptr<int64_t>();
  const int64_t* cp = c.data_ptr<int64_t>();
  std::vector<int64_t> start(m + 1, 0);
  for (int64_t e = 0; e < pairs; ++e) {
    TORCH_CHECK(cp[e] >= 0 && cp[e] < m && rp[e] >= 0 && rp[e] < a.size(0), "pair_dots: pair out of range");
    ++start[cp[e] + 1];
  }
  for (int64_t j = 0; j < m; ++j) start[j + 1] += start[j];
  std::vector<int64_t> order(pairs), next(start.begin(), start.end() - 1);
  for (int64_t e = 0; e < pairs; ++e) order[next[cp[e]]++] = e;
  auto out = at::empty({pairs}, a.options());
  float* op = out.data_ptr<float>();
  const float* ap = a.data_ptr<float>();
  const float* bp = b.data_ptr<float>();
  at::parallel_for(0, m, 64, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      for (int64_t s = start[j]; s < start[j + 1]; ++s) {
        const int64_t e = order[s];
        op[e] = dot(ap + rp[e] * a_step, bp + j * b_step, d);
      }
    }
  });
  return out;
}

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
  m.def("csr_dense", &csr_dense, "CSR [rows, *] (crow, cols, values) times dense [*, d] -> [rows, d]");
  m.def("pair_dots", &pair_dots, "<A[rows[e]], B[cols[e]]> for each pair e: a sampled A @ B^T");
  m.def("row_topk", &row_topk, "top-k of each row (or of the given rows) of pre + bias, unordered (float32 values, "
        "indices)", py::arg("pre"), py::arg("bias") = py::none(), py::arg("k"), py::arg("rows") = py::none());
}
