"""Classify images with the model in this folder: python predict.py IMAGE [IMAGE ...]

Needs keras (with TensorFlow), Pillow and numpy; not tltools. Each image is
read as RGB (EXIF orientation applied, transparency on white), resized whole
to the model's input size with the Pillow filter named in preprocessing.json
(the one used in training), and given to the model as pixels 0..255 (the
model normalises them itself). Prints the top-5 classes.
"""

import json
import sys
from pathlib import Path

import keras
import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
TOP_K = 5


def load_pixels(path: str, size: int, resample: Image.Resampling) -> np.ndarray:
    """Return the image at ``path`` as float32 RGB 0..255 of shape (size, size, 3)."""
    image = ImageOps.exif_transpose(Image.open(path))
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), resample)
    return np.asarray(image, dtype=np.float32)


def main(paths: list[str]) -> int:
    """Print the top classes of each image; return the exit status."""
    if not paths:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    settings = json.loads((HERE / "preprocessing.json").read_text(encoding="utf-8"))
    size, resample = settings["input_size"], Image.Resampling[settings["pillow_resample"]]
    labels = (HERE / "labels.txt").read_text(encoding="utf-8").splitlines()
    model = keras.saving.load_model(HERE / "model.keras")
    for path in paths:
        probs = model.predict(load_pixels(path, size, resample)[None], verbose=0)[0]
        print(path)
        for index in np.argsort(-probs, kind="stable")[:TOP_K]:
            print(f"  {probs[index]:7.2%}  {labels[index]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
