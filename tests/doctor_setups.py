"""Tiny training setups for `sweep doctor --module doctor_setups:NAME`: correct ones, and others each with one bug."""

import functools

import timm
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset
from torchvision.transforms import v2

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLASSES = 4

# Each setup with a bug -> (the check that must find it, its verdict, words its message must hold).
SEEDED_BUGS = {
    "augmented_val": ("eval_deterministic", "problem", "random augmentation in the validation transform"),
    "bn_train_at_eval": ("eval_deterministic", "problem", "modules still in train mode after model.eval(): bn2"),
    "wrong_mean_std": ("normalisation", "problem", "but the pretrained weights expect mean"),
    "frozen_bn_drifting": ("frozen_stages", "problem", "BatchNorm running stats of frozen layers drift"),
    "scheduler_not_stepped": ("lr_schedule", "problem", "the scheduler is never stepped"),
    "shared_images": ("labels", "problem", "8 validation image(s) (25.0%) also in the training set"),
    "scheduler_per_batch": ("lr_schedule", "problem", "by step 3 (epoch 0.75 of 4): it is sized in epochs"),
    "cosine_epochs_per_batch": ("lr_schedule", "problem", "it is sized in epochs"),
    "exponential_per_batch": ("lr_schedule", "problem", "under 1% of its peak 0.05, by step 7 (epoch 1.8 of 4)"),
    "lr_far_too_low": ("lr_range", "problem", "the optimizer's lr 1e-07 is"),
    "val_labels_shuffled": ("learnability", "problem", "labels not aligned with images"),
    "requires_grad_attribute": ("frozen_stages", "warning", "plain attribute on conv1 (2 parameters), bn1"),
    "overlap_behind_subsets": ("labels", "problem", "32 validation image(s) (100.0%) also in the training set"),
    "head_replaced_after_optimizer": ("training_step", "problem", "the optimizer does not hold the output layer fc"),
    "softmax_in_model": ("training_step", "problem", "log-softmax loss calls (cross_entropy) got probabilities"),
    "softmax_in_loop": ("training_step", "problem", "log-softmax loss calls (cross_entropy) got probabilities"),
    "trains_in_eval_mode": ("training_step", "problem", "the model runs the training step in eval mode"),
    "grads_never_zeroed": ("training_step", "problem", "gradients are never zeroed"),
    "sorted_unshuffled": ("train_order", "problem", "the training set is served sorted by class"),
    "val_resized": ("input_size", "problem", "training inputs are 3x16x16 but validation inputs 3x32x32"),
    "val_channels_reversed": ("normalisation", "problem", "validation channels come in another order than training"),
    "digits_val_labels_shuffled": ("learnability", "problem", "while a linear probe on the raw images reaches"),
    "train_epoch_raises": ("frozen_stages", "problem",
                           "train_epoch doctor_setups.train_epoch_raises.<locals>.train_epoch raised AttributeError"),
}
# Bugs that a second check finds too, for a cause it names as well: validation images unlike training ones.
ALSO_FOUND_BY = {"val_channels_reversed": ("learnability",)}
# Setups without a bug: every check must pass them.
CORRECT_SETUPS = ("correct", "onecycle_per_batch", "correct_subset_split", "frozen_bn_kept_in_loop", "grads_accumulated",
                  "warmup_cosine_per_batch", "digits_correct")


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


def train_epoch(model, loader, optimizer, scheduler, step_scheduler="epoch", frozen_bn_in_eval=False,
                set_train=True, softmax=False, zero_every=1, accumulate=1):
    """One epoch; the scheduler stepped once an epoch, once a batch or never (``step_scheduler``); gradients summed
    over ``accumulate`` batches per step and zeroed after every ``zero_every``-th step (0: never)."""
    if set_train:
        model.train()
    if frozen_bn_in_eval:
        for module in model.modules():  # frozen BatchNorm keeps its running statistics
            if isinstance(module, nn.BatchNorm2d) and not module.weight.requires_grad:
                module.eval()
    if zero_every:
        optimizer.zero_grad()
    for batch, (batch_images, labels) in enumerate(loader, start=1):
        outputs = model(batch_images)
        if softmax:
            outputs = outputs.softmax(dim=1)
        (nn.functional.cross_entropy(outputs, labels) / accumulate).backward()
        if batch % accumulate:
            continue
        optimizer.step()
        if zero_every and (batch // accumulate) % zero_every == 0:
            optimizer.zero_grad()
        if step_scheduler == "batch":
            scheduler.step()
    if step_scheduler == "epoch":
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
        "train_epoch": functools.partial(train_epoch, step_scheduler="epoch" if step_scheduler else None),
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


# ---------------------------------------------------------------- setups built the way real projects build them


def loaders(train_set, val_set, batch_size=16):
    return (DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)),
            DataLoader(val_set, batch_size=batch_size))


def bundle(model, train_loader, val_loader, optimizer, scheduler, train_epoch, epochs=4):
    return {"model": model, "train_loader": train_loader, "val_loader": val_loader, "optimizer": optimizer,
            "scheduler": scheduler, "train_epoch": train_epoch, "data_config": {"mean": MEAN, "std": STD},
            "epochs": epochs}


def frozen_bn_kept_in_loop():
    """Correct: a timm ResNet at 32 px with stem and layer1 frozen; the loop puts their BatchNorm back in eval mode
    after model.train(), as many fine-tuning scripts do instead of overriding train()."""
    torch.manual_seed(0)
    train_pixels, train_labels = images(64, seed=1)
    val_pixels, val_labels = images(32, seed=2)
    resize = [v2.Resize(32, antialias=True)]
    train_set = ImageSet(train_pixels, train_labels, v2.Compose([*resize, v2.RandomHorizontalFlip(), v2.Normalize(MEAN, STD)]))
    val_set = ImageSet(val_pixels, val_labels, v2.Compose([*resize, v2.Normalize(MEAN, STD)]))
    model = timm.create_model("resnet18", num_classes=CLASSES)
    for module in (model.conv1, model.bn1, model.layer1):
        module.requires_grad_(False)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.02, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    return bundle(model, *loaders(train_set, val_set), optimizer, scheduler,
                  functools.partial(train_epoch, frozen_bn_in_eval=True))


def stepped_per_batch(scheduler_for):
    """The tiny setup with the scheduler ``scheduler_for(optimizer, batches_per_epoch)``, stepped in the batch loop."""
    setup = build()
    optimizer = torch.optim.SGD([p for p in setup["model"].parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    scheduler = scheduler_for(optimizer, len(setup["train_loader"]))
    return dict(setup, optimizer=optimizer, scheduler=scheduler,
                train_epoch=functools.partial(train_epoch, step_scheduler="batch"))


def scheduler_per_batch():
    """Bug: StepLR sized in epochs (one step an epoch, x0.1) stepped in the batch loop."""
    return stepped_per_batch(lambda optimizer, batches: torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.1))


def exponential_per_batch():
    """Bug: ExponentialLR (no period to read) sized in epochs, stepped in the batch loop."""
    return stepped_per_batch(lambda optimizer, batches: torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.5))


def cosine_epochs_per_batch():
    """Bug: a LambdaLR warm-up + cosine written in epochs (warm-up 1, cosine to epoch 4), stepped per batch."""
    import math

    def factor(epoch):
        return (epoch + 1) if epoch < 1 else 0.5 * (1 + math.cos(math.pi * (epoch - 1) / 3))
    return stepped_per_batch(lambda optimizer, batches: torch.optim.lr_scheduler.LambdaLR(optimizer, factor))


def onecycle_per_batch():
    """Correct: OneCycleLR sized in batches (epochs x batches per epoch) and stepped per batch."""
    return stepped_per_batch(lambda optimizer, batches: torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.05, total_steps=4 * batches))


def onecycle_high_lr(max_lr=1.0):
    """Correct: OneCycleLR at a max_lr far above the LR range test's suggestion, which its warm-up trains at."""
    return stepped_per_batch(lambda optimizer, batches: torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=4 * batches))


def resnet_onecycle(max_lr=0.3):
    """Correct: a timm ResNet-18 at 32 px with OneCycleLR (max_lr 0.3) stepped per batch, about 30x above what the LR
    range test suggests, and training: the loss falls at that lr."""
    setup = frozen_bn_kept_in_loop()
    model = timm.create_model("resnet18", num_classes=CLASSES)
    optimizer = torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=4 * len(setup["train_loader"]))
    return dict(setup, model=model, optimizer=optimizer, scheduler=scheduler,
                train_epoch=functools.partial(train_epoch, step_scheduler="batch"))


def lr_far_too_low():
    """Bug: SGD at lr 1e-7, where nothing trains."""
    setup = build()
    optimizer = torch.optim.SGD([p for p in setup["model"].parameters() if p.requires_grad], lr=1e-7, momentum=0.9)
    return dict(setup, optimizer=optimizer, scheduler=torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5))


def val_labels_shuffled():
    """Bug: validation labels permuted apart from their images; the class balance is unchanged."""
    setup = build()
    dataset = setup["val_loader"].dataset
    order = torch.randperm(len(dataset.targets), generator=torch.Generator().manual_seed(3)).tolist()
    dataset.targets = [dataset.targets[index] for index in order]
    return setup


def requires_grad_attribute():
    """Bug: the stem is "frozen" with a plain attribute (no underscore), so the optimizer still trains it."""
    setup = build()
    model = setup["model"]
    model.conv1.requires_grad_(True)
    model.bn1.requires_grad_(True)
    model.conv1.requires_grad = False
    model.bn1.requires_grad = False
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    return dict(setup, optimizer=optimizer, scheduler=torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5))


def split_by_subsets(val_indices):
    """One pool of 96 images: train is two Subsets (ConcatDataset) with random crops, val a Subset at
    ``val_indices`` with the eval transform."""
    setup = build()
    pixels, labels = images(96, seed=1)
    train_transform = v2.Compose([v2.RandomResizedCrop(16, scale=(0.6, 1.0), antialias=True), v2.Normalize(MEAN, STD)])
    augmented, plain = ImageSet(pixels, labels, train_transform), ImageSet(pixels, labels, v2.Normalize(MEAN, STD))
    train_set = ConcatDataset([Subset(augmented, range(0, 32)), Subset(augmented, range(32, 64))])
    train_loader, val_loader = loaders(train_set, Subset(plain, val_indices))
    return dict(setup, train_loader=train_loader, val_loader=val_loader)


def overlap_behind_subsets():
    """Bug: every validation image is also a training image, hidden behind Subset/ConcatDataset and random crops."""
    return split_by_subsets(range(16, 48))


def correct_subset_split():
    """Correct: the same wrappers and crops over disjoint images."""
    return split_by_subsets(range(64, 96))


def train_epoch_raises():
    """Bug: the epoch loop reads an attribute its loader does not have."""
    setup = build()

    def train_epoch(model, loader, optimizer, scheduler):
        for batch_images, labels in loader:
            loader.num_batches += 1

    return dict(setup, train_epoch=train_epoch)


# ---------------------------------------------------------------- mistakes in the training step and the data order


def looped(**options):
    """The tiny setup through its own loop with ``options`` of train_epoch."""
    return dict(build(), train_epoch=functools.partial(train_epoch, **options))


def head_replaced_after_optimizer():
    """Bug: a new head is put on after the optimizer was built, so the optimizer steps the old one."""
    setup = build()
    setup["model"].fc = nn.Linear(16, CLASSES)
    return setup


def softmax_in_model():
    """Bug: the model ends in a softmax and the loop applies cross_entropy to its output."""
    setup = build()
    model = nn.Sequential(setup["model"], nn.Softmax(dim=1))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    return dict(setup, model=model, optimizer=optimizer,
                scheduler=torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5))


def softmax_in_loop():
    """Bug: the loop applies a softmax before cross_entropy."""
    return looped(softmax=True)


def trains_in_eval_mode():
    """Bug: model.eval() in build, and the loop never calls model.train()."""
    setup = looped(set_train=False)
    setup["model"].eval()
    return setup


def grads_never_zeroed():
    """Bug: the loop never zeroes the gradients."""
    return looped(zero_every=0)


def grads_accumulated():
    """Correct: gradients summed over 4 batches per step, zeroed after each step."""
    return looped(accumulate=4)


def sorted_unshuffled():
    """Bug: the training set is sorted by class and served in order."""
    setup = build()
    dataset = setup["train_loader"].dataset
    order = sorted(range(len(dataset.targets)), key=dataset.targets.__getitem__)
    dataset.pixels, dataset.targets = dataset.pixels[order], [dataset.targets[index] for index in order]
    return dict(setup, train_loader=DataLoader(dataset, batch_size=16, shuffle=False))


def val_resized():
    """Bug: validation resized to 32 px while training runs at 16 px."""
    setup = build()
    setup["val_loader"].dataset.transform = v2.Compose([v2.Resize(32, antialias=True), v2.Normalize(MEAN, STD)])
    return setup


def val_channels_reversed():
    """Bug: validation images reach the model as BGR; the same mean/std as training."""
    setup = build()
    setup["val_loader"].dataset.transform = v2.Compose([lambda image: image.flip(0), v2.Normalize(MEAN, STD)])
    return setup


def warmup_cosine_per_batch():
    """Correct: a LambdaLR warm-up + cosine written in batches (the usual helper's shape), stepped per batch."""
    import math

    def schedule(optimizer, batches):
        total, warmup = 4 * batches, batches

        def factor(step):
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return stepped_per_batch(schedule)


# ---------------------------------------------------------------- scikit-learn's digits on a random-init ResNet-18


def digits(shuffle_val_labels=False):
    """Digits (8x8, grey) at 32 px through a timm ResNet-18 without pretrained weights, as an offline user runs it;
    ``shuffle_val_labels`` permutes the validation labels apart from their images."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    data = load_digits()
    pixels = torch.tensor(data.images, dtype=torch.float32)[:, None].repeat(1, 3, 1, 1) / 16
    labels = [int(label) for label in data.target]
    transform = v2.Compose([v2.Resize(32, antialias=True), v2.Normalize(MEAN, STD)])
    train_set, val_set = ImageSet(pixels[:1200] * 255, labels[:1200], transform), ImageSet(
        pixels[1200:] * 255, labels[1200:], transform)
    if shuffle_val_labels:
        order = torch.randperm(len(val_set.targets), generator=torch.Generator().manual_seed(3)).tolist()
        val_set.targets = [val_set.targets[index] for index in order]
    model = timm.create_model("resnet18", num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    return bundle(model, *loaders(train_set, val_set, batch_size=32), optimizer, scheduler, train_epoch)


def digits_correct():
    return digits()


def digits_val_labels_shuffled():
    return digits(shuffle_val_labels=True)


def as_tuple():
    setup = build()
    return setup["model"], setup["train_loader"], setup["val_loader"]


def not_a_bundle():
    return 42


def raises():
    raise RuntimeError("no data here")
