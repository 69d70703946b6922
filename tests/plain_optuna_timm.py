"""A user's own Optuna + timm training script, with nothing of plateau-sweep in it: a test fixture.

Usage: python plain_optuna_timm.py STORAGE STUDY N_TRIALS. Tiny images whose class is their brightness; the
user's current settings (a very small lr) are enqueued first.
"""

import sys

import optuna
import timm
import torch
import torch.nn.functional as F


def images(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.randint(0, 2, (n,), generator=generator)
    pixels = torch.randn(n, 3, 32, 32, generator=generator) + (labels.float() - 0.5).view(-1, 1, 1, 1)
    return pixels, labels


def objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-6, 1e-1, log=True)
    drop_rate = trial.suggest_float("drop_rate", 0.0, 0.5)
    torch.manual_seed(trial.number)
    generator = torch.Generator().manual_seed(0)
    train_x, train_y = images(64, generator)
    val_x, val_y = images(32, generator)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=2, drop_rate=drop_rate)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    train_losses = []
    for epoch in range(1, 8):
        model.train()
        for start in range(0, 64, 32):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(train_x[start:start + 32]), train_y[start:start + 32])
            loss.backward()
            optimizer.step()
        train_losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            val_loss = F.cross_entropy(model(val_x), val_y).item()
        trial.set_user_attr("train_loss", train_losses)
        trial.report(val_loss, epoch)
    return val_loss


if __name__ == "__main__":
    torch.set_num_threads(1)
    storage, name, n_trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
    study = optuna.create_study(study_name=name, storage=storage, sampler=optuna.samplers.TPESampler(seed=0))
    study.enqueue_trial({"lr": 1e-6, "drop_rate": 0.2})
    study.optimize(objective, n_trials=n_trials)
