"""The fused dense block and transition: DenseNet-BC in the channels-first (C, N, H, W) layout.

``FusedDenseBlock(block)`` and ``FusedTransition(transition)`` are fused layers (``core/fusion``):
a Net's fusion pass puts them in its plan in place of a DenseBlock / Transition node (rules
at the end of this file), and they run the whole block in one pass instead of calling the
DenseLayer children one by one. The children still own every parameter and buffer (same
names, same state dict), read through their public API, so the reference and the fused
forms are interchangeable and the tests compare them. Scratch comes from the Net's
``Workspace``; what one forward keeps for its backward is in the layer's cache.

Layout. The block's feature buffer is ``F (C0 + L*k, N, H, W)``: channel c is one
contiguous row of ``Fm = F.reshape(C, M)``, M = N*H*W, and layer l reads the contiguous
matrix ``Fm[:c_l]``. The block's output is returned as ``F.transpose(1, 0, 2, 3)``, an
NCHW-shaped view of the CNHW buffer (F is allocated per forward, so the view stays valid),
and dx likewise; a fast Transition reads such views without copying, so between the stem
and the classifier no layout copy is made; a layer that needs contiguous NCHW copies once.

Forward of dense layer l (c = C0 + l*k input channels, width = bn_size*k):

    A   = max(Fm[:c] * s1 + t1, 0)            BN1+ReLU in one pass (s = w/sqrt(var+eps), t = b - mean*s)
    h   = W1 (width, c) @ A (c, M)            the 1x1 conv: ONE plain GEMM
    P   = max(h * s2 + t2, 0) written into the interior of a zero-bordered (width, N, H+2, W+2)
          buffer, flattened to (width, Np)
    Z   = W2all (9k, width) @ P               the 3x3 conv: one GEMM for all nine taps
    y[:, q] = sum_t Z[t-th k rows, q + off_t]  (off_t = i*(W+2) + j: the shifted-GEMM identity);
          the valid positions of y are F's channels c..c+k.

BN statistics. The channels of F never change once written, so each channel's batch mean
and variance are computed ONCE, when it is written (two passes, float64 accumulators),
and shared by the BN1 of every later layer (which all normalise the same data with the
same statistics), instead of once per reading layer (O(L) instead of O(L^2) reductions).

Backward, with G (C, M) the block's gradient buffer (G = dy), going l = L..1:

    G[c:c+k] += alpha * F[c:c+k] + beta        deferred BN1 terms (see below): now complete
    D   = nine shifted copies of dy (9k, Np)   (D_t[:, p] = dy_pad[:, p - off_t])
    dW2all = D @ P^T;  dP = W2all^T @ D        two GEMMs, no shifted adds over width rows
    dh  = BN2/ReLU backward of dP's interior   (P recomputed from h: only h is stored)
    A   = recomputed from Fm[:c]               (memory-efficient: A is never stored)
    dW1 = dh @ A^T;  dA = W1^T @ dh
    BN1/ReLU backward: dz = dA * (A > 0); G[:c] += s1 * dz (one fused pass that also
          reduces sum dz and sum dz * x); the rest of BN's dx, alpha*x + beta per channel,
          is affine in x, so its coefficients are summed over the layers in float64 and
          applied once per channel when that channel's gradient is next needed.

Memory (training): F, and conv1's output h of every layer (L * bn_size*k * M); everything
else is scratch from a workspace shared by all blocks (reused across iterations, so no
page faults per step). Eval: nothing is stored; BN is folded into s, t.
"""
from __future__ import annotations

from ..backend import Array, Shape, get_array_module
from ..core.fusion import FusedLayer, Match, register_rule
from ..functional import cnhw
from ..functional.layout import from_cnhw, to_cnhw
from ..layers.batchnorm import BatchNorm2d
from ..layers.conv import Conv2d
from .dense_block import DenseBlock, Transition


# --------------------------------------------------------------------- helpers
def _plain_bn(layer) -> bool:
    return type(layer) is BatchNorm2d   # a subclass (SyncBatchNorm) normalises its own way


def unsupported(block: DenseBlock) -> str:
    """Why the fused form cannot run this block ('' when it can)."""
    bad = [m.name for m in block.dense_layers if not (m.bottleneck and m.dropout == 0)]
    if bad:
        return (f"the fused dense block covers bottleneck layers without dropout; {', '.join(bad[:3])} "
                f"{'is' if len(bad) == 1 else 'are'} not (the block runs its DenseLayers one by one)")
    if not all(_plain_bn(n) for m in block.dense_layers for k, n in m.children().items() if k.startswith("norm")):
        return "the fused dense block normalises with BatchNorm2d's math; the block has another norm layer"
    return ""


def _parts(layer):
    ch = layer.children()
    return ch["norm1"], ch["conv1"], ch["norm2"], ch["conv2"]


def _scale_shift(norm, mean, var, dtype):
    """float64 (invstd, s) and s, t in dtype: BN folded into y = x * s + t."""
    xp = get_array_module(norm.weight.data)
    invstd = 1.0 / xp.sqrt(xp.asarray(var, xp.float64) + norm.eps)
    s = norm.weight.data.astype(xp.float64) * invstd
    t = norm.bias.data.astype(xp.float64) - xp.asarray(mean, xp.float64) * s
    return invstd, s, s.astype(dtype), t.astype(dtype)


def _geometry(N, H, W):
    Hp, Wp = H + 2, W + 2
    Np = N * Hp * Wp
    offs = [i * Wp + j for i in range(3) for j in range(3)]
    return Hp, Wp, Np, offs, Np - offs[-1]


def _check_dtype(layer, x, param) -> None:
    if x.dtype != param.dtype:
        raise layer.error(f"input has dtype {x.dtype} but the params are {param.dtype}; convert the input with "
                          f"x.astype('{param.dtype}') or the model with net.astype('{x.dtype}')")


class _FusedDenseNetPart(FusedLayer):
    """Shared by the fused block and transition (their scratch is ``FusedLayer.workspace``)."""

    num_inputs = 1

    def __init__(self, part, *, name: str | None = None) -> None:
        super().__init__(part, name=name)

    def _output_shape(self, shape: Shape) -> Shape:
        return self.parts[0].setup(shape)


# --------------------------------------------------------------------- the block
class FusedDenseBlock(_FusedDenseNetPart):
    """A whole DenseNet-BC dense block in one fused pass (channels-first, see the module docstring).

    Forward/backward: DenseBlock's math (BN1-ReLU-Conv1x1-BN2-ReLU-Conv3x3 per layer, the
    concatenation in a shared buffer), with BN folded into scale/shift, each 1x1 conv one GEMM
    and each 3x3 conv one GEMM plus nine shifted sums.
    Shapes: x (N, C0, H, W) -> y (N, C0 + L*k, H, W) (the NCHW view of a channels-first buffer).
    Caches: F (the block's features), the float64 batch statistics; conv1's outputs live in the
        workspace buffer "<name>.hs" (one per block, reused across steps).

    Example:
        >>> import numpy as np
        >>> from layerwise.models import DenseBlock
        >>> block = DenseBlock(2, growth_rate=4)
        >>> FusedDenseBlock(block).forward(np.ones((2, 8, 5, 5), np.float32)).shape
        (2, 16, 5, 5)
    """

    def __init__(self, block: DenseBlock, *, name: str | None = None) -> None:
        why = unsupported(block)
        if why:
            raise ValueError(f"FusedDenseBlock({block!r}): {why}")
        super().__init__(block, name=name)
        self.block = block

    def _forward(self, x: Array) -> Array:
        _check_dtype(self, x, _parts(self.block.dense_layers[0])[0].weight)
        return _block_forward(self, x)

    def _backward(self, dy: Array) -> Array:
        return _block_backward(self, dy)


def _block_forward(fb: FusedDenseBlock, x: Array) -> Array:
    xp = get_array_module(x)
    block, ws = fb.block, fb.workspace
    N, C0, H, W = x.shape
    k, L = block.growth_rate, block.num_layers
    width = block.dense_layers[0].bn_size * k
    Ct, M, dt = C0 + L * k, N * H * W, x.dtype
    Hp, Wp, Np, offs, Lc = _geometry(N, H, W)
    training, keep = fb.training, fb.cache_enabled

    F = xp.empty((Ct, N, H, W), dtype=dt)    # fresh: the output is a view of it (no transpose copy)
    F[:C0] = x.transpose(1, 0, 2, 3)
    Fm = F.reshape(Ct, M)
    hs = ws.get(f"{fb.name}.hs", (L, width, M), dt, xp) if keep else None   # per block: kept until backward
    mean, var = xp.empty(Ct), xp.empty(Ct)   # the batch statistics of F's channels (training only)
    if training:
        cnhw.row_stats(Fm[:C0], mean[:C0], var[:C0])
    A = ws.get("A", (Ct - k, M), dt, xp)
    P = ws.get("P", (width, N, Hp, Wp), dt, xp, zero=True)
    Z = ws.get("Z", (9 * k, Np), dt, xp)
    Y = ws.get("Y", (k, N, Hp, Wp), dt, xp)
    Yf = Y.reshape(k, Np)
    stats2 = []
    for l, layer in enumerate(block.dense_layers):
        c = C0 + l * k
        n1, c1, n2, c2 = _parts(layer)
        if training:
            m1, v1 = mean[:c], var[:c]
            n1.update_running(m1, v1, M)
        else:
            m1, v1 = n1.buffer("running_mean"), n1.buffer("running_var")
        _, _, s1, t1 = _scale_shift(n1, m1, v1, dt)
        cnhw.bn_relu(Fm[:c], s1, t1, A[:c])
        h = ws.get("H", (width, M), dt, xp) if hs is None else hs[l]
        xp.matmul(c1.weight.data.reshape(width, c), A[:c], out=h)          # 1x1 conv: one GEMM
        if training:
            m2, v2 = xp.empty(width), xp.empty(width)
            cnhw.row_stats(h, m2, v2)
            n2.update_running(m2, v2, M)
        else:
            m2, v2 = n2.buffer("running_mean"), n2.buffer("running_var")
        stats2.append((m2, v2))
        _, _, s2, t2 = _scale_shift(n2, m2, v2, dt)
        cnhw.bn_relu_pad(h.reshape(width, N, H, W), s2, t2, P)
        W2 = c2.weight.data.transpose(2, 3, 0, 1).reshape(9 * k, width)    # tap-major (9k, width)
        xp.matmul(W2, P.reshape(width, Np), out=Z)                          # 3x3 conv: one GEMM
        Yl = Yf[:, :Lc]
        Yl[...] = Z[:k, :Lc]
        for t in range(1, 9):
            Yl += Z[t * k:(t + 1) * k, offs[t]:offs[t] + Lc]                # shifted sums, k rows
        F[c:c + k] = Y[:, :, :H, :W]
        if training:
            cnhw.row_stats(Fm[c:c + k], mean[c:c + k], var[c:c + k])
    fb.save(F=F, stats1=(mean, var), stats2=stats2, training=training)
    return from_cnhw(F)                       # NCHW view of the CNHW buffer


def _block_backward(fb: FusedDenseBlock, dy: Array) -> Array:
    xp = get_array_module(dy)
    block, ws = fb.block, fb.workspace
    F, (mean, var), stats2, training = (fb.cache[k] for k in ("F", "stats1", "stats2", "training"))
    Ct, N, H, W = F.shape
    k, L = block.growth_rate, block.num_layers
    C0 = Ct - L * k
    width = block.dense_layers[0].bn_size * k
    hs = ws.get(f"{fb.name}.hs", (L, width, N * H * W), dy.dtype, xp)
    M, dt = N * H * W, dy.dtype
    Hp, Wp, Np, offs, Lc = _geometry(N, H, W)
    Fm = F.reshape(Ct, M)

    G = ws.get("G", (Ct, N, H, W), dt, xp)
    G[...] = dy.transpose(1, 0, 2, 3)         # a plain copy when dy is a transposed CNHW view
    Gm = G.reshape(Ct, M)
    alpha_acc, beta_acc = xp.zeros(Ct), xp.zeros(Ct)                        # deferred BN1 terms, float64
    A = ws.get("A", (Ct - k, M), dt, xp)
    dA = ws.get("dA", (Ct - k, M), dt, xp)
    P = ws.get("P", (width, N, Hp, Wp), dt, xp, zero=True)
    dyp = ws.get("dyp", (k, N, Hp, Wp), dt, xp, zero=True)
    dypf = dyp.reshape(k, Np)
    D = ws.get("D", (9 * k, Np), dt, xp)
    dP = ws.get("dP", (width, N, Hp, Wp), dt, xp)
    dh = ws.get("dh", (width, M), dt, xp)
    r1, r2 = xp.empty(max(Ct, width)), xp.empty(max(Ct, width))
    for l in reversed(range(L)):
        layer = block.dense_layers[l]
        c = C0 + l * k
        n1, c1, n2, c2 = _parts(layer)
        # the gradient of this layer's output is now complete
        cnhw.affine_add(G[c:c + k], F[c:c + k], alpha_acc[c:c + k].astype(dt), beta_acc[c:c + k].astype(dt))
        dyp[:, :, :H, :W] = G[c:c + k]
        for t, off in enumerate(offs):
            Dt = D[t * k:(t + 1) * k]
            Dt[:, :off] = 0
            Dt[:, off:] = dypf[:, :Np - off]
        # BN2-ReLU recomputed from h into P's interior
        h = hs[l]
        m2, v2 = stats2[l]
        invstd2, s2_64, s2, t2 = _scale_shift(n2, m2, v2, dt)
        h4 = h.reshape(width, N, H, W)
        cnhw.bn_relu_pad(h4, s2, t2, P)
        W2 = c2.weight.data.transpose(2, 3, 0, 1).reshape(9 * k, width)
        dW2 = (P.reshape(width, Np) @ D.T).T                                 # (9k, width)
        c2.weight.grad += dW2.reshape(3, 3, k, width).transpose(2, 3, 0, 1)
        xp.matmul(W2.T, D, out=dP.reshape(width, Np))                        # (width, Np)
        cnhw.relu_bwd_sums_pad(dP, P, h4, r1[:width], r2[:width])
        dw, db, al, be = cnhw.bn_backward_coefficients(r1[:width], r2[:width], xp.asarray(m2, xp.float64),
                                                       invstd2, s2_64, M)
        n2.weight.grad += dw.astype(dt)
        n2.bias.grad += db.astype(dt)
        if not training:
            al, be = al * 0, be * 0
        cnhw.bn_bwd_apply_pad(dP, P, h4, s2, al.astype(dt), be.astype(dt), dh.reshape(width, N, H, W))
        # conv1 and BN1-ReLU, A recomputed
        m1, v1 = (mean[:c], var[:c]) if training else (n1.buffer("running_mean"), n1.buffer("running_var"))
        invstd1, s1_64, s1, t1 = _scale_shift(n1, m1, v1, dt)
        cnhw.bn_relu(Fm[:c], s1, t1, A[:c])
        W1 = c1.weight.data.reshape(width, c)
        c1.weight.grad += (A[:c] @ dh.T).T.reshape(width, c, 1, 1)
        xp.matmul(W1.T, dh, out=dA[:c])
        cnhw.relu_bwd_sums(dA[:c], A[:c], Fm[:c], s1, Gm[:c], r1[:c], r2[:c])
        dw, db, al, be = cnhw.bn_backward_coefficients(r1[:c], r2[:c], xp.asarray(m1, xp.float64), invstd1,
                                                       s1_64, M)
        n1.weight.grad += dw.astype(dt)
        n1.bias.grad += db.astype(dt)
        if training:
            alpha_acc[:c] += al
            beta_acc[:c] += be
    cnhw.affine_add(G[:C0], F[:C0], alpha_acc[:C0].astype(dt), beta_acc[:C0].astype(dt))
    dx = G[:C0].copy()                         # G is scratch: the gradient gets its own array
    return from_cnhw(dx)                       # NCHW view of a CNHW array


# ------------------------------------------------------------------ transition
class FusedTransition(_FusedDenseNetPart):
    """DenseNet's transition BN-ReLU-Conv1x1-AvgPool2x2 in one fused pass (channels-first).

    The average pool is applied BEFORE the 1x1 conv (both are linear maps over different
    axes, so they commute: pool(W a) = W pool(a)), which makes the GEMM four times smaller;
    BN+ReLU is one fused pass; the activation is recomputed in backward, not stored.
    Shapes: x (N, C, H, W) (H, W even) -> y (N, O, H/2, W/2) (a channels-first view).
    Caches: x's channel rows (a reference), the pooled activation (C, N*H*W/4), the statistics.
    """

    def __init__(self, tr: Transition, *, name: str | None = None) -> None:
        if tr.dropout or not tr.relu or not _plain_bn(tr.children()["norm"]):
            raise ValueError(f"FusedTransition({tr!r}): the fused transition is BN-ReLU-Conv-Pool with a "
                             "BatchNorm2d and without dropout; use the Transition")
        super().__init__(tr, name=name)
        self.tr = tr

    def _norm_conv(self) -> tuple[BatchNorm2d, Conv2d]:
        """The transition's BatchNorm2d and Conv2d (checked when the fused layer was made)."""
        ch = self.tr.children()
        norm, conv = ch["norm"], ch["conv"]
        if not isinstance(norm, BatchNorm2d) or not isinstance(conv, Conv2d):
            raise self.error(f"expected the transition's norm and conv to be BatchNorm2d and Conv2d, got "
                             f"{type(norm).__name__} and {type(conv).__name__}")
        return norm, conv

    def _output_shape(self, shape: Shape) -> Shape:
        if shape[2] % 2 or shape[3] % 2:
            raise self.error(f"the fused transition needs an even height and width, got {tuple(shape)}")
        return super()._output_shape(shape)

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        norm, conv = self._norm_conv()
        _check_dtype(self, x, norm.weight)
        X = to_cnhw(x)
        C, N, H, W = X.shape
        M, dt = N * H * W, x.dtype
        O = conv.weight.shape[0]
        if self.training:
            mean, var = xp.empty(C), xp.empty(C)
            cnhw.row_stats(X, mean, var)
            norm.update_running(mean, var, M)
        else:
            mean, var = norm.buffer("running_mean"), norm.buffer("running_var")
        _, _, s, t = _scale_shift(norm, mean, var, dt)
        A = self.workspace.get("A", (C, N, H, W), dt, xp)
        cnhw.bn_relu(X.reshape(C, M), s, t, A.reshape(C, M))
        A6 = A.reshape(C, N, H // 2, 2, W // 2, 2)
        pooled = xp.empty((C, N, H // 2, W // 2), dt)
        xp.add(A6[:, :, :, 0, :, 0], A6[:, :, :, 0, :, 1], out=pooled)
        pooled += A6[:, :, :, 1, :, 0]
        pooled += A6[:, :, :, 1, :, 1]
        pooled *= 0.25
        Mq = M // 4
        Y = xp.empty((O, N, H // 2, W // 2), dt)
        xp.matmul(conv.weight.data.reshape(O, C), pooled.reshape(C, Mq), out=Y.reshape(O, Mq))
        self.save(X=X, pooled=pooled, mean=mean, var=var, training=self.training)
        return from_cnhw(Y)                      # NCHW view of a CNHW array: no copy

    def _backward(self, dy: Array) -> Array:
        xp = get_array_module(dy)
        X, pooled, mean, var, training = (self.cache[k] for k in ("X", "pooled", "mean", "var", "training"))
        C, N, H, W = X.shape
        M, Mq, dt = N * H * W, N * H * W // 4, dy.dtype
        norm, conv = self._norm_conv()
        O = conv.weight.shape[0]
        dY = to_cnhw(dy).reshape(O, Mq)
        conv.weight.grad += (pooled.reshape(C, Mq) @ dY.T).T.reshape(conv.weight.shape)
        dpool = conv.weight.data.reshape(O, C).T @ dY                        # (C, Mq)
        dpool *= 0.25
        dA = self.workspace.get("dA", (C, N, H // 2, 2, W // 2, 2), dt, xp)
        dA[...] = dpool.reshape(C, N, H // 2, 1, W // 2, 1)                  # the pool's backward: spread
        dA = dA.reshape(C, M)
        invstd, s64, s, t = _scale_shift(norm, mean, var, dt)
        A = self.workspace.get("A", (C, M), dt, xp)
        Xm = X.reshape(C, M)
        cnhw.bn_relu(Xm, s, t, A)                                            # recomputed (A is not stored)
        r1, r2 = xp.empty(C), xp.empty(C)
        cnhw.relu_bwd_sums(dA, A, Xm, s, None, r1, r2)
        dw, db, al, be = cnhw.bn_backward_coefficients(r1, r2, xp.asarray(mean, xp.float64), invstd, s64, M)
        norm.weight.grad += dw.astype(dt)
        norm.bias.grad += db.astype(dt)
        if not training:
            al, be = al * 0, be * 0
        if not self.needs_input_grad(0):
            return None
        dX = xp.empty((C, N, H, W), dt)
        cnhw.bn_bwd_apply(dA, A, Xm, s, al.astype(dt), be.astype(dt), dX.reshape(C, M))
        return from_cnhw(dX)


# ------------------------------------------------------------------ fusion rules
def _dense_block_rule(nodes, i, consumers, outs):
    layer = nodes[i].layer
    if type(layer) is not DenseBlock:
        return None
    why = unsupported(layer)
    return Match(None, reason=why) if why else Match(FusedDenseBlock(layer), 1)


def _transition_rule(nodes, i, consumers, outs):
    tr = nodes[i].layer
    if type(tr) is not Transition:
        return None
    if tr.dropout or not tr.relu or not _plain_bn(tr.children()["norm"]):
        return Match(None, reason="the fused transition is BatchNorm2d-ReLU-Conv-Pool without dropout (the "
                                  "Transition runs its layers)")
    shape = tr.in_shapes[0] if tr.in_shapes else None
    if shape is not None and (shape[2] % 2 or shape[3] % 2):
        return Match(None, reason=f"odd spatial size {shape[2:]}: the fused transition pools 2x2 exactly")
    return Match(FusedTransition(tr), 1)


register_rule("densenet.dense_block", _dense_block_rule)
register_rule("densenet.transition", _transition_rule)

__all__ = ["FusedDenseBlock", "FusedTransition", "unsupported"]
