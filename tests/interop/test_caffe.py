"""Caffe import: prototxts with the structure of Caffe's example nets and caffemodels with random
weights, written here through the protobuf runtime, checked against OpenCV's independent Caffe
runtime (cv2.dnn.readNetFromCaffe) layer by layer; the error paths; fine-tuning; solver.prototxt."""
import math

import numpy as np
import pytest

pytest.importorskip("google.protobuf", reason="Caffe import needs protobuf: pip install 'layerwise[interop]'")

from layerwise.interop import CaffeError, load_caffe, load_caffe_solver  # noqa: E402
from layerwise.interop.caffe import caffe_pb  # noqa: E402
from layerwise.testing.oracle import assert_close  # noqa: E402

LENET = """
name: "LeNet"
layer { name: "data" type: "Input" top: "data" input_param { shape: { dim: 2 dim: 1 dim: 20 dim: 20 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 4 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2" convolution_param { num_output: 6 kernel_size: 3 } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1" inner_product_param { num_output: 20 } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "ip2" top: "prob" }
"""

LENET_TRAIN_VAL = """
name: "LeNet"
layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.00390625 } data_param { source: "mnist_train_lmdb" batch_size: 64 backend: LMDB } }
layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { scale: 0.00390625 } data_param { source: "mnist_test_lmdb" batch_size: 100 backend: LMDB } }
""" + LENET.split('layer { name: "conv1"', 1)[1].join(['layer { name: "conv1"', ""]).rsplit(
    'layer { name: "prob"', 1)[0] + """
layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

# CIFAR-10 quick (Caffe's examples/cifar10), narrower; legacy input:/input_dim declaration
CIFAR_QUICK = """
name: "CIFAR10_quick_test"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 16 input_dim: 16
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 8 pad: 2 kernel_size: 5 stride: 1 } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2" convolution_param { num_output: 8 pad: 2 kernel_size: 5 stride: 1 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool2" top: "conv3" convolution_param { num_output: 16 pad: 2 kernel_size: 5 stride: 1 } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "pool3" type: "Pooling" bottom: "conv3" top: "pool3" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool3" top: "ip1" inner_product_param { num_output: 16 } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "ip2" top: "prob" }
"""

# CIFAR-10 full: LRN within channel after pooling; input_shape declaration
CIFAR_FULL = """
name: "CIFAR10_full_deploy"
input: "data"
input_shape { dim: 2 dim: 3 dim: 16 dim: 16 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 8 pad: 2 kernel_size: 5 stride: 1 } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1" lrn_param { local_size: 3 alpha: 5e-05 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2" convolution_param { num_output: 8 pad: 2 kernel_size: 5 stride: 1 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "norm2" type: "LRN" bottom: "pool2" top: "norm2" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "conv3" type: "Convolution" bottom: "norm2" top: "conv3" convolution_param { num_output: 16 pad: 2 kernel_size: 5 stride: 1 } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "pool3" type: "Pooling" bottom: "conv3" top: "pool3" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool3" top: "ip1" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""

# BatchNorm + Scale (ResNet style), with a residual Eltwise, Concat, Slice, in-place layers
BN_SCALE = """
name: "bn_scale"
layer { name: "data" type: "Input" top: "data" input_param { shape: { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 6 kernel_h: 3 kernel_w: 3 pad_h: 1 pad_w: 1 bias_term: false } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" batch_norm_param { use_global_stats: true } }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2" convolution_param { num_output: 6 kernel_size: 3 pad: 1 bias_term: false group: 2 } }
layer { name: "bn2" type: "BatchNorm" bottom: "conv2" top: "conv2" }
layer { name: "scale2" type: "Scale" bottom: "conv2" top: "conv2" scale_param { bias_term: true } }
layer { name: "res" type: "Eltwise" bottom: "conv1" bottom: "conv2" top: "res" eltwise_param { operation: SUM coeff: 1 coeff: -0.5 } }
layer { name: "split" type: "Split" bottom: "res" top: "res_a" top: "res_b" }
layer { name: "slice" type: "Slice" bottom: "res_a" top: "s1" top: "s2" slice_param { axis: 1 slice_point: 2 } }
layer { name: "prod" type: "Eltwise" bottom: "s1" bottom: "s1" top: "prod" eltwise_param { operation: PROD } }
layer { name: "cat" type: "Concat" bottom: "prod" bottom: "s2" bottom: "res_b" top: "cat" }
layer { name: "pool" type: "Pooling" bottom: "cat" top: "pool" pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""

# the rest of the layer table: Deconvolution, LRN across channels, activations, Power, Flatten, Reshape, Dropout.
# LRN keeps k = 1: OpenCV 4 ignores lrn_param.k (Caffe and layerwise use it; tests/layers check k != 1 vs torch)
MISC = """
name: "misc"
input: "data"
input_shape { dim: 2 dim: 4 dim: 6 dim: 6 }
layer { name: "deconv" type: "Deconvolution" bottom: "data" top: "deconv" convolution_param { num_output: 6 kernel_size: 4 stride: 2 pad: 1 } }
layer { name: "lrn" type: "LRN" bottom: "deconv" top: "lrn" lrn_param { local_size: 3 alpha: 0.3 beta: 0.75 } }
layer { name: "prelu" type: "PReLU" bottom: "lrn" top: "prelu" }
layer { name: "conv" type: "Convolution" bottom: "prelu" top: "conv" convolution_param { num_output: 4 kernel_size: 3 stride: 2 dilation: 2 } }
layer { name: "elu" type: "ELU" bottom: "conv" top: "elu" elu_param { alpha: 0.5 } }
layer { name: "sig" type: "Sigmoid" bottom: "elu" top: "sig" }
layer { name: "tanh" type: "TanH" bottom: "elu" top: "tanh" }
layer { name: "abs" type: "AbsVal" bottom: "elu" top: "abs" }
layer { name: "bnll" type: "BNLL" bottom: "elu" top: "bnll" }
layer { name: "pow" type: "Power" bottom: "sig" top: "pow" power_param { power: 2 scale: 0.5 shift: 1 } }
layer { name: "leaky" type: "ReLU" bottom: "tanh" top: "leaky" relu_param { negative_slope: 0.1 } }
layer { name: "mx" type: "Eltwise" bottom: "pow" bottom: "leaky" bottom: "abs" bottom: "bnll" top: "mx" eltwise_param { operation: MAX } }
layer { name: "pool" type: "Pooling" bottom: "mx" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 } }
layer { name: "drop" type: "Dropout" bottom: "pool" top: "pool" dropout_param { dropout_ratio: 0.3 } }
layer { name: "flat" type: "Flatten" bottom: "pool" top: "flat" }
layer { name: "fc" type: "InnerProduct" bottom: "flat" top: "fc" inner_product_param { num_output: 12 } }
layer { name: "reshape" type: "Reshape" bottom: "fc" top: "reshape" reshape_param { shape { dim: 0 dim: 3 dim: -1 } } }
"""

# LeNet in the legacy V1 format (layers { type: CONVOLUTION }), blobs with num/channels/height/width
LENET_V1 = """
name: "LeNetV1"
input: "data"
input_dim: 2 input_dim: 1 input_dim: 12 input_dim: 12
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1" blobs_lr: 1 blobs_lr: 2 convolution_param { num_output: 3 kernel_size: 3 } }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "relu1" type: RELU bottom: "pool1" top: "pool1" }
layers { name: "ip1" type: INNER_PRODUCT bottom: "pool1" top: "ip1" inner_product_param { num_output: 8 } }
layers { name: "tanh1" type: TANH bottom: "ip1" top: "ip1" }
layers { name: "ip2" type: INNER_PRODUCT bottom: "ip1" top: "ip2" inner_product_param { num_output: 4 } }
layers { name: "prob" type: SOFTMAX bottom: "ip2" top: "prob" }
"""


def write_caffemodel(net, path, rng, *, v1=False):
    """A .caffemodel with random weights for every layer of ``net`` (a CaffeNet built without weights),
    in Caffe's blob layout; ``v1`` writes the legacy format with 4-D num/channels/height/width blobs."""
    M = caffe_pb()
    m = M["NetParameter"](name="random")
    for node in net.nodes:
        kind = net.caffe_layers[node.name]
        layer = node.layer
        if kind == "BatchNorm":
            c = layer.buffer("running_mean").shape[0]
            s = 0.5 + rng.random()
            arrays = [rng.standard_normal(c) * s, (0.5 + rng.random(c)) * s, np.array([s])]
        else:
            arrays = [rng.standard_normal(p.shape) * (1.0 / math.sqrt(max(p.size / p.shape[0], 1)))
                      for p in layer.named_params().values()]
            if kind == "PReLU":
                arrays = [rng.random(a.shape) * 0.5 for a in arrays]
        if not arrays:
            continue
        lp = m.layers.add() if v1 else m.layer.add()
        lp.name = node.name
        if v1:
            enum = lp.DESCRIPTOR.fields_by_name["type"].enum_type
            lp.type = enum.values_by_name[{"Convolution": "CONVOLUTION", "InnerProduct": "INNER_PRODUCT"}[kind]].number
        else:
            lp.type = kind
        for a in arrays:
            b = lp.blobs.add()
            if v1:
                shape4 = (1,) * (4 - a.ndim) + a.shape
                b.num, b.channels, b.height, b.width = shape4
            else:
                b.shape.dim.extend(a.shape)
            b.data.extend(a.astype(np.float32).ravel().tolist())
    data = m.SerializeToString()
    path.write_bytes(data)
    return data


def _roundtrip(tmp_path, name, proto, rng, v1=False):
    p = tmp_path / f"{name}.prototxt"
    p.write_text(proto)
    w = tmp_path / f"{name}.caffemodel"
    write_caffemodel(load_caffe(p), w, rng, v1=v1)
    return p, w, load_caffe(p, w)


def _check_opencv(net, proto_path, model_path, x, layers=None):
    """Final outputs and every layer's output (by layer name, before later in-place layers) vs OpenCV."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV oracle: pip install 'opencv-python-headless<5'")
    cv = cv2.dnn.readNetFromCaffe(str(proto_path), str(model_path))
    cv.enableFusion(False)
    cv.setInput(x)
    names = [n.name for n in net.nodes if n.name in (layers or [n.name for n in net.nodes])]
    cv_outs = cv.forward(names)
    blobs = net.forward_blobs(x, caffe_names=False)
    for node, theirs in zip([n for n in net.nodes if n.name in names], cv_outs):
        ours = blobs[node.outputs[0]]
        assert_close(ours, np.asarray(theirs).reshape(ours.shape), rtol=1e-4, what=f"layer {node.name}")
    out = net.forward(x)
    final = cv.forward(net.output_names[0].split("@")[0])
    assert_close(out, np.asarray(final).reshape(out.shape), rtol=1e-4, what="net output")
    return out


@pytest.mark.parametrize("name,proto,v1", [("lenet", LENET, False), ("cifar_quick", CIFAR_QUICK, False),
                                           ("cifar_full", CIFAR_FULL, False), ("bn_scale", BN_SCALE, False),
                                           ("lenet_v1", LENET_V1, True)])
def test_caffe_nets_match_opencv(name, proto, v1, tmp_path, rng):
    p, w, net = _roundtrip(tmp_path, name, proto, rng, v1=v1)
    shape = net.blob_shapes[net.input_names[0]]
    x = rng.standard_normal(shape).astype(np.float32)
    out = _check_opencv(net, p, w, x)
    assert out.shape[0] == shape[0] and np.allclose(out.sum(axis=1), 1, atol=1e-5)   # softmax probabilities


def test_misc_layers_match_opencv(tmp_path, rng):
    p, w, net = _roundtrip(tmp_path, "misc", MISC, rng)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    _check_opencv(net, p, w, x)
    assert net.forward(x).shape == (2, 3, 4)


def test_blobs_reachable_by_caffe_name_and_in_place_renamed(tmp_path, rng):
    p, w, net = _roundtrip(tmp_path, "bn", BN_SCALE, rng)
    assert net.caffe_blobs["conv1"] == "conv1@relu1"                   # the last in-place writer
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    blobs = net.forward_blobs(x)
    assert np.all(blobs["conv1"] >= 0)                                  # Caffe's conv1 ends after relu1
    raw = net.forward_blobs(x, caffe_names=False)
    assert (raw["conv1"] < 0).any()                                     # the conv's own output, before BN
    # BatchNorm's blobs are mean*s, var*s, s: the loaded running stats are the quotients
    bn = net["bn1"]
    assert bn.buffer("running_var").min() > 0.3
    assert set(blobs) >= {"data", "conv1", "conv2", "res", "res_a", "res_b", "s1", "s2", "cat", "prob"}


def test_use_global_stats_freezes_batchnorm_in_a_train_net(tmp_path, rng):
    p, w, _ = _roundtrip(tmp_path, "bn", BN_SCALE, rng)
    train = load_caffe(p, w, phase="TRAIN").train()
    bn1, bn2 = train["bn1"], train["bn2"]            # bn1: use_global_stats: true; bn2: unset (batch stats)
    mean1, mean2 = bn1.buffer("running_mean").copy(), bn2.buffer("running_mean").copy()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    train.forward(x)
    assert np.array_equal(bn1.buffer("running_mean"), mean1) and not bn1.training
    assert not np.array_equal(bn2.buffer("running_mean"), mean2) and bn2.training
    deploy = load_caffe(p, w)
    raw_t, raw_d = train.forward_blobs(x, caffe_names=False), deploy.forward_blobs(x, caffe_names=False)
    assert_close(raw_t["conv1@bn1"], raw_d["conv1@bn1"], rtol=1e-6, what="frozen BN = deploy BN")
    train.backward(np.ones((2, 5), np.float32))     # the eval-mode backward runs
    assert np.abs(train["conv1"].weight.grad).sum() > 0


def test_train_val_loads_test_phase_and_fine_tunes(tmp_path, rng):
    from layerwise.solvers import SGD
    p = tmp_path / "train_val.prototxt"
    p.write_text(LENET_TRAIN_VAL)
    w = tmp_path / "lenet.caffemodel"
    write_caffemodel(load_caffe(LENET), w, rng)
    with pytest.raises(CaffeError, match="input_shape"):
        load_caffe(p, w)
    net = load_caffe(p, w, input_shape=(8, 1, 20, 20))
    assert net.input_names == ("data", "label")
    assert net.transform == {"scale": pytest.approx(0.00390625)}         # recorded, left to the caller
    assert [n.name for n in net.nodes][-2:] == ["accuracy", "loss"]
    deploy = load_caffe(LENET, w)
    x = rng.standard_normal((8, 1, 20, 20)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    acc, loss = net.forward(x, y)
    prob = deploy.forward(x)
    assert float(loss) == pytest.approx(float(-np.log(prob[np.arange(8), y]).mean()), rel=1e-5)
    assert float(acc) == pytest.approx(float((prob.argmax(1) == y).mean()))
    # fine-tuning: the TRAIN phase net has the loss and no accuracy; SGD lowers the loss
    train = load_caffe(p, w, phase="TRAIN", input_shape=(8, 1, 20, 20)).train()
    assert "accuracy" not in train.caffe_layers
    opt = SGD(train.named_params(), lr=0.01, momentum=0.9)
    first = float(train.forward(x, y))
    for _ in range(15):
        train.forward(x, y)
        train.backward()
        opt.step()
        train.zero_grad()
    assert float(train.forward(x, y)) < 0.5 * first


def test_deploy_net_fine_tunes_with_the_trainer(tmp_path, rng):
    from layerwise.data import ArrayDataset, DataLoader
    from layerwise.losses import SoftmaxCrossEntropyLoss
    from layerwise.solvers import SGD
    from layerwise.train import Trainer
    w = tmp_path / "lenet.caffemodel"
    write_caffemodel(load_caffe(LENET), w, rng)
    net = load_caffe(LENET, w, outputs="ip2").train()                # logits, not the Softmax
    assert net.output_names == ("ip2",)
    x = rng.standard_normal((32, 1, 20, 20)).astype(np.float32)
    y = (x[:, 0, :10].mean(axis=(1, 2)) > 0).astype(np.int64)         # a learnable rule
    loader = DataLoader(ArrayDataset(x, y, name="toy"), batch_size=8, shuffle=True, seed=0)
    trainer = Trainer(net, SoftmaxCrossEntropyLoss(), SGD(net.named_params(), lr=0.01, momentum=0.9), loader,
                      epochs=3, callbacks=[])
    history = trainer.fit()
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    with pytest.raises(CaffeError, match="outputs \\['nope'\\] are not blobs"):
        load_caffe(LENET, outputs="nope")


def test_errors_name_layer_type_and_file(tmp_path, rng):
    bad = LENET.replace('type: "ReLU"', 'type: "SPP"')
    with pytest.raises(CaffeError, match=r"layer 'relu1' \(SPP\).*not supported"):
        load_caffe(bad)
    p, w, _ = _roundtrip(tmp_path, "lenet", LENET, rng)
    # missing weights: the caffemodel lacks ip1
    M = caffe_pb()
    m = M["NetParameter"]()
    m.ParseFromString(w.read_bytes())
    kept = [lp for lp in m.layer if lp.name != "ip1"]
    del m.layer[:]
    m.layer.extend(kept)
    other = tmp_path / "other.caffemodel"
    other.write_bytes(m.SerializeToString())
    with pytest.raises(CaffeError, match=r"other.caffemodel: no weights for layer 'ip1'"):
        load_caffe(p, other)
    # another net's caffemodel: the first layer's shapes differ
    cifar = tmp_path / "cifar.caffemodel"
    write_caffemodel(load_caffe(CIFAR_QUICK), cifar, rng)
    with pytest.raises(CaffeError, match=r"layer 'conv1'.*\(8, 3, 5, 5\), expected \(4, 1, 5, 5\)"):
        load_caffe(p, cifar)
    # shape mismatch: same layer names, other sizes
    wider = tmp_path / "wider.prototxt"
    wider.write_text(LENET.replace("num_output: 20", "num_output: 21"))
    with pytest.raises(CaffeError, match=r"layer 'ip1'.*shape \(20, 54\), expected \(21, 54\)"):
        load_caffe(wider, w)
    # truncated file
    data = w.read_bytes()
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaffeError, match="cut.caffemodel: corrupt or truncated"):
        load_caffe(p, cut)
    with pytest.raises(CaffeError, match="not a valid Caffe"):
        load_caffe("layer { name: 'x' type: }")
    with pytest.raises(CaffeError, match="reads blob 'nope'"):
        load_caffe(LENET.replace('bottom: "pool2"', 'bottom: "nope"'))


SOLVER = """
# The LeNet solver of Caffe's examples/mnist
net: "examples/mnist/lenet_train_test.prototxt"
test_iter: 100
test_interval: 500
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
display: 100
max_iter: 10000
snapshot: 5000
snapshot_prefix: "examples/mnist/lenet"
solver_mode: GPU
my_custom_field: 3
"""


def test_solver_prototxt_maps_to_config(tmp_path):
    from layerwise.config import load_config
    from layerwise.train.build import build_policy_from_config
    p = tmp_path / "lenet_solver.prototxt"
    p.write_text(SOLVER)
    with pytest.warns(UserWarning, match="ignored: my_custom_field, solver_mode"):
        sol = load_caffe_solver(p)
    assert sol.max_iter == 10000 and sol.snapshot == 5000 and sol.snapshot_prefix == "examples/mnist/lenet"
    assert sol.net == "examples/mnist/lenet_train_test.prototxt" and sol.test_iter == [100]
    cfg = sol.to_config(iters_per_epoch=1000)
    assert cfg.epochs == 10 and cfg.checkpoint_every == 5
    assert (cfg.solver.name, cfg.solver.lr, cfg.solver.momentum, cfg.solver.nesterov) == ("sgd", 0.01, 0.9, False)
    assert cfg.solver.weight_decay == pytest.approx(5e-4) and cfg.lr_policy.warmup_epochs == 0
    lr = build_policy_from_config(cfg, 1000)                           # Caffe's inv: (1 + gamma it)^-power
    assert lr(2000) == pytest.approx(0.01 * (1 + 1e-4 * 2000) ** -0.75, rel=1e-6)
    step = load_caffe_solver('base_lr: 0.1 lr_policy: "multistep" gamma: 0.5 stepvalue: 100 stepvalue: 300 '
                             'momentum: 0.9 type: "Nesterov" max_iter: 400\n')
    lr = build_policy_from_config(step.to_config(iters_per_epoch=100), 100)
    assert [lr(99), lr(100), lr(300)] == pytest.approx([0.1, 0.05, 0.025])
    assert step.config["solver"]["nesterov"] is True
    adam = load_caffe_solver('base_lr: 0.001 type: "Adam" momentum: 0.9 momentum2: 0.99 delta: 1e-6 lr_policy: "fixed"\n')
    cfg = load_config(adam.config)
    assert cfg.solver.name == "adam" and cfg.solver.kwargs["betas"] == pytest.approx([0.9, 0.99])
    with pytest.raises(CaffeError, match="solver type 'sgdx'"):
        load_caffe_solver('base_lr: 0.1 type: "SGDX"\n')
