"""dHash's Pillow LANCZOS resize in exact integer arithmetic with VNNI byte dot products, for CPUs that have them
(AVX-VNNI, or AVX512-VNNI with AVX512-VL: Intel Ice Lake / Alder Lake / Sapphire Rapids and later, AMD Zen 4 and
later). Elsewhere the float32 kernel of :mod:`~medssl_monai.reduction._jit` runs; both give Pillow's values exactly,
hence the same hashes (the tests compare them with each other and with imagehash).

Arithmetic. Each Pillow pass sums ``k * u`` over a band of taps in int32 (``k`` its fixed-point weights, at most
2**22; ``u`` the 8-bit pixels) and rounds ``clip8((2**21 + sum) >> 22)``. ``vpdpbusd`` multiplies 32 unsigned bytes by
32 signed bytes and adds each group of four products to one of eight int32 lanes. The pixels are the unsigned
bytes; the weights are split into signed bytes (limbs) ``k = l0 + 2**8 l1 + 2**16 l2`` (balanced digits in
-128..127), and the limb sums are recombined ``s0 + (s1 << 8) + (s2 << 16)`` lane by lane. Every step is an integer
identity modulo 2**32 and the true sum fits in int32 (Pillow's own accumulator), so the result is Pillow's sum exactly:
no rounding check and no float64 re-computation (the float32 kernel needs both). Only the middle of a band, where
``|k| > 2**15``, needs the third limb (512 -> 9: 27 of 83 chunks of 32 taps). Both passes use it; the horizontal one
takes four image rows per weight load.

The dot products are LLVM vector code (a numba ``intrinsic``) calling ``llvm.x86.avx512.vpdpbusd.256``, which LLVM
emits as the VEX (AVX-VNNI) or EVEX (AVX512-VNNI + VL) instruction. :func:`available` decides from the host CPU's
features, and is False when numba is pinned to a CPU name or feature set (``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``,
e.g. for a portable cache) or ``MEDSSL_NO_VNNI`` is set to anything but 0.

Memory. The int16 slice (512 KiB at 512x512) must be read twice: once for its min/max, then to convert it. While
slice ``i`` is hashed, slice ``i + 1`` is prefetched a few cache lines per dot product, and its min/max is taken on
lines prefetched a while before, so neither read waits for memory. Measured on a 2-core Sapphire-Rapids-class KVM
guest (512x512 int16 lung CT): ~65 us per slice held in cache, ~80 us streamed (the float32 kernel: ~110 and ~150 us).
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from medssl_monai.reduction import _jit

__all__ = ["available", "limbs"]

_CHUNK = 32  # bytes per vpdpbusd (256-bit)
# Per dot-product call, the next slice's cache lines prefetched, and how far behind them its min/max is taken
# (swept on 512x512 int16: lines 6 / 8 / 10 / 12, lag 16 / 64 / 128 / 256 lines; 8 and 64 were fastest).
_PREFETCH_LINES = 8
_MM_LAG = 64


@lru_cache(maxsize=1)
def _host_has_vnni() -> bool:
    from llvmlite import binding
    from numba.core import config

    if config.CPU_NAME or config.CPU_FEATURES:  # numba pinned to another target: do not assume the host's features
        return False
    f = binding.get_host_cpu_features()
    return bool(f.get("avxvnni") or (f.get("avx512vnni") and f.get("avx512vl")))


def available() -> bool:
    """True when the VNNI kernel is used: numba kernels in use, the host CPU has VNNI, ``MEDSSL_NO_VNNI`` unset/0."""
    return _jit.use_numba() and os.environ.get("MEDSSL_NO_VNNI", "0") in ("", "0") and _host_has_vnni()


def _balanced_byte(v: np.ndarray) -> np.ndarray:
    """The signed byte ``b`` in -128..127 with ``v - b`` a multiple of 256."""
    return ((v + 128) & 255) - 128


def limbs(k: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """Pillow weights ``k`` (out, n) (band ``o``'s taps in ``k[o, :lengths[o]]``, as in ``hashing._band``) as
    signed-byte limbs ``k = l0 + 2**8 l1 + 2**16 l2`` for :func:`_dot4`: ``(nch, wl, c_lo, c_hi)`` with ``nch`` the
    32-tap chunks per band, ``wl`` int8 (out, 3, 32 * max(nch)), and the third limb non-zero only in chunks
    ``c_lo[o] .. c_hi[o] - 1`` (where some ``|k| > 2**15``). ``None`` if a weight needs a fourth limb (never for
    Pillow's weights, which are at most 2**22)."""
    k = np.asarray(k, dtype=np.float64)
    out = k.shape[0]
    nch = -(-np.asarray(lengths, dtype=np.int64) // _CHUNK)
    wl = np.zeros((out, 3, int(nch.max()) * _CHUNK), dtype=np.int8)
    c_lo = np.zeros(out, dtype=np.int64)
    c_hi = np.zeros(out, dtype=np.int64)
    for o in range(out):
        n = int(lengths[o])
        ko = np.zeros(wl.shape[2], dtype=np.int64)
        ko[:n] = k[o, :n].astype(np.int64)
        l0 = _balanced_byte(ko)
        w1 = (ko - l0) >> 8  # exact: ko = l0 + 256 * w1
        wide = np.flatnonzero((w1 < -128) | (w1 > 127))
        l1, l2 = w1.copy(), np.zeros_like(w1)
        if len(wide):
            c_lo[o], c_hi[o] = wide[0] // _CHUNK, wide[-1] // _CHUNK + 1
            mid = slice(int(c_lo[o]) * _CHUNK, int(c_hi[o]) * _CHUNK)
            l1[mid] = _balanced_byte(w1[mid])
            l2[mid] = (w1[mid] - l1[mid]) >> 8
        if l2.min() < -128 or l2.max() > 127:
            return None
        if not np.array_equal(l0 + (l1 << 8) + (l2 << 16), ko):  # never: an identity
            raise AssertionError("limb split does not reconstruct the weights")
        wl[o] = np.stack([l0, l1, l2])
    for a in (wl, nch, c_lo, c_hi):
        a.setflags(write=False)
    return nch, wl, c_lo, c_hi


if _jit.HAVE_NUMBA:
    import numba
    from llvmlite import ir
    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    from medssl_monai.reduction._jit import F32_MAX_RANGE, _convert_row, _minmax

    _I8, _I32, _I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
    _V8I32 = ir.VectorType(_I32, 8)

    def _as_i64(builder, v):
        return builder.sext(v, _I64) if v.type.width < 64 else v

    @intrinsic
    def _dot4(typingctx, rows, st, wl, nch, c_lo, c_hi):
        """Exact int32 sums ``rows[q, st : st + 32 nch] . k`` for q = 0..3 (uint8 rows, C order), ``k`` given by
        the (3, >= 32 nch) int8 limbs ``wl`` (:func:`limbs`), limb 2 over chunks ``c_lo .. c_hi - 1`` only."""
        ok = (
            isinstance(rows, types.Array)
            and rows.ndim == 2
            and rows.dtype == types.uint8
            and rows.layout == "C"
            and isinstance(wl, types.Array)
            and wl.ndim == 2
            and wl.dtype == types.int8
            and wl.layout == "C"
            and all(isinstance(t, types.Integer) for t in (st, nch, c_lo, c_hi))
        )
        if not ok:
            return None
        sig = types.UniTuple(types.int32, 4)(rows, st, wl, nch, c_lo, c_hi)

        def codegen(context, builder, signature, args):
            rows_v, st_v, wl_v, nch_v, lo_v, hi_v = args
            ra = context.make_array(signature.args[0])(context, builder, rows_v)
            wa = context.make_array(signature.args[2])(context, builder, wl_v)
            rstride = cgutils.unpack_tuple(builder, ra.strides, 2)[0]
            wstride = cgutils.unpack_tuple(builder, wa.strides, 2)[0]
            rdata = builder.bitcast(ra.data, _I8.as_pointer())
            wdata = builder.bitcast(wa.data, _I8.as_pointer())
            st64 = _as_i64(builder, st_v)
            fnty = ir.FunctionType(_V8I32, [_V8I32, _V8I32, _V8I32])
            dp = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpbusd.256")
            acc = [[cgutils.alloca_once_value(builder, ir.Constant(_V8I32, None)) for _ in range(3)] for _ in range(4)]

            def load(base, offset):
                return builder.load(builder.bitcast(builder.gep(base, [offset]), _V8I32.as_pointer()), align=1)

            def chunk(c, limb_ids):
                off = builder.mul(c, ir.Constant(_I64, 32))
                w = {m: load(wdata, builder.add(builder.mul(ir.Constant(_I64, m), wstride), off)) for m in limb_ids}
                for q in range(4):
                    d = load(rdata, builder.add(builder.add(builder.mul(ir.Constant(_I64, q), rstride), st64), off))
                    for m in limb_ids:
                        builder.store(builder.call(dp, [builder.load(acc[q][m]), d, w[m]]), acc[q][m])

            with cgutils.for_range(builder, _as_i64(builder, nch_v)) as loop:
                chunk(loop.index, (0, 1))
            one = ir.Constant(_I64, 1)
            with cgutils.for_range_slice(builder, _as_i64(builder, lo_v), _as_i64(builder, hi_v), one) as (c, _):
                chunk(c, (2,))
            red = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(_I32, [_V8I32]), "llvm.vector.reduce.add.v8i32"
            )
            sums = []
            for q in range(4):  # the limbs recombined lane by lane (int32, modulo 2**32), then the lanes summed
                s = builder.add(builder.load(acc[q][0]), builder.shl(builder.load(acc[q][1]), ir.Constant(_V8I32, 8)))
                s = builder.add(s, builder.shl(builder.load(acc[q][2]), ir.Constant(_V8I32, 16)))
                sums.append(builder.call(red, [s]))
            return context.make_tuple(builder, signature.return_type, sums)

        return sig, codegen

    @intrinsic
    def _prefetch(typingctx, flat, index):
        """Prefetch (read, into all cache levels) the cache line holding ``flat[index]``; no bounds check."""
        if not (isinstance(flat, types.Array) and flat.ndim == 1 and isinstance(index, types.Integer)):
            return None
        sig = types.void(flat, index)

        def codegen(context, builder, signature, args):
            a = context.make_array(signature.args[0])(context, builder, args[0])
            p = builder.bitcast(builder.gep(a.data, [_as_i64(builder, args[1])]), _I8.as_pointer())
            fnty = ir.FunctionType(ir.VoidType(), [_I8.as_pointer(), _I32, _I32, _I32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            builder.call(fn, [p, ir.Constant(_I32, 0), ir.Constant(_I32, 3), ir.Constant(_I32, 1)])
            return context.get_dummy_value()

        return sig, codegen

    @njit(cache=True, nogil=True)
    def _minmax_span(v, lo, hi):
        """``(min(lo, v.min()), max(hi, v.max()))`` for a 1D ``v``."""
        for e in range(v.shape[0]):
            lo = min(lo, v[e])
            hi = max(hi, v[e])
        return lo, hi

    @njit(cache=True, nogil=True)
    def _round8(s):
        """Pillow's ``clip8((2**21 + s) >> 22)`` of an exact int32 sum."""
        return np.uint8(min(max((np.int64(s) + 2097152) >> 22, 0), 255))

    @njit(cache=True, nogil=True)
    def _vertical(tmp, groups, vs, vband, small):
        """Pillow's vertical pass over the transposed 8-bit first-pass result ``tmp`` -> ``small`` (out_h, out_w)."""
        nch, wl, c_lo, c_hi = vband
        out_w = small.shape[1]
        for y in range(vs.shape[0]):
            for g in range(groups):
                s = _dot4(tmp[4 * g : 4 * g + 4], vs[y], wl[y], nch[y], c_lo[y], c_hi[y])
                for q in range(min(4, out_w - 4 * g)):
                    small[y, 4 * g + q] = _round8(s[q])

    @njit(cache=True, nogil=True)
    def _row(row, convert, window, lo, hi, f32_path, out):
        """One row into the uint8 ``out``: copied (``convert`` None) or converted (clipped if ``window`` is set)."""
        if convert is None:
            for c in range(row.shape[0]):
                out[c] = row[c]
        elif window is None:  # ``arg is None`` branches are pruned at compile time: the clip flag is a constant
            _convert_row(row, lo, hi, f32_path, False, out)
        else:
            _convert_row(row, lo, hi, f32_path, True, out)

    @njit(cache=True, nogil=True)
    def _dhash_range(x, a, b, convert, window, int_dtype, hs, hband, vs, vband, out):
        """Slices ``a .. b - 1`` of (N, H, W) ``x`` -> ``out[i]`` (out_h, out_w) Pillow LANCZOS values, like
        ``_jit._dhash_range`` (same 8-bit conversion, same vertical pass) with the exact VNNI first pass, four rows
        at a time; slice ``i + 1 < b`` is prefetched while slice ``i`` is hashed.

        ``convert``: None (uint8 input, copied) or True (``to_uint8``'s arithmetic); ``window``: None (per-slice
        min-max) or ``(low, high)``. Passed as None or not, they are compile-time facts (one compiled copy per
        combination, pruned branches), so the conversion loop has no branch on them, and full groups of four rows
        have a constant trip count: together ~17 us of ~104 per 512x512 int16 slice against runtime flags."""
        _, h, w = x.shape
        nch, wl, c_lo, c_hi = hband
        rows = np.zeros((4, w + wl.shape[2] + 32), np.uint8)  # zero tail: padded taps read zeros
        groups = -(-hs.shape[0] // 4)  # the vertical pass takes tmp's rows (one per output column) four at a time
        tmp = np.zeros((4 * groups, h + vband[1].shape[2] + 32), np.uint8)  # transposed; tail read at zero weights
        flat = x.reshape(-1)
        step = max(1, 64 // x.itemsize)  # elements per cache line
        span = _PREFETCH_LINES * step
        full = h - h % 4
        lo, hi = 0.0, 0.0
        if window is not None:
            lo, hi = window
        minmax = convert is not None and window is None
        if minmax:
            lo, hi = _minmax(x[a])
        for i in range(a, b):
            f32_path = int_dtype and np.floor(lo) == lo and np.floor(hi) == hi and hi - lo <= F32_MAX_RANGE
            # the next slice (elements pf .. pf_end - 1 of flat): prefetched, and its min/max taken, along the way
            pf = mm = (i + 1) * h * w
            pf_end = (i + 2) * h * w if i + 1 < b else pf
            nlo = nhi = flat[min(pf, flat.shape[0] - 1)]
            for r in range(0, h, 4):
                if r < full:  # a constant trip count
                    for q in range(4):
                        _row(x[i, r + q], convert, window, lo, hi, f32_path, rows[q])
                else:  # the last group: stale rows after h, whose sums land in tmp's tail
                    for q in range(h - r):
                        _row(x[i, r + q], convert, window, lo, hi, f32_path, rows[q])
                for o in range(hs.shape[0]):
                    if pf < pf_end:  # up to 7 lines past the next slice: prefetches never fault
                        for _ in range(_PREFETCH_LINES):
                            _prefetch(flat, pf)
                            pf += step
                    if minmax and mm + span <= min(pf - _MM_LAG * step, pf_end):  # lines prefetched a while ago
                        nlo, nhi = _minmax_span(flat[mm : mm + span], nlo, nhi)
                        mm += span
                    s = _dot4(rows, hs[o], wl[o], nch[o], c_lo[o], c_hi[o])
                    for q in range(4):
                        tmp[o, r + q] = _round8(s[q])
            if minmax and i + 1 < b:
                nlo, nhi = _minmax_span(flat[mm:pf_end], nlo, nhi)
                lo, hi = np.float64(nlo), np.float64(nhi)
            _vertical(tmp, groups, vs, vband, out[i])

    # Serial and parallel drivers are separate functions (numba's cache key ignores ``parallel=True``: see _jit).
    @njit(cache=True, nogil=True)
    def dhash_small(x, convert, window, int_dtype, hs, hband, vs, vband, out):
        """All slices of ``x`` in one thread (:func:`_dhash_range`)."""
        _dhash_range(x, 0, x.shape[0], convert, window, int_dtype, hs, hband, vs, vband, out)

    @njit(cache=True, nogil=True, parallel=True)
    def dhash_small_parallel(x, convert, window, int_dtype, hs, hband, vs, vband, out):
        """Runs of consecutive slices handed out to the numba threads (:func:`_dhash_range` per run, so that the next
        slice's prefetch and min/max work within a run): at least 32 runs, at most 16 slices each."""
        n = x.shape[0]
        size = min(16, max(1, n // 32))  # (the thread count inside a kernel would make it uncacheable)
        for k in numba.prange(-(-n // size)):
            a = k * size
            _dhash_range(x, a, min(a + size, n), convert, window, int_dtype, hs, hband, vs, vband, out)
