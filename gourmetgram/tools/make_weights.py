#!/usr/bin/env python3
"""Fixed-seed test weights and PyTorch golden logits for GourmetGram.

No trained Food-11 weights can be fetched here, so the tests use a
torchvision-layout MobileNetV2 (classifier: Dropout(0.5) + Linear(1280, 11))
whose weights come from a fixed seed. Random BatchNorm statistics would make
every image land in the same class, so the running statistics are first
filled by passing varied inputs through the network in training mode.

The state_dict is written exactly as the original app's food11.pth is: a
torch.save zip holding a pickled dict of tensors.

Then, for every image in the test set (the bundled test image plus JPEGs and
PNGs of other sizes and modes, made here from it with a fixed seed), it
writes the logits PyTorch computes with the original app's preprocessing
(PIL decode, .convert("RGB"), Resize(256), CenterCrop(224), ToTensor,
Normalize). The Rust service's parity test must match them within 1e-4.

usage: make_weights.py OUT_DIR TEST_IMAGE
"""
import hashlib
import json
import os
import sys

import torch
import torchvision
from PIL import Image
from torchvision import transforms

CLASSES = ["Bread", "Dairy product", "Dessert", "Egg", "Fried food", "Meat",
           "Noodles/Pasta", "Rice", "Seafood", "Soup", "Vegetable/Fruit"]
SEED = 20261128


def food11_model():
    model = torchvision.models.mobilenet_v2(weights=None)
    model.classifier = torch.nn.Sequential(torch.nn.Dropout(0.5),
                                           torch.nn.Linear(model.last_channel, len(CLASSES)))
    return model


def make_weights(path):
    torch.manual_seed(SEED)
    model = food11_model()
    # Fill the BatchNorm running statistics with varied inputs (training mode,
    # no gradient step): smooth random images at several scales and offsets.
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: the statistics of all batches
    with torch.no_grad():
        for i in range(12):
            low = torch.rand(8, 3, 7 + i, 7 + i)
            x = torch.nn.functional.interpolate(low, size=(224, 224), mode="bilinear",
                                                align_corners=False)
            x = (x - 0.45) / 0.25 + 0.3 * torch.randn(8, 3, 224, 224)
            model(x)
    model.eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1  # back to the default, as a trained model has it
    torch.save(model.state_dict(), path)
    return model


PREPROCESS = transforms.Compose([
    transforms.Resize(256),
    transforms.CenterCrop(224),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])


def test_images(out_dir, test_image):
    """The bundled image and variants of other sizes, shapes and modes."""
    base = Image.open(test_image)
    base.load()
    made = []
    # the bundled image, as it is
    dest = os.path.join(out_dir, "test_image.jpeg")
    with open(test_image, "rb") as src, open(dest, "wb") as dst:
        dst.write(src.read())
    made.append(("test_image.jpeg", dest))
    # Pillow resizes in two passes whose order depends on the shapes (the
    # vertical one first when the height shrinks much more than the width):
    # the variants exercise both orders, upscaling, and other modes.
    variants = [
        ("wide_700x233.jpeg", lambda im: im.resize((700, 233), Image.BICUBIC), "JPEG"),
        ("tall_257x601.jpeg", lambda im: im.resize((257, 601), Image.BICUBIC), "JPEG"),
        ("small_120x90.png", lambda im: im.resize((120, 90), Image.LANCZOS), "PNG"),
        ("gray_333x333.jpeg", lambda im: im.convert("L").resize((333, 333)), "JPEG"),
        ("rgba_300x260.png", lambda im: im.convert("RGBA").resize((300, 260)), "PNG"),
        ("tall_300x1400.jpeg", lambda im: im.resize((300, 1400), Image.BICUBIC), "JPEG"),
        ("large_1600x1200.jpeg", lambda im: im.resize((1600, 1200), Image.BICUBIC), "JPEG"),
        ("tiny_64x48.jpeg", lambda im: im.resize((64, 48), Image.LANCZOS), "JPEG"),
    ]
    for name, fn, fmt in variants:
        path = os.path.join(out_dir, name)
        fn(base.convert("RGB")).save(path, fmt, quality=90) if fmt == "JPEG" else \
            fn(base.convert("RGB")).save(path, fmt)
        made.append((name, path))
    return made


def main():
    out_dir, test_image = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    weights = os.path.join(out_dir, "food11.pth")
    model = make_weights(weights)
    golden = {"torch": torch.__version__, "torchvision": torchvision.__version__,
              "weights_sha256": hashlib.sha256(open(weights, "rb").read()).hexdigest(),
              "classes": CLASSES, "images": {}}
    with torch.no_grad():
        for name, path in test_images(out_dir, test_image):
            img = Image.open(path).convert("RGB")
            x = PREPROCESS(img).unsqueeze(0)
            logits = model(x)[0]
            resized = transforms.Resize(256)(img)
            golden["images"][name] = {
                "file": os.path.basename(path),
                "resized_sha256": hashlib.sha256(resized.tobytes()).hexdigest(),
                "resized_size": list(resized.size),
                "size": list(Image.open(path).size),
                "input_sum": float(x.double().sum()),
                "logits": [float(v) for v in logits],
                "top": CLASSES[int(logits.argmax())],
            }
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
    tops = {k: v["top"] for k, v in golden["images"].items()}
    print(f"[gourmetgram] weights {weights} sha256 {golden['weights_sha256'][:12]}; tops {tops}")


if __name__ == "__main__":
    main()
