"""Single-node op parity: onnxtune vs ONNX Runtime.

Each case is one node in a model built with onnx.helper, at opset 17 unless the id says
otherwise (opsets 12/13/18/20/21 where the op's signature changed: axes attribute vs input, Split
num_outputs, Gelu from 20, Shape start/end from 15, ...). Most operands are graph inputs fed
from .npy files; the "constant" operands (Reshape shape, Slice starts, axes, Expand shape, ...)
also appear as initializers (ids containing "init"), as exporters write them.

Test id: <op>-<what>-opset<N>-seed<S>; the seed is crc32 of the case name, so it is stable when
cases are added. Inputs come from numpy.random.default_rng(seed).

Tolerance (otrun.assert_outputs_match): float32 assert_allclose(rtol=1e-5,
atol=1e-6*max(1, max|ref|)); float64 rtol=1e-12, atol=1e-12*max(1, max|ref|); integer, bool and
float16 (Cast results) exactly; dtype and shape always equal.

Without the binary (build/onnxtune or $ONNXTUNE_BIN) every case fails with a message saying so.
`python3 tests/parity/test_ops.py` checks the case table against ONNX Runtime only (no binary).
"""
import os
import sys
import zlib

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper, shape_inference

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from otrun import require_binary_or_fail, assert_outputs_match, run_onnxtune, run_ort  # noqa: E402

IR_FOR_OPSET = {11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10}

f32, f64, f16 = np.float32, np.float64, np.float16
i64, i32, b8 = np.int64, np.int32, np.bool_
INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min
FMIN = float(np.finfo(np.float32).min)


# ------------------------------------------------------------------------------------------
# case table machinery
# ------------------------------------------------------------------------------------------
class I:
    """operand fed as a graph input"""
    def __init__(self, a):
        self.a = np.asarray(a)


class K:
    """operand stored as an initializer"""
    def __init__(self, a):
        self.a = np.asarray(a)


class Rand:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def f(self, *shape, lo=-2.0, hi=2.0, dtype=f32):
        return self.rng.uniform(lo, hi, size=shape).astype(dtype)

    def pos(self, *shape, lo=0.1, hi=3.0, dtype=f32):
        return self.rng.uniform(lo, hi, size=shape).astype(dtype)

    def nz(self, *shape, dtype=f32):
        """|x| in [0.5, 2], random sign: safe denominators"""
        m = self.rng.uniform(0.5, 2.0, size=shape)
        s = self.rng.choice([-1.0, 1.0], size=shape)
        return (m * s).astype(dtype)

    def i(self, *shape, lo=-10, hi=10, dtype=i64):
        return self.rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)

    def b(self, *shape):
        return self.rng.random(size=shape) < 0.5

    def n(self, *shape, dtype=f32, scale=1.0):
        return (self.rng.standard_normal(size=shape) * scale).astype(dtype)


class Case:
    def __init__(self, name, op, inputs, attrs=None, opset=17, n_out=1, out_names=None, domain=""):
        self.name, self.op, self.inputs_fn, self.attrs = name, op, inputs, attrs or {}
        self.opset, self.domain = opset, domain
        self.out_names = out_names or (["y"] if n_out == 1 else ["y%d" % k for k in range(n_out)])
        self.seed = zlib.crc32(("%s@%d" % (name, opset)).encode()) & 0xFFFF
        self.id = "%s-opset%d-seed%d" % (name, opset, self.seed)

    def build(self):
        """-> (ModelProto, feeds)"""
        r = Rand(self.seed)
        operands = self.inputs_fn(r) if callable(self.inputs_fn) else self.inputs_fn
        attrs = self.attrs(r) if callable(self.attrs) else dict(self.attrs)
        names, vinfo, inits, feeds = [], [], [], {}
        for k, v in enumerate(operands):
            if v is None:
                names.append("")
                continue
            nm = "x%d" % k
            names.append(nm)
            if isinstance(v, K):
                inits.append(numpy_helper.from_array(v.a, nm))
            else:
                a = v.a if isinstance(v, I) else np.asarray(v)
                vinfo.append(helper.make_tensor_value_info(nm, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape))
                feeds[nm] = a
        while names and names[-1] == "":
            names.pop()
        node = helper.make_node(self.op, names, self.out_names, domain=self.domain, **attrs)
        outs = [helper.make_empty_tensor_value_info(n) for n in self.out_names]
        graph = helper.make_graph([node], "t_" + self.op, vinfo, outs, initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  ir_version=IR_FOR_OPSET[self.opset], producer_name="onnxtune-tests")
        # declare the output types (and shapes where known) the way an exporter would
        inferred = shape_inference.infer_shapes(model, strict_mode=True)
        by_name = {o.name: o for o in inferred.graph.output}
        unknown_rank = []
        for o in model.graph.output:
            io = by_name.get(o.name)
            if io is not None and io.type.tensor_type.elem_type:
                o.type.CopyFrom(io.type)
            if not o.type.tensor_type.HasField("shape"):
                unknown_rank.append(o)
        if unknown_rank:
            # data-dependent output shape (axes / split / shape given as graph inputs): declare
            # the rank with symbolic dims, as exporters do; the rank comes from ONNX Runtime
            ref = run_ort(model.SerializeToString(), feeds)
            for o in unknown_rank:
                r = ref[o.name]
                o.type.tensor_type.elem_type = helper.np_dtype_to_tensor_dtype(r.dtype)
                shape = o.type.tensor_type.shape
                shape.SetInParent()     # rank 0 still needs the (empty) shape field
                for k in range(r.ndim):
                    shape.dim.add().dim_param = "%s_d%d" % (o.name, k)
        return model, feeds


CASES = []


# onnxtune reads default-domain opsets 13 through 21 (importer/onnx_model.h); cases written
# for older forms are dropped here, and test_bad_input checks that opset 12 is refused.
SUPPORTED_OPSETS = range(13, 22)


def case(name, op, inputs, opsets=(17,), n_out=1, out_names=None, **attrs):
    for opset in (o for o in opsets if o in SUPPORTED_OPSETS):
        CASES.append(Case(name, op, inputs, attrs, opset=opset, n_out=n_out, out_names=out_names))


def case_a(name, op, inputs, attrs_fn, opsets=(17,), n_out=1, out_names=None):
    """like case() but attributes depend on the rng (Constant)"""
    for opset in (o for o in opsets if o in SUPPORTED_OPSETS):
        CASES.append(Case(name, op, inputs, attrs_fn, opset=opset, n_out=n_out, out_names=out_names))


# ------------------------------------------------------------------------------------------
# elementwise binary arithmetic
# ------------------------------------------------------------------------------------------
BCAST = [
    ("same", (3, 4), (3, 4)),
    ("bcast-row", (2, 3, 4), (4,)),
    ("bcast-both", (2, 1, 4), (3, 1)),
    ("scalar-lhs", (), (2, 3)),
    ("scalar-rhs", (2, 3), ()),
    ("scalar-scalar", (), ()),
    ("empty", (0, 3), (1, 3)),
    ("rank4-bcast", (2, 3, 1, 5), (4, 1)),
    ("one-to-n", (1,), (5,)),
]

for op in ["Add", "Sub", "Mul", "Div"]:
    for tag, sa, sb in BCAST:
        if op == "Div":
            case("%s-f32-%s" % (op, tag), op, lambda r, sa=sa, sb=sb: [I(r.f(*sa)), I(r.nz(*sb))])
        else:
            case("%s-f32-%s" % (op, tag), op, lambda r, sa=sa, sb=sb: [I(r.f(*sa)), I(r.f(*sb))])
    # integer shape arithmetic, as exporters emit (Div truncates, like ONNX Runtime's C++ '/')
    case("%s-i64" % op, op, lambda r: [I(r.i(3, 4, lo=-50, hi=50)), I(r.i(3, 4, lo=1, hi=9))])
    case("%s-i64-bcast-neg" % op, op, lambda r: [I(r.i(2, 3, lo=-50, hi=50)), I(np.array(-3, i64))])
    case("%s-i64-scalar-init" % op, op, lambda r: [I(r.i(4, lo=0, hi=100)), K(np.array(2, i64))])
    case("%s-i32" % op, op, lambda r: [I(r.i(2, 5, lo=-50, hi=50, dtype=i32)), I(r.i(5, lo=1, hi=7, dtype=i32))])
    case("%s-f64" % op, op, lambda r: [I(r.f(3, 4, dtype=f64)), I(r.nz(4, dtype=f64))])
    case("%s-f32-init" % op, op, lambda r: [I(r.f(2, 3, 8)), K(r.nz(8))])
    case("%s-f32-opsets" % op, op, lambda r: [I(r.f(2, 4)), I(r.nz(2, 1))], opsets=(13, 21))

# Pow: exporters write x**2 / x**3 with a scalar float exponent and negative x
case("Pow-f32-pos-base", "Pow", lambda r: [I(r.pos(3, 4)), I(r.f(3, 4))])
case("Pow-f32-neg-base-exp2-init", "Pow", lambda r: [I(r.f(2, 3, 5)), K(np.array(2.0, f32))])
case("Pow-f32-neg-base-exp3-init", "Pow", lambda r: [I(r.f(2, 3, 5)), K(np.array(3.0, f32))])
case("Pow-f32-sqrt-exp", "Pow", lambda r: [I(r.pos(4, 5)), I(np.array(0.5, f32))])
case("Pow-f32-bcast", "Pow", lambda r: [I(r.pos(2, 1, 4)), I(r.f(3, 1))])
case("Pow-f32-int-exp", "Pow", lambda r: [I(r.f(3, 4)), I(np.array(3, i64))])
case("Pow-f32-scalar", "Pow", lambda r: [I(r.pos()), I(r.f())])
case("Pow-f32-empty", "Pow", lambda r: [I(r.pos(0, 4)), I(r.f(4))])
case("Pow-i64", "Pow", lambda r: [I(r.i(3, 4, lo=-5, hi=5)), I(r.i(3, 4, lo=0, hi=4))])
case("Pow-f32-opsets", "Pow", lambda r: [I(r.f(3, 4)), K(np.array(2.0, f32))], opsets=(13, 21))

# ------------------------------------------------------------------------------------------
# unary
# ------------------------------------------------------------------------------------------
UNARY_SHAPES = [("2d", (3, 4)), ("scalar", ()), ("empty", (0, 5)), ("4d", (2, 3, 5, 7))]
UNARY = {
    "Sqrt": lambda r, s: r.pos(*s, lo=0.0, hi=100.0),
    "Reciprocal": lambda r, s: r.nz(*s),
    "Neg": lambda r, s: r.f(*s),
    "Abs": lambda r, s: r.f(*s),
    "Exp": lambda r, s: r.f(*s, lo=-10.0, hi=10.0),
    "Log": lambda r, s: r.pos(*s, lo=1e-3, hi=100.0),
    "Tanh": lambda r, s: r.f(*s, lo=-6.0, hi=6.0),
    "Erf": lambda r, s: r.f(*s, lo=-4.0, hi=4.0),
    "Sigmoid": lambda r, s: r.f(*s, lo=-20.0, hi=20.0),
    "Relu": lambda r, s: r.f(*s),
}
for op, gen in UNARY.items():
    for tag, shape in UNARY_SHAPES:
        case("%s-f32-%s" % (op, tag), op, lambda r, gen=gen, shape=shape: [I(gen(r, shape))])
    case("%s-f32-opsets" % op, op, lambda r, gen=gen: [I(gen(r, (4, 6)))], opsets=(13, 21))
    if op != "Erf":     # ONNX Runtime has no float64 Erf kernel
        case("%s-f64" % op, op, lambda r, gen=gen: [I(gen(r, (3, 5)).astype(f64))])
# saturation of the squashing functions and exact zero of Relu
for op in ["Tanh", "Erf", "Sigmoid"]:
    case("%s-f32-saturate" % op, op, lambda r: [I(np.array([-100, -30, -10, -1e-3, -0.0, 0, 1e-7, 1e-3, 10, 30, 100], f32))])
case("Relu-f32-zeros", "Relu", lambda r: [I(np.array([-1.0, -0.0, 0.0, 1e-30, -1e-30, 3.0], f32))])
case("Exp-f32-extremes", "Exp", lambda r: [I(np.array([-100, -87, -20, 0, 20, 80, 88], f32))])
for op in ["Neg", "Abs"]:
    case("%s-i64" % op, op, lambda r: [I(r.i(3, 4, lo=-1000, hi=1000))])
    case("%s-i32" % op, op, lambda r: [I(r.i(3, 4, lo=-1000, hi=1000, dtype=i32))])

# Gelu (opset 20+): approximate none / tanh
for approx in ["none", "tanh"]:
    for tag, shape in UNARY_SHAPES:
        case("Gelu-%s-%s" % (approx, tag), "Gelu", lambda r, shape=shape: [I(r.f(*shape, lo=-6.0, hi=6.0))],
             opsets=(20, 21), approximate=approx)
case("Gelu-default-attr", "Gelu", lambda r: [I(r.f(3, 7, lo=-6.0, hi=6.0))], opsets=(20,))

# ------------------------------------------------------------------------------------------
# Softmax / LogSoftmax
# ------------------------------------------------------------------------------------------
def masked_scores(r):
    x = r.f(2, 3, 6, lo=-8.0, hi=8.0)
    x[:, :, 3:] = FMIN          # additive causal / padding mask, as the exported models add it
    x[1, 2, :] = FMIN           # a fully masked row: uniform result
    return [I(x)]


for op in ["Softmax", "LogSoftmax"]:
    for ax in [-1, 0, 1, 2]:
        case("%s-axis%d" % (op, ax), op, lambda r: [I(r.f(2, 3, 5, lo=-5.0, hi=5.0))], opsets=(13, 17, 21), axis=ax)
    case("%s-default-axis" % op, op, lambda r: [I(r.f(4, 9, lo=-5.0, hi=5.0))])
    case("%s-rank1" % op, op, lambda r: [I(r.f(7))], axis=0)
    case("%s-large-values" % op, op, lambda r: [I(r.f(3, 8, lo=-80.0, hi=80.0))], axis=-1)
    case("%s-empty" % op, op, lambda r: [I(r.f(0, 5))], axis=-1)
    case("%s-rank4-attention" % op, op, lambda r: [I(r.f(2, 4, 7, 7, lo=-6.0, hi=6.0))], axis=-1)
case("Softmax-masked", "Softmax", masked_scores, axis=-1)
case("LogSoftmax-masked-partial", "LogSoftmax", lambda r: [I(np.where(r.b(3, 6), r.f(3, 6), f32(-1e4)))], axis=-1)

# ------------------------------------------------------------------------------------------
# MatMul / Gemm / Einsum
# ------------------------------------------------------------------------------------------
MATMUL = [
    ("1d-1d", (5,), (5,)),
    ("1d-2d", (5,), (5, 3)),
    ("2d-1d", (4, 5), (5,)),
    ("2d", (4, 5), (5, 3)),
    ("2d-large", (64, 128), (128, 96)),
    ("batched", (3, 4, 5), (3, 5, 6)),
    ("bcast-batch", (2, 1, 3, 4), (5, 4, 6)),
    ("3d-2d", (2, 7, 16), (16, 8)),
    ("2d-3d", (7, 16), (2, 16, 8)),
    ("1d-3d", (4,), (2, 4, 3)),
    ("3d-1d", (2, 3, 4), (4,)),
    ("4d-attention", (2, 4, 7, 16), (2, 4, 16, 7)),
    ("k0", (3, 0), (0, 4)),
    ("m0", (0, 5), (5, 3)),
    ("batch0", (0, 2, 3), (3, 4)),
]
for tag, sa, sb in MATMUL:
    case("MatMul-%s" % tag, "MatMul", lambda r, sa=sa, sb=sb: [I(r.f(*sa)), I(r.f(*sb))])
case("MatMul-weight-init", "MatMul", lambda r: [I(r.f(2, 7, 32)), K(r.n(32, 24, scale=0.2))])
case("MatMul-f64", "MatMul", lambda r: [I(r.f(3, 4, dtype=f64)), I(r.f(4, 5, dtype=f64))])
case("MatMul-opsets", "MatMul", lambda r: [I(r.f(2, 3, 4)), I(r.f(4, 5))], opsets=(13, 21))

GEMM = [
    # name, A shape, B shape, C shape or None, attrs
    ("plain", (3, 5), (5, 4), None, {}),
    ("transA", (5, 3), (5, 4), None, {"transA": 1}),
    ("transB", (3, 5), (4, 5), None, {"transB": 1}),
    ("transAB", (5, 3), (4, 5), None, {"transA": 1, "transB": 1}),
    ("C-vec", (3, 5), (5, 4), (4,), {}),
    ("C-row", (3, 5), (5, 4), (1, 4), {}),
    ("C-col", (3, 5), (5, 4), (3, 1), {}),
    ("C-full", (3, 5), (5, 4), (3, 4), {}),
    ("C-scalar", (3, 5), (5, 4), (), {}),
    ("alpha-beta", (3, 5), (5, 4), (3, 4), {"alpha": 0.5, "beta": 2.0}),
    ("alpha-transB-C-vec", (6, 8), (4, 8), (4,), {"alpha": 1.7, "beta": -0.3, "transB": 1}),
    ("beta0", (3, 5), (5, 4), (3, 4), {"beta": 0.0}),
    ("m1", (1, 16), (16, 32), (32,), {}),
]
for tag, sa, sb, sc, attrs in GEMM:
    def gemm_inputs(r, sa=sa, sb=sb, sc=sc):
        ops = [I(r.f(*sa)), I(r.f(*sb))]
        if sc is not None:
            ops.append(I(r.f(*sc)))
        return ops
    case("Gemm-%s" % tag, "Gemm", gemm_inputs, **attrs)
# nn.Linear on a 2-D input as torch exports it: weight [out, in] and bias initializers, transB=1
case("Gemm-linear-init", "Gemm", lambda r: [I(r.f(5, 16)), K(r.n(8, 16, scale=0.25)), K(r.n(8, scale=0.1))],
     opsets=(13, 17, 21), alpha=1.0, beta=1.0, transB=1)

EINSUM = [
    ("bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
    ("bhqd,bhkd->bhqk", (2, 3, 5, 8), (2, 3, 6, 8)),
    ("bhqk,bhkd->bhqd", (2, 3, 5, 6), (2, 3, 6, 8)),
    ("ij,jk->ik", (4, 5), (5, 6)),
    ("bid,jd->bij", (2, 5, 8), (7, 8)),
]
for eq, sa, sb in EINSUM:
    tag = eq.replace(",", "_").replace("->", "_to_")
    case("Einsum-%s" % tag, "Einsum", lambda r, sa=sa, sb=sb: [I(r.f(*sa)), I(r.f(*sb))], equation=eq)
case("Einsum-spaces", "Einsum", lambda r: [I(r.f(3, 4)), I(r.f(4, 2))], equation="ij, jk -> ik")
case("Einsum-weight-init", "Einsum", lambda r: [I(r.f(2, 5, 8)), K(r.f(7, 8))], equation="bid,jd->bij")

# ------------------------------------------------------------------------------------------
# layout: Transpose Reshape Flatten Squeeze Unsqueeze Concat Split Slice Gather Expand Identity
# ------------------------------------------------------------------------------------------
TRANSPOSE = [
    ("2d-default", (2, 3), None),
    ("3d-default", (2, 3, 4), None),
    ("3d-102", (2, 3, 4), [1, 0, 2]),
    ("4d-heads", (2, 5, 4, 8), [0, 2, 1, 3]),
    ("4d-keyT", (2, 5, 4, 8), [0, 2, 3, 1]),
    ("4d-last2", (2, 4, 5, 8), [0, 1, 3, 2]),
    ("rank1", (7,), [0]),
    ("identity-perm", (3, 4), [0, 1]),
    ("5d", (2, 3, 1, 4, 2), [4, 2, 0, 3, 1]),
    ("empty", (2, 0, 3), [2, 0, 1]),
]
for tag, shape, perm in TRANSPOSE:
    kw = {} if perm is None else {"perm": perm}
    case("Transpose-f32-%s" % tag, "Transpose", lambda r, shape=shape: [I(r.f(*shape))], **kw)
case("Transpose-i64", "Transpose", lambda r: [I(r.i(3, 4, 2))], perm=[2, 0, 1])
case("Transpose-bool", "Transpose", lambda r: [I(r.b(3, 4))], perm=[1, 0])
case("Transpose-opsets", "Transpose", lambda r: [I(r.f(2, 3, 4))], opsets=(13, 21), perm=[0, 2, 1])

RESHAPE = [
    # name, input shape, target, allowzero
    ("zero-copy-minus1", (2, 3, 4), [0, -1], 0),
    ("flatten-all", (2, 3, 4), [-1], 0),
    ("zeros-split", (2, 3, 4), [0, 0, 2, 2], 0),
    ("zero-minus1-mid", (2, 3, 4), [0, -1, 2], 0),
    ("heads", (2, 7, 32), [0, 0, 4, 8], 0),
    ("merge-heads", (2, 7, 4, 8), [0, 0, 32], 0),
    ("explicit", (6, 4), [3, 2, 4], 0),
    ("to-scalar", (1, 1), [], 0),
    ("from-scalar", (), [1, 1, 1], 0),
    ("empty-minus1", (0, 6), [-1, 3], 0),
    ("empty-zero-copy", (0, 6), [0, 2, 3], 0),
    ("allowzero-zero-dim", (0, 3), [3, 0], 1),
    ("allowzero-no-zero", (2, 3, 4), [4, -1], 1),
]
for tag, shape, target, allowzero in RESHAPE:
    tgt = np.array(target, i64)
    kw = {"allowzero": allowzero} if allowzero else {}
    case("Reshape-%s" % tag, "Reshape", lambda r, shape=shape, tgt=tgt: [I(r.f(*shape)), I(tgt)], opsets=(14, 17), **kw)
    case("Reshape-%s-init" % tag, "Reshape", lambda r, shape=shape, tgt=tgt: [I(r.f(*shape)), K(tgt)], **kw)
case("Reshape-opset13", "Reshape", lambda r: [I(r.f(2, 3, 4)), I(np.array([0, -1], i64))], opsets=(13,))
case("Reshape-opset21", "Reshape", lambda r: [I(r.f(2, 3, 4)), K(np.array([4, 0, -1], i64))], opsets=(21,))
case("Reshape-i64-data", "Reshape", lambda r: [I(r.i(6)), K(np.array([2, 3], i64))])
case("Reshape-bool-data", "Reshape", lambda r: [I(r.b(2, 6)), K(np.array([3, -1], i64))])

for ax in [0, 1, 2, 3, -1, -3]:
    case("Flatten-axis%d" % ax, "Flatten", lambda r: [I(r.f(2, 3, 4))], opsets=(13, 17, 21), axis=ax)
case("Flatten-default", "Flatten", lambda r: [I(r.f(2, 3, 4, 5))])
case("Flatten-rank1", "Flatten", lambda r: [I(r.f(5))])
case("Flatten-empty", "Flatten", lambda r: [I(r.f(2, 0, 3))], axis=2)
case("Flatten-i64", "Flatten", lambda r: [I(r.i(2, 3, 2))], axis=1)

SQUEEZE = [
    ("axes-0-2", (1, 3, 1, 5), [0, 2]),
    ("axes-neg", (2, 3, 1), [-1]),
    ("axes-omitted", (1, 3, 1, 5, 1), None),
    ("to-scalar", (1,), [0]),
    ("to-scalar-omitted", (1, 1), None),
    ("empty-dim-kept", (0, 1, 3), [1]),
]
for tag, shape, axes in SQUEEZE:
    if axes is None:
        case("Squeeze-%s" % tag, "Squeeze", lambda r, shape=shape: [I(r.f(*shape))], opsets=(12, 13, 17, 21))
    else:
        ax = np.array(axes, i64)
        case("Squeeze-%s" % tag, "Squeeze", lambda r, shape=shape, ax=ax: [I(r.f(*shape)), I(ax)], opsets=(13, 17, 21))
        case("Squeeze-%s-init" % tag, "Squeeze", lambda r, shape=shape, ax=ax: [I(r.f(*shape)), K(ax)])
        case("Squeeze-%s-attr" % tag, "Squeeze", lambda r, shape=shape: [I(r.f(*shape))], opsets=(12,), axes=axes)
case("Squeeze-i64", "Squeeze", lambda r: [I(r.i(1, 4)), K(np.array([0], i64))])

UNSQUEEZE = [
    ("axis0", (3, 4), [0]),
    ("axis-neg1", (3, 4), [-1]),
    ("two-axes", (3, 4), [0, 3]),
    ("unsorted-neg", (3, 4), [-1, 1]),
    ("scalar", (), [0]),
    ("scalar-two", (), [1, 0]),
    ("mask-pattern", (2, 7), [1, 2]),
    ("empty", (0, 3), [1]),
]
for tag, shape, axes in UNSQUEEZE:
    ax = np.array(axes, i64)
    case("Unsqueeze-%s" % tag, "Unsqueeze", lambda r, shape=shape, ax=ax: [I(r.f(*shape)), I(ax)], opsets=(13, 17, 21))
    case("Unsqueeze-%s-init" % tag, "Unsqueeze", lambda r, shape=shape, ax=ax: [I(r.f(*shape)), K(ax)])
    case("Unsqueeze-%s-attr" % tag, "Unsqueeze", lambda r, shape=shape: [I(r.f(*shape))], opsets=(12,), axes=axes)
# the exporter's shape chain: scalar int64 from Gather(Shape) -> [1]
case("Unsqueeze-i64-scalar-init", "Unsqueeze", lambda r: [I(np.array(7, i64)), K(np.array([0], i64))])

CONCAT = [
    ("axis0", [(2, 3), (4, 3)], 0),
    ("axis1", [(2, 3), (2, 1), (2, 5)], 1),
    ("axis-neg", [(2, 3, 4), (2, 3, 2)], -1),
    ("axis-mid", [(2, 1, 4), (2, 3, 4)], 1),
    ("single", [(3, 4)], 0),
    ("empty-piece", [(2, 0), (2, 3), (2, 0)], 1),
    ("rank1", [(3,), (1,), (2,)], 0),
]
for tag, shapes, ax in CONCAT:
    case("Concat-f32-%s" % tag, "Concat", lambda r, shapes=shapes: [I(r.f(*s)) for s in shapes], opsets=(13, 17, 21), axis=ax)
# shape building as in the exported models: Concat of 1-element int64 vectors (inputs and constants)
case("Concat-i64-shape", "Concat", lambda r: [I(np.array([2], i64)), I(np.array([7], i64)), K(np.array([4], i64)),
                                              K(np.array([16], i64))], axis=0)
case("Concat-bool", "Concat", lambda r: [I(r.b(2, 3)), I(r.b(1, 3))], axis=0)

SPLIT = [
    # name, shape, axis, split sizes (None: equal), n outputs
    ("equal-axis0", (6, 4), 0, None, 3),
    ("equal-axis-neg", (2, 3, 12), -1, None, 3),
    ("sizes", (6, 4), 0, [1, 2, 3], 3),
    ("sizes-axis1", (2, 4, 3), 1, [1, 3], 2),
    ("sizes-zero", (5, 2), 0, [0, 5], 2),
    ("qkv", (2, 7, 96), 2, [32, 32, 32], 3),
    ("single", (4, 3), 1, None, 1),
]
for tag, shape, ax, sizes, n in SPLIT:
    if sizes is None:
        case("Split-%s" % tag, "Split", lambda r, shape=shape: [I(r.f(*shape))], opsets=(12, 13, 17), n_out=n, axis=ax)
        case("Split-%s-num_outputs" % tag, "Split", lambda r, shape=shape: [I(r.f(*shape))], opsets=(18, 21), n_out=n,
             axis=ax, num_outputs=n)
    else:
        sp = np.array(sizes, i64)
        case("Split-%s" % tag, "Split", lambda r, shape=shape, sp=sp: [I(r.f(*shape)), I(sp)], opsets=(13, 17, 18, 21),
             n_out=n, axis=ax)
        case("Split-%s-init" % tag, "Split", lambda r, shape=shape, sp=sp: [I(r.f(*shape)), K(sp)], n_out=n, axis=ax)
        case("Split-%s-attr" % tag, "Split", lambda r, shape=shape: [I(r.f(*shape))], opsets=(12,), n_out=n, axis=ax,
             split=sizes)
# num_outputs that does not divide the dimension: ceil-sized pieces, the last smaller (7 -> 3,3,1)
case("Split-uneven-num_outputs", "Split", lambda r: [I(r.f(7, 2))], opsets=(18, 21), n_out=3, axis=0, num_outputs=3)
case("Split-i64", "Split", lambda r: [I(r.i(4)), K(np.array([1, 3], i64))], n_out=2, axis=0)

SLICE = [
    # name, shape, starts, ends, axes, steps
    ("basic", (10,), [2], [8], None, None),
    ("neg-start-clamp-end", (10,), [-3], [INT64_MAX], None, None),
    ("neg-end", (10, 3), [1], [-2], [0], None),
    ("reverse", (6, 4), [-1], [INT64_MIN], [0], [-1]),
    ("reverse-step2", (9,), [8], [-100], [0], [-2]),
    ("step2", (9, 4), [1], [9], [0], [2]),
    ("step3-neg-axis", (3, 10), [0], [10], [-1], [3]),
    ("axes-omitted-2d", (5, 6), [1, 0], [3, 2], None, None),
    ("axes-unordered", (4, 5, 6), [1, 2], [4, 5], [2, 0], None),
    ("empty-start-after-end", (8,), [5], [2], [0], None),
    ("clamp-start-beyond", (8,), [20], [30], [0], None),
    ("clamp-neg-beyond", (8, 2), [-100], [3], [0], None),
    ("causal-mask", (1, 1, 16, 16), [0, 0], [5, 5], [2, 3], [1, 1]),
    ("last-token", (2, 7, 8), [-1], [INT64_MAX], [1], [1]),
    ("rotate-half", (2, 4, 7, 16), [8], [INT64_MAX], [-1], None),
    ("empty-input", (0, 5), [1], [3], [1], None),
]
for tag, shape, starts, ends, axes, steps in SLICE:
    def slice_inputs(r, shape=shape, starts=starts, ends=ends, axes=axes, steps=steps, W=I, dtype=i64):
        ops = [I(r.f(*shape)), W(np.array(starts, dtype)), W(np.array(ends, dtype))]
        if axes is not None or steps is not None:
            ops.append(W(np.array(axes, dtype)) if axes is not None else None)
        if steps is not None:
            ops.append(W(np.array(steps, dtype)))
        return ops
    case("Slice-%s" % tag, "Slice", slice_inputs, opsets=(13, 17, 21))
    case("Slice-%s-init" % tag, "Slice", lambda r, f=slice_inputs: f(r, W=K))
case("Slice-int32-params", "Slice", lambda r: [I(r.f(6, 5)), I(np.array([1, -4], i32)), I(np.array([5, -1], i32)),
                                               I(np.array([0, 1], i32)), I(np.array([2, 1], i32))])
case("Slice-i64-data", "Slice", lambda r: [I(np.array([2, 7, 64], i64)), K(np.array([-1], i64)),
                                           K(np.array([INT64_MAX], i64)), K(np.array([0], i64))])
case("Slice-bool-data-init", "Slice", lambda r: [K(np.tril(np.ones((1, 1, 12, 12), b8))), K(np.array([0], i64)),
                                                 I(np.array([5], i64)), K(np.array([2], i64)), K(np.array([1], i64))])

GATHER = [
    # name, data shape, indices, axis
    ("axis0", (5, 4), np.array([0, 3, 1], i64), 0),
    ("axis1-2d-idx", (3, 6), np.array([[0, 5, 2], [1, 1, 4]], i64), 1),
    ("neg-idx", (5, 4), np.array([-1, -5, 2], i64), 0),
    ("scalar-idx-axis0", (5, 4), np.array(2, i64), 0),
    ("scalar-idx-axis1", (2, 7, 8), np.array(0, i64), 1),
    ("scalar-neg-idx", (2, 7, 8), np.array(-1, i64), 1),
    ("axis-neg", (2, 3, 5), np.array([4, 0], i64), -1),
    ("empty-idx", (5, 4), np.zeros((0,), i64), 0),
    ("empty-data-dim", (5, 0), np.array([1, 2], i64), 0),
    ("int32-idx", (6, 3), np.array([[5, 0], [2, -1]], i32), 0),
]
for tag, shape, idx, ax in GATHER:
    case("Gather-%s" % tag, "Gather", lambda r, shape=shape, idx=idx: [I(r.f(*shape)), I(idx)], opsets=(13, 17, 21), axis=ax)
    case("Gather-%s-init-idx" % tag, "Gather", lambda r, shape=shape, idx=idx: [I(r.f(*shape)), K(idx)], axis=ax)
# embedding lookup: table initializer, token ids input
case("Gather-embedding", "Gather", lambda r: [K(r.n(64, 16)), I(r.i(2, 7, lo=0, hi=63))])
case("Gather-embedding-int32", "Gather", lambda r: [K(r.n(64, 16)), I(r.i(3, 5, lo=0, hi=63, dtype=i32))])
# shape chain: Gather(Shape(x), scalar) -> scalar int64
case("Gather-shape-chain", "Gather", lambda r: [I(np.array([2, 7, 64], i64)), K(np.array(1, i64))], axis=0)
case("Gather-bool-data", "Gather", lambda r: [I(r.b(4, 3)), I(np.array([3, 0], i64))], axis=0)

EXPAND = [
    ("rank-up", (3, 1), [2, 3, 4]),
    ("one-to-n", (1,), [5]),
    ("bidirectional", (3, 1), [1, 4]),
    ("keep-bigger", (2, 3), [3]),
    ("ones-keep", (2, 3), [1, 1]),
    ("scalar", (), [2, 2]),
    ("to-zero", (3, 1), [3, 0]),
    ("kv-repeat", (2, 2, 1, 7, 8), [2, 2, 2, 7, 8]),
]
for tag, shape, target in EXPAND:
    t = np.array(target, i64)
    case("Expand-%s" % tag, "Expand", lambda r, shape=shape, t=t: [I(r.f(*shape)), I(t)], opsets=(13, 17, 21))
    case("Expand-%s-init" % tag, "Expand", lambda r, shape=shape, t=t: [I(r.f(*shape)), K(t)])
case("Expand-i64", "Expand", lambda r: [I(r.i(1, 5)), I(np.array([3, 5], i64))])
case("Expand-bool", "Expand", lambda r: [I(r.b(1, 4)), K(np.array([3, 1], i64))])

for tag, mk in [("f32", lambda r: r.f(3, 4)), ("i64", lambda r: r.i(3, 4)), ("bool", lambda r: r.b(3, 4)),
                ("scalar", lambda r: r.f()), ("empty", lambda r: r.f(0, 3))]:
    case("Identity-%s" % tag, "Identity", lambda r, mk=mk: [I(mk(r))], opsets=(13, 17, 21))
# output names with characters the CLI must sanitise in file names
case("Identity-output-name-sanitised", "Identity", lambda r: [I(r.f(2, 3))], out_names=["/model/out:0 x"])

# ------------------------------------------------------------------------------------------
# select / compare / logic
# ------------------------------------------------------------------------------------------
case("Where-f32", "Where", lambda r: [I(r.b(3, 4)), I(r.f(3, 4)), I(r.f(3, 4))], opsets=(13, 16, 17, 21))
case("Where-bcast", "Where", lambda r: [I(r.b(1, 4)), I(r.f(3, 1)), I(r.f())])
case("Where-causal-scalar-init", "Where", lambda r: [I(r.b(1, 1, 5, 5)), I(r.f(2, 3, 5, 5)), K(np.array(FMIN, f32))])
case("Where-i64", "Where", lambda r: [I(r.b(4)), I(r.i(4)), I(r.i(4))])
case("Where-i64-bcast", "Where", lambda r: [I(r.b(2, 3)), I(r.i(3)), K(np.array(1, i64))])
case("Where-empty", "Where", lambda r: [I(r.b(0, 3)), I(r.f(0, 3)), I(r.f(3))])

for op in ["Equal", "Less", "Greater"]:
    case("%s-f32" % op, op, lambda r: [I(r.i(3, 4, lo=-2, hi=2).astype(f32)), I(r.i(3, 4, lo=-2, hi=2).astype(f32))],
         opsets=(13, 17, 21))
    case("%s-f32-bcast" % op, op, lambda r: [I(r.i(2, 1, 4, lo=-2, hi=2).astype(f32)), I(r.i(3, 1, lo=-2, hi=2).astype(f32))])
    case("%s-i64" % op, op, lambda r: [I(r.i(5, lo=-3, hi=3)), I(r.i(5, lo=-3, hi=3))])
    case("%s-i64-scalar-init" % op, op, lambda r: [I(r.i(6, lo=-3, hi=3)), K(np.array(-1, i64))])
    case("%s-i32" % op, op, lambda r: [I(r.i(2, 3, lo=-3, hi=3, dtype=i32)), I(r.i(3, lo=-3, hi=3, dtype=i32))])
    case("%s-f32-empty" % op, op, lambda r: [I(r.f(0, 3)), I(r.f(3))])
case("Equal-bool", "Equal", lambda r: [I(r.b(3, 4)), I(r.b(4))])
case("Equal-f32-special", "Equal", lambda r: [I(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0], f32)),
                                              I(np.array([-0.0, 0.0, np.inf, np.inf, np.nan, 1.0], f32))])

case("Not-bool", "Not", lambda r: [I(r.b(3, 4))])
case("Not-scalar", "Not", lambda r: [I(np.array(True))])
case("Not-empty", "Not", lambda r: [I(r.b(0, 2))])
for op in ["And", "Or"]:
    case("%s-bool" % op, op, lambda r: [I(r.b(3, 4)), I(r.b(3, 4))])
    case("%s-bool-bcast" % op, op, lambda r: [I(r.b(2, 1, 4)), I(r.b(3, 1))])
    case("%s-bool-scalar" % op, op, lambda r: [I(r.b(5)), I(np.array(True))])

# ------------------------------------------------------------------------------------------
# Cast: every pair among f32 f64 i64 i32 bool f16
# ------------------------------------------------------------------------------------------
CAST_TYPES = {"f32": f32, "f64": f64, "i64": i64, "i32": i32, "bool": b8, "f16": f16}


def cast_source(r, src, shape):
    if src in ("f32", "f64"):
        # in range of every target; fractions (truncation toward zero, f16 rounding), exact zeros
        x = r.f(*shape, lo=-300.0, hi=300.0, dtype=f64)
        x.flat[::4] = np.round(x.flat[::4])
        x.flat[1::5] = 0.0
        x.flat[2::7] = -0.75
        return x.astype(CAST_TYPES[src])
    if src == "f16":
        x = r.f(*shape, lo=-300.0, hi=300.0).astype(f16)
        x.flat[1::5] = 0.0
        return x
    if src in ("i64", "i32"):
        x = r.i(*shape, lo=-2000, hi=2000, dtype=CAST_TYPES[src])
        x.flat[1::5] = 0
        return x
    return r.b(*shape)


for src in CAST_TYPES:
    for dst, dt in CAST_TYPES.items():
        to = helper.np_dtype_to_tensor_dtype(np.dtype(dt))
        case("Cast-%s-to-%s" % (src, dst), "Cast", lambda r, src=src: [I(cast_source(r, src, (4, 5)))], to=to)
case("Cast-scalar-i64-to-f32", "Cast", lambda r: [I(np.array(7, i64))], opsets=(13, 17, 21),
     to=onnx.TensorProto.FLOAT)
case("Cast-empty-f32-to-i64", "Cast", lambda r: [I(r.f(0, 3))], to=onnx.TensorProto.INT64)
case("Cast-f32-to-f16-rounding", "Cast",
     lambda r: [I(np.array([1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 65504.0, 65519.0, 6e-8, 1e-8, -2.5e-5, 0.1], f32))],
     to=onnx.TensorProto.FLOAT16)

# ------------------------------------------------------------------------------------------
# Shape ConstantOfShape Constant Range Trilu
# ------------------------------------------------------------------------------------------
for tag, shape in [("3d", (2, 3, 4)), ("scalar", ()), ("empty-dim", (0, 3)), ("rank1", (5,))]:
    case("Shape-%s" % tag, "Shape", lambda r, shape=shape: [I(r.f(*shape))], opsets=(13, 15, 17, 21))
for tag, kw in [("start1", {"start": 1}), ("end-neg", {"end": -1}), ("start-neg", {"start": -2}),
                ("start-end", {"start": 1, "end": 2}), ("empty-range", {"start": 2, "end": 1}),
                ("clamp", {"start": -10, "end": 10})]:
    case("Shape-%s" % tag, "Shape", lambda r: [I(r.f(2, 3, 4, 5))], opsets=(15, 17, 21), **kw)
case("Shape-i64-data", "Shape", lambda r: [I(r.i(2, 7))])

CONST_OF_SHAPE = [
    ("default-zero", [2, 3], None),
    ("f32-value", [2, 3], np.array([1.5], f32)),
    ("i64-value", [4], np.array([7], i64)),
    ("i32-value", [2, 2], np.array([-3], i32)),
    ("bool-value", [3], np.array([True])),
    ("scalar-out", [], np.array([2.0], f32)),
    ("zero-dim", [0, 3], np.array([1.0], f32)),
]
for tag, shp, val in CONST_OF_SHAPE:
    kw = {} if val is None else {"value": numpy_helper.from_array(val)}
    s = np.array(shp, i64)
    case("ConstantOfShape-%s" % tag, "ConstantOfShape", lambda r, s=s: [I(s)], opsets=(13, 17, 21), **kw)
    case("ConstantOfShape-%s-init" % tag, "ConstantOfShape", lambda r, s=s: [K(s)], **kw)

case_a("Constant-value-f32", "Constant", [], lambda r: {"value": numpy_helper.from_array(r.f(2, 3))}, opsets=(13, 17, 21))
case_a("Constant-value-i64-scalar", "Constant", [], lambda r: {"value": numpy_helper.from_array(np.array(42, i64))})
case_a("Constant-value-bool", "Constant", [], lambda r: {"value": numpy_helper.from_array(r.b(4))})
case_a("Constant-value-f16", "Constant", [], lambda r: {"value": numpy_helper.from_array(r.f(3).astype(f16))})
case_a("Constant-value-empty", "Constant", [], lambda r: {"value": numpy_helper.from_array(np.zeros((0, 2), f32))})
# not raw_data: typed repeated fields (float_data / int64_data) as older exporters write them
case_a("Constant-value-typed-fields", "Constant", [],
       lambda r: {"value": helper.make_tensor("v", onnx.TensorProto.FLOAT, [2, 2], [1.0, -2.0, 3.5, 0.25])})
case_a("Constant-value-int64-data", "Constant", [],
       lambda r: {"value": helper.make_tensor("v", onnx.TensorProto.INT64, [3], [1, -1, 1 << 40])})
case("Constant-value_float", "Constant", [], opsets=(13, 17, 21), value_float=2.5)
case("Constant-value_floats", "Constant", [], value_floats=[1.0, -2.0, 0.5])
case("Constant-value_int", "Constant", [], value_int=-7)
case("Constant-value_ints", "Constant", [], value_ints=[3, 0, -1, 1 << 40])

RANGE = [
    ("f32", np.array(0.0, f32), np.array(5.0, f32), np.array(1.0, f32)),
    ("f32-neg-delta", np.array(1.5, f32), np.array(-2.0, f32), np.array(-0.5, f32)),
    ("f32-frac", np.array(0.0, f32), np.array(1.0, f32), np.array(0.3, f32)),
    ("i64", np.array(0, i64), np.array(10, i64), np.array(3, i64)),
    ("i64-neg-delta", np.array(10, i64), np.array(0, i64), np.array(-3, i64)),
    ("i64-empty", np.array(5, i64), np.array(0, i64), np.array(1, i64)),
    ("i32", np.array(-4, i32), np.array(4, i32), np.array(2, i32)),
]
for tag, s0, s1, s2 in RANGE:
    case("Range-%s" % tag, "Range", lambda r, a=s0, b=s1, c=s2: [I(a), I(b), I(c)], opsets=(13, 17, 21))
    case("Range-%s-init" % tag, "Range", lambda r, a=s0, b=s1, c=s2: [K(a), K(b), K(c)])
# position ids as exported: start/delta constants, limit from the shape chain
case("Range-position-ids", "Range", lambda r: [K(np.array(0, i64)), I(np.array(7, i64)), K(np.array(1, i64))])

TRILU = [
    ("upper", (4, 4), None, 1),
    ("lower", (4, 4), None, 0),
    ("upper-k1", (5, 5), 1, 1),
    ("lower-k-neg1", (5, 5), -1, 0),
    ("upper-k-big", (3, 4), 5, 1),
    ("lower-k-neg-big", (3, 4), -5, 0),
    ("batched-wide", (2, 3, 5), 0, 1),
    ("batched-tall", (2, 5, 3), 1, 0),
    ("empty", (0, 3), None, 1),
]
for tag, shape, k, upper in TRILU:
    if k is None:
        case("Trilu-%s" % tag, "Trilu", lambda r, shape=shape: [I(r.f(*shape))], opsets=(14, 17, 21), upper=upper)
    else:
        kk = np.array(k, i64)
        case("Trilu-%s" % tag, "Trilu", lambda r, shape=shape, kk=kk: [I(r.f(*shape)), I(kk)], upper=upper)
        case("Trilu-%s-init" % tag, "Trilu", lambda r, shape=shape, kk=kk: [I(r.f(*shape)), K(kk)], upper=upper)
# the Llama causal mask: Trilu(full(finfo.min), k=1, upper)
case("Trilu-causal-mask", "Trilu", lambda r: [I(np.full((6, 6), FMIN, f32)), K(np.array(1, i64))], upper=1)
case("Trilu-i64", "Trilu", lambda r: [I(r.i(4, 4)), K(np.array(0, i64))], upper=0)

# ------------------------------------------------------------------------------------------
# reductions: axes attribute (ReduceMean/Max < 18, all < 13) vs axes input
# ------------------------------------------------------------------------------------------
REDUCE = [
    # name, shape, axes (None: omitted), keepdims
    ("axis1-keep", (2, 3, 4), [1], 1),
    ("axis-neg-nokeep", (2, 3, 4), [-1], 0),
    ("axes-0-2-keep", (2, 3, 4), [0, 2], 1),
    ("axes-0-2-nokeep", (2, 3, 4), [0, 2], 0),
    ("all-keep", (2, 3, 4), None, 1),
    ("all-nokeep", (2, 3, 4), None, 0),
    ("scalar", (), None, 1),
    ("rmsnorm", (2, 7, 16), [-1], 1),
]


def reduce_data(r, op, shape):
    return r.f(*shape)


for op in ["ReduceMean", "ReduceSum", "ReduceMax"]:
    attr_opsets = (13, 17) if op != "ReduceSum" else (12,)    # axes attribute form
    input_opsets = (18, 21) if op != "ReduceSum" else (13, 17, 18, 21)
    for tag, shape, axes, keep in REDUCE:
        if axes is None:
            case("%s-%s" % (op, tag), op, lambda r, shape=shape: [I(r.f(*shape))],
                 opsets=attr_opsets + input_opsets, keepdims=keep)
            continue
        ax = np.array(axes, i64)
        case("%s-%s-attr" % (op, tag), op, lambda r, shape=shape: [I(r.f(*shape))], opsets=attr_opsets,
             axes=axes, keepdims=keep)
        case("%s-%s" % (op, tag), op, lambda r, shape=shape, ax=ax: [I(r.f(*shape)), I(ax)], opsets=input_opsets,
             keepdims=keep)
        case("%s-%s-init" % (op, tag), op, lambda r, shape=shape, ax=ax: [I(r.f(*shape)), K(ax)],
             opsets=input_opsets[-1:], keepdims=keep)
    last = input_opsets[-1]
    # empty axes input: reduce all, or identity with noop_with_empty_axes=1
    case("%s-empty-axes" % op, op, lambda r: [I(r.f(2, 3)), K(np.zeros((0,), i64))], opsets=(last,), keepdims=0)
    case("%s-noop-empty-axes" % op, op, lambda r: [I(r.f(2, 3)), K(np.zeros((0,), i64))], opsets=(last,),
         noop_with_empty_axes=1)
    case("%s-noop-omitted-axes" % op, op, lambda r: [I(r.f(2, 3))], opsets=(last,), noop_with_empty_axes=1)
    case("%s-f64" % op, op, lambda r: [I(r.f(3, 5, dtype=f64)), K(np.array([1], i64))], opsets=(last,))
case("ReduceSum-i64", "ReduceSum", lambda r: [I(r.i(3, 4)), K(np.array([0], i64))], opsets=(13, 17))
case("ReduceMax-i64-attr", "ReduceMax", lambda r: [I(r.i(3, 4))], opsets=(13, 17), axes=[1], keepdims=0)
case("ReduceMax-i64", "ReduceMax", lambda r: [I(r.i(3, 4)), K(np.array([1], i64))], opsets=(18,), keepdims=0)
case("ReduceSum-empty-dim", "ReduceSum", lambda r: [I(r.f(0, 3)), K(np.array([0], i64))], opsets=(13, 17), keepdims=0)
case("ReduceMax-neg-inf", "ReduceMax", lambda r: [I(np.array([[-np.inf, -np.inf], [FMIN, -1.0]], f32))],
     opsets=(13,), axes=[1], keepdims=1)
case("ReduceMean-large-row", "ReduceMean", lambda r: [I(r.f(3, 4096))], opsets=(13,), axes=[-1], keepdims=1)

# ------------------------------------------------------------------------------------------
# LayerNormalization (opset 17+)
# ------------------------------------------------------------------------------------------
def ln_inputs(r, shape, axis, bias=True, W=I, offset=0.0):
    x = r.f(*shape) + f32(offset)
    norm_shape = shape[axis:] if axis >= 0 else shape[len(shape) + axis:]
    ops = [I(x), W((1.0 + 0.2 * r.n(*norm_shape)).astype(f32))]
    if bias:
        ops.append(W(0.2 * r.n(*norm_shape)))
    return ops


LN = [
    ("axis-neg1", (2, 5, 8), -1, True, {}),
    ("axis-neg1-eps12", (2, 5, 8), -1, True, {"epsilon": 1e-12}),
    ("axis1", (2, 5, 8), 1, True, {}),
    ("axis-neg2", (3, 4, 6), -2, True, {}),
    ("axis0", (3, 4), 0, True, {}),
    ("2d", (4, 16), -1, True, {"epsilon": 1e-5}),
    ("no-bias", (2, 3, 8), -1, False, {}),
    ("offset-mean", (2, 64), -1, True, {}),
    ("constant-row", (2, 8), -1, True, {}),
]
for tag, shape, axis, bias, extra in LN:
    off = 3.0 if tag == "offset-mean" else 0.0
    if tag == "constant-row":
        fn = lambda r, shape=shape: [I(np.full(shape, 1.25, f32)), I(r.pos(shape[-1])), I(r.f(shape[-1]))]  # noqa: E731
    else:
        fn = lambda r, shape=shape, axis=axis, bias=bias, off=off: ln_inputs(r, shape, axis, bias, offset=off)  # noqa: E731
    case("LayerNormalization-%s" % tag, "LayerNormalization", fn, opsets=(17, 21), axis=axis, **extra)
case("LayerNormalization-init-params", "LayerNormalization",
     lambda r: ln_inputs(r, (2, 7, 32), -1, True, W=K), axis=-1, epsilon=1e-5)
case("LayerNormalization-mean-invstd", "LayerNormalization", lambda r: ln_inputs(r, (2, 3, 8), -1),
     n_out=3, axis=-1)
case("LayerNormalization-mean-invstd-axis1", "LayerNormalization", lambda r: ln_inputs(r, (2, 3, 8), 1),
     n_out=3, axis=1)

# ------------------------------------------------------------------------------------------
# Dropout (inference): identity, optional mask output all true
# ------------------------------------------------------------------------------------------
case("Dropout-no-ratio", "Dropout", lambda r: [I(r.f(3, 4))], opsets=(13, 17, 21))
case("Dropout-ratio-init", "Dropout", lambda r: [I(r.f(3, 4)), K(np.array(0.1, f32))], opsets=(13, 17))
case("Dropout-mask", "Dropout", lambda r: [I(r.f(2, 5))], opsets=(13, 17, 21), out_names=["y", "mask"])
case("Dropout-ratio-training-false", "Dropout",
     lambda r: [I(r.f(2, 3)), I(np.array(0.5, f32)), I(np.array(False))], out_names=["y", "mask"])
case("Dropout-empty", "Dropout", lambda r: [I(r.f(0, 4))])

# ------------------------------------------------------------------------------------------
# Max Min (variadic, broadcast) Clip CumSum
# ------------------------------------------------------------------------------------------
for op in ["Max", "Min"]:
    case("%s-one" % op, op, lambda r: [I(r.f(3, 4))], opsets=(13, 17, 21))
    case("%s-two" % op, op, lambda r: [I(r.f(3, 4)), I(r.f(3, 4))], opsets=(13, 17, 21))
    case("%s-two-bcast" % op, op, lambda r: [I(r.f(2, 1, 4)), I(r.f(3, 1))])
    case("%s-three-bcast" % op, op, lambda r: [I(r.f(4)), I(r.f(3, 1)), I(r.f(2, 1, 1))])
    case("%s-scalar-init" % op, op, lambda r: [I(r.f(5)), K(np.array(0.0, f32))])
    case("%s-i64" % op, op, lambda r: [I(r.i(3, 4)), I(r.i(4))])
    case("%s-i32" % op, op, lambda r: [I(r.i(3, 4, dtype=i32)), I(r.i(3, 4, dtype=i32))])
    case("%s-empty" % op, op, lambda r: [I(r.f(0, 3)), I(r.f(3))])

CLIP = [
    ("min-max", lambda r: [I(r.f(3, 4, lo=-3, hi=3)), I(np.array(-1.0, f32)), I(np.array(1.5, f32))]),
    ("min-only", lambda r: [I(r.f(3, 4, lo=-3, hi=3)), I(np.array(-0.5, f32))]),
    ("max-only", lambda r: [I(r.f(3, 4, lo=-3, hi=3)), None, I(np.array(0.5, f32))]),
    ("none", lambda r: [I(r.f(3, 4, lo=-3, hi=3))]),
    ("init-bounds", lambda r: [I(r.f(2, 5, lo=-3, hi=3)), K(np.array(0.0, f32)), K(np.array(6.0, f32))]),
    ("i64", lambda r: [I(r.i(3, 4)), I(np.array(-2, i64)), I(np.array(3, i64))]),
    ("scalar", lambda r: [I(r.f(lo=-3, hi=3)), I(np.array(-1.0, f32)), I(np.array(1.0, f32))]),
    ("empty", lambda r: [I(r.f(0, 4)), I(np.array(-1.0, f32)), I(np.array(1.0, f32))]),
]
for tag, fn in CLIP:
    case("Clip-%s" % tag, "Clip", fn, opsets=(13, 17, 21))

CUMSUM = [
    ("1d", (5,), 0, {}),
    ("axis1", (3, 4), 1, {}),
    ("axis-neg", (2, 3, 4), -1, {}),
    ("axis0", (4, 3), 0, {}),
    ("exclusive", (3, 5), 1, {"exclusive": 1}),
    ("reverse", (3, 5), 1, {"reverse": 1}),
    ("exclusive-reverse", (3, 5), -1, {"exclusive": 1, "reverse": 1}),
    ("exclusive-reverse-axis0", (4, 2), 0, {"exclusive": 1, "reverse": 1}),
]
for tag, shape, ax, kw in CUMSUM:
    a = np.array(ax, i64)
    case("CumSum-f32-%s" % tag, "CumSum", lambda r, shape=shape, a=a: [I(r.f(*shape)), I(a)], opsets=(14, 17, 21), **kw)
    case("CumSum-f32-%s-init" % tag, "CumSum", lambda r, shape=shape, a=a: [I(r.f(*shape)), K(a)], **kw)
case("CumSum-i64", "CumSum", lambda r: [I(r.i(3, 4)), K(np.array(1, i64))])
case("CumSum-i64-mask-positions", "CumSum", lambda r: [I(np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], i64)),
                                                       K(np.array(1, i64))])
case("CumSum-axis-int32", "CumSum", lambda r: [I(r.f(3, 4)), I(np.array(0, i32))], exclusive=1)
case("CumSum-f64", "CumSum", lambda r: [I(r.f(6, dtype=f64)), K(np.array(0, i64))])
case("CumSum-empty", "CumSum", lambda r: [I(r.f(0, 3)), K(np.array(1, i64))])

# ------------------------------------------------------------------------------------------
assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_op(c, tmp_path):
    require_binary_or_fail()
    model, feeds = c.build()
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    ref = run_ort(path, feeds)
    got = run_onnxtune(path, feeds)
    assert_outputs_match(ref, got, context="%s: " % c.id)


def check_table():
    """Build every case and run it in ONNX Runtime only (no binary needed)."""
    ops, bad = set(), []
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        for c in CASES:
            try:
                model, feeds = c.build()
                onnx.checker.check_model(model)
                path = os.path.join(tmp, "m.onnx")
                onnx.save(model, path)
                ref = run_ort(path, feeds)
                for o in model.graph.output:
                    assert o.type.tensor_type.elem_type, "output %s has no inferred type" % o.name
                    assert ref[o.name].dtype == helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)
                ops.add(c.op)
            except Exception as e:  # noqa: BLE001
                bad.append((c.id, "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")))
    print("%d cases, %d ops: %s" % (len(CASES), len(ops), " ".join(sorted(ops))))
    for cid, msg in bad:
        print("FAIL %s: %s" % (cid, msg))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(check_table())
