// Fused attention: out = softmax(scale * Q K^T) V per (batch * head), without ever writing the
// [Sq, Sk] score matrix to global memory. The algorithm, the tiling and the precision choices are
// described in mod.rs next to the Rust launcher; this file only holds the kernels.
//
// Layouts: q [BH, Sq, D], k and v [BH, Sk, D], all contiguous; out [BH, Sq, D] in f32.
// Grid: x = query tiles, y = batch * head. Every kernel writes each output element exactly once.
//
// Entry points (extern "C", looked up by name from Rust):
//   fused_attention_{bf16,f16}_d{D}: tensor cores (WMMA 16x16x16, f32 accumulation), 128 threads,
//                                    dynamic shared memory of `TcTile<D>::SMEM_BYTES` bytes.
//   fused_attention_f32_d{D}:        plain f32 FMAs, 128 threads, static shared memory only.
//
// Built without --use_fast_math on purpose: expf must stay the accurate one, since the softmax is
// the only non-linear step and the reference path computes it in f32 with the accurate exp.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>
#include <stdint.h>

namespace {

constexpr unsigned FULL_MASK = 0xffffffffu;
constexpr int WARP_SIZE = 32;

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
    v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
  }
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(FULL_MASK, v, offset);
  }
  return v;
}

// The dynamic shared memory the launch actually provided: the kernels trap when it is smaller than
// their layout needs, so a host-side size mistake is a launch error, never a silent overrun.
__device__ __forceinline__ unsigned dynamic_smem_bytes() {
  unsigned bytes;
  asm volatile("mov.u32 %0, %%dynamic_smem_size;" : "=r"(bytes));
  return bytes;
}

// One online-softmax step for one row: folds this tile's logits into the running max `m` and
// denominator `l`, and returns the factor by which everything accumulated so far must be rescaled.
// `m` starts at -inf; every tile holds at least one real key, so `m_new` is finite and
// expf(-inf - m_new) = 0 drops the (empty) past on the first tile without a special case.
__device__ __forceinline__ float online_max_step(float& m, float tile_max) {
  const float m_new = fmaxf(m, tile_max);
  const float alpha = expf(m - m_new);
  m = m_new;
  return alpha;
}

// Where a thread works: its warp and lane, the (batch * head) `bh` of its block (grid y), the
// first query row `q0` of the block's tile of BQ rows (grid x), and where that head's Q, K and V
// rows begin. Both kernels start from it and write their output through `out_row`.
template <typename T, int D>
struct HeadTile {
  int warp;
  int lane;
  int bh;
  int q0;
  const T* q;
  const T* k;
  const T* v;

  // Output row `row` of this head in out [BH, Sq, D].
  __device__ __forceinline__ float* out_row(float* out, int sq, int row) const {
    return out + (static_cast<size_t>(bh) * sq + row) * D;
  }
};

template <typename T, int D, int BQ>
__device__ __forceinline__ HeadTile<T, D> head_tile(const T* q, const T* k, const T* v, int sq,
                                                    int sk) {
  HeadTile<T, D> h;
  h.warp = threadIdx.x / WARP_SIZE;
  h.lane = threadIdx.x % WARP_SIZE;
  h.bh = blockIdx.y;
  h.q0 = blockIdx.x * BQ;
  h.q = q + static_cast<size_t>(h.bh) * sq * D;
  h.k = k + static_cast<size_t>(h.bh) * sk * D;
  h.v = v + static_cast<size_t>(h.bh) * sk * D;
  return h;
}

// Calls write(r, out_row, inv_sum) for each of the warp's ROWS query rows that is a real row:
// its output row and the reciprocal of its softmax denominator (the final normalisation).
template <int ROWS, typename T, int D, typename Write>
__device__ __forceinline__ void for_each_output_row(const HeadTile<T, D>& h, float* out, int sq,
                                                    const float (&row_sum)[ROWS], Write write) {
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    const int row = h.q0 + h.warp * ROWS + r;
    if (row < sq) {
      write(r, h.out_row(out, sq, row), 1.0f / row_sum[r]);
    }
  }
}

}  // namespace

// An entry point: the extern "C" kernel NAME for element type T and head dim D, launched with
// TILE<D>::THREADS threads per block, running IMPL (attention_tensor_core or attention_f32) on
// the head tile of its block.
#define FUSED_ATTENTION(NAME, T, D, TILE, IMPL)                                               \
  extern "C" __global__ void __launch_bounds__(TILE<D>::THREADS)                              \
      NAME(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,         \
           float* __restrict__ out, int sq, int sk, float scale) {                            \
    IMPL(head_tile<T, D, TILE<D>::BQ>(q, k, v, sq, sk), out, sq, sk, scale);                  \
  }

// The entry points fused_attention_{NAME}_d{D} of one element type, for every head dim the
// launcher accepts (FUSED_ATTENTION_HEAD_DIMS in mod.rs).
#define FUSED_ATTENTION_EVERY_D(NAME, T, TILE, IMPL)                                          \
  FUSED_ATTENTION(fused_attention_##NAME##_d64, T, 64, TILE, IMPL)                            \
  FUSED_ATTENTION(fused_attention_##NAME##_d72, T, 72, TILE, IMPL)                            \
  FUSED_ATTENTION(fused_attention_##NAME##_d80, T, 80, TILE, IMPL)                            \
  FUSED_ATTENTION(fused_attention_##NAME##_d96, T, 96, TILE, IMPL)                            \
  FUSED_ATTENTION(fused_attention_##NAME##_d128, T, 128, TILE, IMPL)

// ---------------------------------------------------------------------------------------------
// Tensor-core kernel for bf16 / f16 (needs sm_80+ for bf16 WMMA; sm_90 is the target).
// ---------------------------------------------------------------------------------------------
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800

namespace {

namespace wmma = nvcuda::wmma;

__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}

// Tile geometry and shared-memory layout, shared by bf16 and f16 (both 2 bytes). The host
// computes the same byte count in mod.rs (`tensor_core_smem_bytes`); the kernel checks it.
template <int D>
struct TcTile {
  static constexpr int WARPS = 4;
  static constexpr int THREADS = WARPS * WARP_SIZE;
  static constexpr int ROWS_PER_WARP = 16;                 // one WMMA row block per warp
  static constexpr int BQ = WARPS * ROWS_PER_WARP;         // 64 query rows per block
  static constexpr int BK = 64;                            // keys per step: two per lane
  static constexpr int DP = (D + 15) / 16 * 16;            // head dim padded to the WMMA k/n step
  // Row strides (in elements). The padding breaks the power-of-two strides that would make the
  // WMMA loads hit the same shared-memory banks, and keeps every 16-row block 32-byte aligned as
  // load_matrix_sync requires (16 rows * stride * 2 bytes is a multiple of 32 for any stride
  // that is a multiple of 8; the strides below also keep 16-byte vector stores aligned).
  static constexpr int LD_KV = DP + 8;                     // 16-bit K/V (and the staged Q)
  static constexpr int LD_S = BK + 4;                      // f32 scores
  static constexpr int LD_P = BK + 8;                      // 16-bit probabilities
  static constexpr int LD_O = DP + 4;                      // f32 output accumulator
  static constexpr int KV_BYTES = BQ * LD_KV * 2;          // BQ == BK, so Q fits in the K buffer
  static constexpr int S_BYTES = BQ * LD_S * 4;
  static constexpr int P_BYTES = BQ * LD_P * 2;
  static constexpr int O_BYTES = BQ * LD_O * 4;
  static constexpr int K_OFF = 0;
  static constexpr int V_OFF = K_OFF + KV_BYTES;
  static constexpr int S_OFF = V_OFF + KV_BYTES;
  static constexpr int P_OFF = S_OFF + S_BYTES;
  static constexpr int O_OFF = P_OFF + P_BYTES;
  static constexpr int SMEM_BYTES = O_OFF + O_BYTES;

  static_assert(BQ == BK, "the K buffer also stages the Q tile");
  static_assert(BK == 2 * WARP_SIZE, "the softmax gives each lane two keys of a tile");
  static_assert(D % 8 == 0, "rows are copied in 16-byte vectors of 8 elements");
  static_assert(KV_BYTES % 128 == 0 && S_BYTES % 128 == 0 && P_BYTES % 128 == 0,
                "every buffer must start 128-byte aligned");
};

// Copies rows [row0, row0 + TILE_ROWS) of a [rows_total, D] matrix into a [TILE_ROWS, LD] shared
// tile, with zeros for rows past the end and for the padding columns D..DP, so padded keys and
// padded head dims contribute exactly nothing to the products.
template <typename T, int D, int DP, int LD, int TILE_ROWS, int THREADS>
__device__ __forceinline__ void load_tile_16bit(T* __restrict__ dst, const T* __restrict__ src,
                                                int row0, int rows_total) {
  constexpr int VEC = 8;  // 8 x 16-bit = 16 bytes
  constexpr int CHUNKS_PER_ROW = DP / VEC;
  for (int i = threadIdx.x; i < TILE_ROWS * CHUNKS_PER_ROW; i += THREADS) {
    const int r = i / CHUNKS_PER_ROW;
    const int c = (i % CHUNKS_PER_ROW) * VEC;
    const int row = row0 + r;
    uint4 value = make_uint4(0u, 0u, 0u, 0u);
    if (row < rows_total && c < D) {
      value = *reinterpret_cast<const uint4*>(src + static_cast<size_t>(row) * D + c);
    }
    *reinterpret_cast<uint4*>(dst + r * LD + c) = value;
  }
}

template <typename T, int D>
__device__ __forceinline__ void attention_tensor_core(const HeadTile<T, D>& h,
                                                      float* __restrict__ out, int sq, int sk,
                                                      float scale) {
  using G = TcTile<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  if (dynamic_smem_bytes() < static_cast<unsigned>(G::SMEM_BYTES)) {
    __trap();
  }
  T* ks = reinterpret_cast<T*>(smem + G::K_OFF);
  T* vs = reinterpret_cast<T*>(smem + G::V_OFF);

  // Everything below the K/V loads is private to a warp: its 16 query rows, their scores,
  // probabilities and output accumulator. Only the K/V tiles are shared by the block.
  float* s_warp = reinterpret_cast<float*>(smem + G::S_OFF) + h.warp * 16 * G::LD_S;
  T* p_warp = reinterpret_cast<T*>(smem + G::P_OFF) + h.warp * 16 * G::LD_P;
  float* o_warp = reinterpret_cast<float*>(smem + G::O_OFF) + h.warp * 16 * G::LD_O;

  // The Q tile goes through the (not yet used) K buffer into registers once, for all key tiles.
  load_tile_16bit<T, D, G::DP, G::LD_KV, G::BQ, G::THREADS>(ks, h.q, h.q0, sq);
  __syncthreads();
  wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> q_frag[G::DP / 16];
#pragma unroll
  for (int kk = 0; kk < G::DP / 16; ++kk) {
    wmma::load_matrix_sync(q_frag[kk], ks + h.warp * 16 * G::LD_KV + kk * 16, G::LD_KV);
  }
  for (int i = h.lane; i < 16 * G::LD_O; i += WARP_SIZE) {
    o_warp[i] = 0.0f;
  }

  // Running max and denominator of each of the warp's 16 rows; every lane keeps the same copy,
  // since the values come out of full-warp reductions.
  float row_max[16];
  float row_sum[16];
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0.0f;
  }

  for (int k0 = 0; k0 < sk; k0 += G::BK) {
    __syncthreads();  // all warps are done with the previous K/V tile (or the staged Q)
    load_tile_16bit<T, D, G::DP, G::LD_KV, G::BK, G::THREADS>(ks, h.k, k0, sk);
    load_tile_16bit<T, D, G::DP, G::LD_KV, G::BK, G::THREADS>(vs, h.v, k0, sk);
    __syncthreads();

    // S = Q K^T for this warp's 16 rows and the tile's 64 keys. K is stored [key][dim], which
    // read column-major is K^T [dim][key]: exactly the matrix_b operand.
#pragma unroll
    for (int t = 0; t < G::BK / 16; ++t) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int kk = 0; kk < G::DP / 16; ++kk) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> k_frag;
        wmma::load_matrix_sync(k_frag, ks + t * 16 * G::LD_KV + kk * 16, G::LD_KV);
        wmma::mma_sync(acc, q_frag[kk], k_frag, acc);
      }
      wmma::store_matrix_sync(s_warp + t * 16, acc, G::LD_S, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax, one row at a time across the whole warp (lane j owns keys j and j + 32).
    // The probabilities are rounded to T for the P V product, and the denominator sums the
    // rounded values, so the output is an exact convex combination of the weights actually used.
    const bool key0_valid = k0 + h.lane < sk;
    const bool key1_valid = k0 + h.lane + WARP_SIZE < sk;
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      const float* s_row = s_warp + r * G::LD_S;
      const float s0 = key0_valid ? s_row[h.lane] * scale : -INFINITY;
      const float s1 = key1_valid ? s_row[h.lane + WARP_SIZE] * scale : -INFINITY;
      const float alpha = online_max_step(row_max[r], warp_max(fmaxf(s0, s1)));
      const T p0 = from_float<T>(expf(s0 - row_max[r]));
      const T p1 = from_float<T>(expf(s1 - row_max[r]));
      row_sum[r] = row_sum[r] * alpha + warp_sum(to_float(p0) + to_float(p1));
      p_warp[r * G::LD_P + h.lane] = p0;
      p_warp[r * G::LD_P + h.lane + WARP_SIZE] = p1;
      float* o_row = o_warp + r * G::LD_O;
#pragma unroll
      for (int c0 = 0; c0 < G::DP; c0 += WARP_SIZE) {
        if (c0 + h.lane < G::DP) {
          o_row[c0 + h.lane] *= alpha;
        }
      }
    }
    __syncwarp();

    // O += P V, with the f32 accumulator round-tripping through shared memory: WMMA fragments
    // have an unspecified element layout, so the per-row rescale above must happen in memory.
#pragma unroll
    for (int t = 0; t < G::DP / 16; ++t) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, o_warp + t * 16, G::LD_O, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < G::BK / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> p_frag;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> v_frag;
        wmma::load_matrix_sync(p_frag, p_warp + kk * 16, G::LD_P);
        wmma::load_matrix_sync(v_frag, vs + kk * 16 * G::LD_KV + t * 16, G::LD_KV);
        wmma::mma_sync(acc, p_frag, v_frag, acc);
      }
      wmma::store_matrix_sync(o_warp + t * 16, acc, G::LD_O, wmma::mem_row_major);
    }
    __syncwarp();
  }

  // Normalise and write the real rows and head dims; each lane writes consecutive columns.
  for_each_output_row(h, out, sq, row_sum, [&](int r, float* out_row, float inv_sum) {
    for (int c = h.lane; c < D; c += WARP_SIZE) {
      out_row[c] = o_warp[r * G::LD_O + c] * inv_sum;
    }
  });
}

}  // namespace

FUSED_ATTENTION_EVERY_D(bf16, __nv_bfloat16, TcTile, attention_tensor_core)
FUSED_ATTENTION_EVERY_D(f16, __half, TcTile, attention_tensor_core)

#endif  // tensor-core kernels

// ---------------------------------------------------------------------------------------------
// Scalar f32 kernel: exact f32 arithmetic (no TF32), any architecture.
// ---------------------------------------------------------------------------------------------
namespace {

template <int D>
struct F32Tile {
  static constexpr int WARPS = 4;
  static constexpr int THREADS = WARPS * WARP_SIZE;
  static constexpr int ROWS_PER_WARP = 4;            // K/V tile reused by 16 rows per block
  static constexpr int BQ = WARPS * ROWS_PER_WARP;
  static constexpr int BK = WARP_SIZE;               // one key per lane
  static constexpr int COLS_PER_LANE = (D + WARP_SIZE - 1) / WARP_SIZE;
  // K rows padded to an odd stride: lane j reads row j, so a stride of D (a multiple of 32
  // floats for most D) would put all 32 lanes in one bank.
  static constexpr int LD_K = D + 1;
  static constexpr int SMEM_BYTES = (BQ * D + BK * LD_K + BK * D) * 4;
  static_assert(SMEM_BYTES <= 48 * 1024, "static shared memory is limited to 48 KiB");
};

template <int D>
__device__ __forceinline__ void attention_f32(const HeadTile<float, D>& h, float* __restrict__ out,
                                              int sq, int sk, float scale) {
  using G = F32Tile<D>;
  __shared__ float qs[G::BQ][D];
  __shared__ float ks[G::BK][G::LD_K];
  __shared__ float vs[G::BK][D];

  for (int i = threadIdx.x; i < G::BQ * D; i += G::THREADS) {
    const int r = i / D;
    const int c = i % D;
    qs[r][c] = h.q0 + r < sq ? h.q[static_cast<size_t>(h.q0 + r) * D + c] : 0.0f;
  }

  float row_max[G::ROWS_PER_WARP];
  float row_sum[G::ROWS_PER_WARP];
  float acc[G::ROWS_PER_WARP][G::COLS_PER_LANE];  // lane owns columns lane, lane + 32, ...
#pragma unroll
  for (int i = 0; i < G::ROWS_PER_WARP; ++i) {
    row_max[i] = -INFINITY;
    row_sum[i] = 0.0f;
#pragma unroll
    for (int c = 0; c < G::COLS_PER_LANE; ++c) {
      acc[i][c] = 0.0f;
    }
  }

  for (int k0 = 0; k0 < sk; k0 += G::BK) {
    __syncthreads();  // the previous K/V tile is no longer read (the Q tile is complete)
    for (int i = threadIdx.x; i < G::BK * D; i += G::THREADS) {
      const int r = i / D;
      const int c = i % D;
      const bool valid = k0 + r < sk;
      const size_t at = static_cast<size_t>(k0 + r) * D + c;
      ks[r][c] = valid ? h.k[at] : 0.0f;
      vs[r][c] = valid ? h.v[at] : 0.0f;
    }
    __syncthreads();

    const bool key_valid = k0 + h.lane < sk;
#pragma unroll
    for (int i = 0; i < G::ROWS_PER_WARP; ++i) {
      const float* q_row = qs[h.warp * G::ROWS_PER_WARP + i];
      float s = 0.0f;
#pragma unroll 8
      for (int d = 0; d < D; ++d) {
        s = fmaf(q_row[d], ks[h.lane][d], s);
      }
      s = key_valid ? s * scale : -INFINITY;
      const float alpha = online_max_step(row_max[i], warp_max(s));
      const float p = expf(s - row_max[i]);
      row_sum[i] = row_sum[i] * alpha + warp_sum(p);
#pragma unroll
      for (int c = 0; c < G::COLS_PER_LANE; ++c) {
        acc[i][c] *= alpha;
      }
      for (int j = 0; j < G::BK; ++j) {
        const float p_j = __shfl_sync(FULL_MASK, p, j);
#pragma unroll
        for (int c = 0; c < G::COLS_PER_LANE; ++c) {
          const int col = h.lane + c * WARP_SIZE;
          if (col < D) {
            acc[i][c] = fmaf(p_j, vs[j][col], acc[i][c]);
          }
        }
      }
    }
  }

  for_each_output_row(h, out, sq, row_sum, [&](int i, float* out_row, float inv_sum) {
#pragma unroll
    for (int c = 0; c < G::COLS_PER_LANE; ++c) {
      const int col = h.lane + c * WARP_SIZE;
      if (col < D) {
        out_row[col] = acc[i][c] * inv_sum;
      }
    }
  });
}

}  // namespace

FUSED_ATTENTION_EVERY_D(f32, float, F32Tile, attention_f32)
