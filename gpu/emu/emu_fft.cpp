// CPU emulation of the cuFFT real transforms that gpu/ops_fft.c calls (FSVC_CUDA=EMULATE).
//
// Plans are structs behind integer handles, as cuFFT's are. cufftPlanMany checks its arguments as
// cuFFT documents them (rank 1 only here; NULL embeddings select the basic layout); an exec checks
// that both buffers lie inside device allocations and runs as work on the plan's stream
// (fsvc_emu::enqueue_work), so a captured stream records it. The arithmetic is deliberately
// plain and independent of core/dsp's FFT, so that comparing the two is a real check: an
// iterative radix-2 FFT for powers of two and a direct DFT otherwise, in double, on a table of
// exp(-2 pi i j / n). Like cuFFT's out-of-place C2R, which may overwrite its input, the emulated
// C2R fills its input with NaN afterwards, so code that reuses it is caught.
#include <cufft.h>

#include <complex>
#include <math.h>
#include <mutex>
#include <stdio.h>
#include <string.h>
#include <vector>

namespace {

struct Plan {
  int n = 0, batch = 0;
  cufftType type = CUFFT_R2C;
  int istride = 1, idist = 0, ostride = 1, odist = 0;
  cudaStream_t stream = nullptr;
};

std::mutex plan_mutex;
std::vector<Plan *> plans;  // handle h is plans[h - 1]; destroyed plans leave a nullptr

Plan *find_plan(cufftHandle h) {
  std::lock_guard<std::mutex> lock(plan_mutex);
  if (h < 1 || (size_t)h > plans.size()) return nullptr;
  return plans[(size_t)h - 1];
}

bool real_input(cufftType t) { return t == CUFFT_R2C || t == CUFFT_D2Z; }
bool is_double(cufftType t) { return t == CUFFT_D2Z || t == CUFFT_Z2D; }

using cplx = std::complex<double>;

// w[j] = exp(sign 2 pi i j / n)
std::vector<cplx> twiddles(size_t n, int sign) {
  std::vector<cplx> w(n);
  for (size_t j = 0; j < n; j++) {
    double ang = 2.0 * M_PI * (double)j / (double)n;
    w[j] = cplx(cos(ang), sign * sin(ang));
  }
  return w;
}

// a[f] <- sum_k a[k] w[f k mod n]
void transform(std::vector<cplx> &a, const std::vector<cplx> &w) {
  const size_t n = a.size();
  if (n > 1 && (n & (n - 1)) == 0) {
    for (size_t i = 1, j = 0; i < n; i++) {  // bit reversal
      size_t bit = n >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) std::swap(a[i], a[j]);
    }
    for (size_t len = 2; len <= n; len <<= 1)
      for (size_t i = 0; i < n; i += len)
        for (size_t k = 0; k < len / 2; k++) {
          cplx u = a[i + k], v = a[i + k + len / 2] * w[k * (n / len)];
          a[i + k] = u + v;
          a[i + k + len / 2] = u - v;
        }
    return;
  }
  std::vector<cplx> out(n);
  for (size_t f = 0; f < n; f++) {
    cplx acc = 0;
    for (size_t k = 0; k < n; k++) acc += a[k] * w[(f * k) % n];
    out[f] = acc;
  }
  a.swap(out);
}

// extent in elements of `batch` rows of `len` elements with the given stride and distance
size_t extent(int len, int stride, int dist, int batch) {
  return (size_t)(batch - 1) * (size_t)dist + (size_t)(len - 1) * (size_t)stride + 1;
}

template <class R> void run(const Plan &p, const void *in, void *out) {
  const int n = p.n, nb = n / 2 + 1;
  std::vector<cplx> a((size_t)n);
  const std::vector<cplx> w = twiddles((size_t)n, real_input(p.type) ? -1 : +1);
  for (int b = 0; b < p.batch; b++) {
    if (real_input(p.type)) {
      const R *x = (const R *)in + (size_t)b * p.idist;
      for (int k = 0; k < n; k++) a[k] = (double)x[(size_t)k * p.istride];
      transform(a, w);
      R *y = (R *)out + 2 * (size_t)b * p.odist;  // complex elements: two reals each
      for (int f = 0; f < nb; f++) {
        y[2 * (size_t)f * p.ostride] = (R)a[f].real();
        y[2 * (size_t)f * p.ostride + 1] = (R)a[f].imag();
      }
    } else {
      const R *z = (const R *)in + 2 * (size_t)b * p.idist;
      for (int f = 0; f < nb; f++) a[f] = cplx(z[2 * (size_t)f * p.istride], z[2 * (size_t)f * p.istride + 1]);
      a[0] = a[0].real();  // a real signal's spectrum is real at DC and at n/2
      if (n % 2 == 0) a[n / 2] = a[n / 2].real();
      for (int f = nb; f < n; f++) a[f] = std::conj(a[n - f]);
      transform(a, w);
      R *y = (R *)out + (size_t)b * p.odist;
      for (int k = 0; k < n; k++) y[(size_t)k * p.ostride] = (R)a[k].real();
    }
  }
}

cufftResult exec(cufftHandle h, cufftType type, void *in, void *out, const char *what) {
  Plan *pp = find_plan(h);
  if (!pp) {
    fprintf(stderr, "fsvc CUDA emulation: %s: %d is not a live cuFFT plan\n", what, h);
    return CUFFT_INVALID_PLAN;
  }
  if (pp->type != type) {
    fprintf(stderr, "fsvc CUDA emulation: %s on a plan of another type (0x%x)\n", what, (unsigned)pp->type);
    return CUFFT_INVALID_TYPE;
  }
  const Plan p = *pp;  // captured work keeps the layout even if the plan is destroyed later
  const size_t real_bytes = is_double(type) ? 8 : 4, cplx_bytes = 2 * real_bytes;
  const int nb = p.n / 2 + 1;
  const bool fwd = real_input(type);
  size_t in_bytes = extent(fwd ? p.n : nb, p.istride, p.idist, p.batch) * (fwd ? real_bytes : cplx_bytes);
  size_t out_bytes = extent(fwd ? nb : p.n, p.ostride, p.odist, p.batch) * (fwd ? cplx_bytes : real_bytes);
  if (!fsvc_emu_is_device_range(in, in_bytes) || !fsvc_emu_is_device_range(out, out_bytes)) {
    fprintf(stderr,
            "fsvc CUDA emulation: %s: input %p (%zu bytes) or output %p (%zu bytes) is not inside a "
            "device allocation\n",
            what, in, in_bytes, out, out_bytes);
    return CUFFT_EXEC_FAILED;
  }
  const bool disjoint = (char *)in + in_bytes <= (char *)out || (char *)out + out_bytes <= (char *)in;
  cudaError_t e = fsvc_emu::enqueue_work(p.stream, [p, in, out, in_bytes, fwd, disjoint, what]() {
    fsvc_emu_enter_device(what);
    if (is_double(p.type)) run<double>(p, in, out);
    else run<float>(p, in, out);
    if (!fwd && disjoint) {  // cuFFT's out-of-place C2R may overwrite its input
      if (is_double(p.type))
        for (size_t i = 0; i < in_bytes / 8; i++) ((double *)in)[i] = NAN;
      else
        for (size_t i = 0; i < in_bytes / 4; i++) ((float *)in)[i] = NAN;
    }
    fsvc_emu_leave_device();
  });
  return e == cudaSuccess ? CUFFT_SUCCESS : CUFFT_EXEC_FAILED;
}

}  // namespace

extern "C" {

cufftResult cufftPlanMany(cufftHandle *plan, int rank, int *n, int *inembed, int istride, int idist,
                          int *onembed, int ostride, int odist, cufftType type, int batch) {
  if (!plan || !n) return CUFFT_INVALID_VALUE;
  if (type != CUFFT_R2C && type != CUFFT_C2R && type != CUFFT_D2Z && type != CUFFT_Z2D) {
    fprintf(stderr, "fsvc CUDA emulation: cufftPlanMany: only real transforms are emulated (type 0x%x)\n",
            (unsigned)type);
    return CUFFT_INVALID_TYPE;
  }
  if (rank != 1) {
    fprintf(stderr, "fsvc CUDA emulation: cufftPlanMany: only rank 1 is emulated, got %d\n", rank);
    return CUFFT_INVALID_VALUE;
  }
  if (n[0] < 1 || batch < 1) return CUFFT_INVALID_SIZE;
  Plan *p = new Plan();
  p->n = n[0];
  p->batch = batch;
  p->type = type;
  const int nb = n[0] / 2 + 1, in_len = real_input(type) ? n[0] : nb, out_len = real_input(type) ? nb : n[0];
  if (inembed && onembed) {  // advanced layout (for rank 1 the embeddings' values are not used)
    if (istride < 1 || ostride < 1 || idist < 0 || odist < 0) {
      delete p;
      return CUFFT_INVALID_VALUE;
    }
    p->istride = istride;
    p->idist = idist;
    p->ostride = ostride;
    p->odist = odist;
  } else {  // basic layout: contiguous rows
    p->idist = in_len;
    p->odist = out_len;
  }
  std::lock_guard<std::mutex> lock(plan_mutex);
  plans.push_back(p);
  *plan = (cufftHandle)plans.size();
  return CUFFT_SUCCESS;
}

cufftResult cufftSetStream(cufftHandle plan, cudaStream_t stream) {
  Plan *p = find_plan(plan);
  if (!p) return CUFFT_INVALID_PLAN;
  p->stream = stream;
  return CUFFT_SUCCESS;
}

cufftResult cufftDestroy(cufftHandle plan) {
  std::lock_guard<std::mutex> lock(plan_mutex);
  if (plan < 1 || (size_t)plan > plans.size() || !plans[(size_t)plan - 1]) return CUFFT_INVALID_PLAN;
  delete plans[(size_t)plan - 1];
  plans[(size_t)plan - 1] = nullptr;
  return CUFFT_SUCCESS;
}

cufftResult cufftExecR2C(cufftHandle plan, cufftReal *idata, cufftComplex *odata) {
  return exec(plan, CUFFT_R2C, idata, odata, "cufftExecR2C");
}
cufftResult cufftExecC2R(cufftHandle plan, cufftComplex *idata, cufftReal *odata) {
  return exec(plan, CUFFT_C2R, idata, odata, "cufftExecC2R");
}
cufftResult cufftExecD2Z(cufftHandle plan, cufftDoubleReal *idata, cufftDoubleComplex *odata) {
  return exec(plan, CUFFT_D2Z, idata, odata, "cufftExecD2Z");
}
cufftResult cufftExecZ2D(cufftHandle plan, cufftDoubleComplex *idata, cufftDoubleReal *odata) {
  return exec(plan, CUFFT_Z2D, idata, odata, "cufftExecZ2D");
}

}  // extern "C"
