"""The torchvision guard: open_clip and clean-fid import and run on the CPU torch."""

import subprocess
import sys

import numpy as np
import torch


def test_guard_is_a_no_op_when_torchvision_imports():
    code = ("import eraselab._compat as c, torchvision; "
            "print(c.TORCHVISION_CPU_FALLBACK, c.ensure_torchvision())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "False"  # a second call finds torchvision working and does nothing


def test_nms_fallback_matches_greedy_nms():
    from eraselab._compat import _nms_cpu

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 9, 9.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert _nms_cpu(boxes, scores, 0.5).tolist() == [3, 2]
    assert torch.ops.torchvision.nms(boxes, scores, 0.5).tolist() == [3, 2]


def test_open_clip_builds_and_encodes():
    import eraselab._compat  # noqa: F401
    import open_clip

    model = open_clip.create_model("ViT-B-32")
    tokens = open_clip.get_tokenizer("ViT-B-32")(["a red star"])
    with torch.no_grad():
        text = model.encode_text(tokens)
        image = model.encode_image(torch.zeros(1, 3, 224, 224))
    assert text.shape == image.shape == (1, 512)


def test_clean_fid_runs_with_a_custom_feature_extractor(tmp_path):
    import eraselab._compat  # noqa: F401
    from cleanfid import fid
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, shift in (("a", 0), ("b", 60)):
        (tmp_path / name).mkdir()
        for i in range(24):
            pixels = np.clip(rng.normal(100 + shift, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    projection = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    features = lambda x: x.mean((2, 3)) @ projection  # noqa: E731  N x 3 x H x W in [0, 255] -> N x 8
    same = fid.compute_fid(str(tmp_path / "a"), str(tmp_path / "a"), mode="clean", custom_feat_extractor=features,
                           device=torch.device("cpu"), num_workers=0, batch_size=8, verbose=False)
    apart = fid.compute_fid(str(tmp_path / "a"), str(tmp_path / "b"), mode="clean", custom_feat_extractor=features,
                            device=torch.device("cpu"), num_workers=0, batch_size=8, verbose=False)
    assert abs(same) < 1e-3 and apart > 100 * max(abs(same), 1e-3)
