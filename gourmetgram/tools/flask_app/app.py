"""The original GourmetGram, as a Flask app, for the benchmark only
(scripts/bench-gourmetgram.sh): same routes, same model, same preprocessing
as the lab's Python service, written here from its description. The Rust
service in gourmetgram/ is what berth builds and runs.

usage: FOOD11_MODEL=food11.pth python app.py [PORT]
"""
import io
import os
import sys

import torch
import torchvision
from flask import Flask, request
from PIL import Image
from torchvision import transforms

CLASSES = ["Bread", "Dairy product", "Dessert", "Egg", "Fried food", "Meat",
           "Noodles/Pasta", "Rice", "Seafood", "Soup", "Vegetable/Fruit"]

app = Flask(__name__)

model = torchvision.models.mobilenet_v2(weights=None)
model.classifier = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(model.last_channel, 11))
model.load_state_dict(torch.load(os.environ.get("FOOD11_MODEL", "food11.pth"), map_location="cpu"))
model.eval()

preprocess = transforms.Compose([
    transforms.Resize(256),
    transforms.CenterCrop(224),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])


def model_predict(img):
    x = preprocess(img.convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        return CLASSES[int(model(x).argmax(1))]


@app.route("/", methods=["GET"])
def index():
    return "<form method=post action=/predict enctype=multipart/form-data>" \
           "<input type=file name=file><button>Submit</button></form>"


@app.route("/predict", methods=["POST"])
def upload():
    f = request.files["file"]
    img = Image.open(io.BytesIO(f.read()))
    return f'<button type="button" class="btn btn-info btn-sm">{model_predict(img)}</button>'


@app.route("/test", methods=["GET"])
def test():
    img = Image.open(os.environ.get("FOOD11_TEST_IMAGE", "test_image.jpeg"))
    return model_predict(img)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
