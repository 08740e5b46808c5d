"""A small Fashion-MNIST CNN: the evaluator's judge (class accuracy and Frechet features)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn


class FashionClassifier(nn.Module):
    """Input (N, 1, 32, 32) in [-1, 1]; ``features`` gives the 128-d penultimate layer."""

    feature_dim = 128

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),  # (N, 64 * 8 * 8)
            nn.Dropout(0.3),
            nn.Linear(64 * 8 * 8, self.feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, folder / "model.safetensors")
        (folder / "config.json").write_text(json.dumps({"num_classes": self.num_classes}, indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> FashionClassifier:
        folder = Path(folder)
        if not (folder / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"No classifier in {folder} (expected model.safetensors and config.json); "
                "train one with `python -m dit_demo.train classifier`."
            )
        config = json.loads((folder / "config.json").read_text())
        model = cls(**config)
        model.load_state_dict(load_file(folder / "model.safetensors"))
        return model.eval()
