"""Tiny training setups for `sweep doctor --module doctor_setups:NAME`: one correct, the others each with one bug."""

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLASSES = 4


def images(count: int, seed: int) -> tuple[torch.Tensor, list[int]]:
    """16x16 images whose colour says the class, with noise: learnable in a few steps."""
    generator = torch.Generator().manual_seed(seed)
    labels = [index % CLASSES for index in range(count)]
    palette = torch.tensor([[0.9, 0.2, 0.2], [0.2, 0.9, 0.2], [0.2, 0.2, 0.9], [0.8, 0.8, 0.2]])
    pixels = palette[labels][:, :, None, None] + 0.15 * torch.randn(count, 3, 16, 16, generator=generator)
    return (pixels.clamp(0, 1) * 255).to(torch.uint8), labels


class ImageSet(Dataset):
    def __init__(self, pixels, targets, transform):
        self.pixels, self.targets, self.transform = pixels, targets, transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self.transform(self.pixels[index].float() / 255), self.targets[index]


class TinyNet(nn.Module):
    def __init__(self, keep_frozen_bn_in_eval=True, bn_trains_at_eval=False):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.drop, self.fc = nn.Dropout(0.2), nn.Linear(16, CLASSES)
        self.keep_frozen_bn_in_eval, self.bn_trains_at_eval = keep_frozen_bn_in_eval, bn_trains_at_eval

    def train(self, mode=True):
        super().train(mode)
        if self.keep_frozen_bn_in_eval:
            self.bn1.eval()  # the frozen stem keeps its running stats
        if self.bn_trains_at_eval:
            self.bn2.training = True  # the bug: BatchNorm never leaves train mode
        return self

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(self.drop(x.mean((2, 3))))


def train_epoch(model, loader, optimizer, scheduler, step_scheduler=True):
    model.train()
    for batch_images, labels in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(batch_images), labels).backward()
        optimizer.step()
    if step_scheduler:
        scheduler.step()


def build(*, val_normalize=(MEAN, STD), augment_val=False, bn_trains_at_eval=False, frozen_bn_drifts=False,
          step_scheduler=True, share_images=False):
    torch.manual_seed(0)
    train_pixels, train_labels = images(64, seed=1)
    val_pixels, val_labels = images(32, seed=2)
    if share_images:
        val_pixels[:8] = train_pixels[:8]
        val_labels[:8] = train_labels[:8]
    train_transform = v2.Compose([v2.RandomHorizontalFlip(), v2.Normalize(MEAN, STD)])
    val_steps = [v2.RandomHorizontalFlip(), v2.ColorJitter(brightness=0.5)] if augment_val else []
    val_transform = v2.Compose([*val_steps, v2.Normalize(*val_normalize)])
    model = TinyNet(keep_frozen_bn_in_eval=not frozen_bn_drifts, bn_trains_at_eval=bn_trains_at_eval)
    model.conv1.requires_grad_(False)
    model.bn1.requires_grad_(False)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return {
        "model": model,
        "train_loader": DataLoader(ImageSet(train_pixels, train_labels, train_transform), batch_size=16, shuffle=True),
        "val_loader": DataLoader(ImageSet(val_pixels, val_labels, val_transform), batch_size=16),
        "optimizer": optimizer,
        "scheduler": scheduler,
        "train_epoch": lambda *args: train_epoch(*args, step_scheduler=step_scheduler),
        "data_config": {"mean": MEAN, "std": STD},
        "epochs": 4,
    }


def correct():
    return build()


def augmented_val():
    return build(augment_val=True)


def bn_train_at_eval():
    return build(bn_trains_at_eval=True)


def wrong_mean_std():
    return build(val_normalize=((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))


def frozen_bn_drifting():
    return build(frozen_bn_drifts=True)


def scheduler_not_stepped():
    return build(step_scheduler=False)


def shared_images():
    return build(share_images=True)


def as_tuple():
    bundle = build()
    return bundle["model"], bundle["train_loader"], bundle["val_loader"]


def not_a_bundle():
    return 42


def raises():
    raise RuntimeError("no data here")
