"""What the user's training step does, watched over a few batches of their own loop: the optimizer holds the layers
that train, the model runs in train mode, the loss gets logits rather than probabilities, and each optimizer step
starts from freshly zeroed gradients (accumulating over several batches between steps is fine)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from sweep.doctor.findings import CheckResult
from sweep.doctor.probes import cycle, first_items
from sweep.doctor.setup import Setup
from sweep.doctor.training import FewBatches, Snapshot, run_epoch

WATCHED_BATCHES = 6  # enough to see a step and the backward after it with gradients accumulated over up to 5 batches
# Functions that take the log-softmax of their input: fed probabilities they squash them a second time.
LOG_SOFTMAX_LOSSES = (nn.functional.cross_entropy, nn.functional.log_softmax, torch.log_softmax,
                      torch.Tensor.log_softmax)
MODE_DEPENDENT = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
# A gradient left from before a step counts when it is this share of what that step applied.
STALE_SHARE = 0.5


@dataclass
class StepWatch:
    """What a few batches of the user's loop did."""

    training_forwards: int = 0
    eval_forwards: int = 0
    eval_modules: list[str] = field(default_factory=list)
    loss_calls: int = 0
    probability_inputs: list[str] = field(default_factory=list)
    steps: int = 0
    backwards_after_step: int = 0
    stale_backwards: int = 0
    empty_steps: int = 0


def _is_probabilities(tensor, dim: int) -> bool:
    """Non-negative and summing to 1 along the class dimension: softmax output, not logits."""
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point() or tensor.dim() < 2:
        return False
    values = tensor.detach().float()
    return bool(values.min() >= -1e-6) and bool(((values.sum(dim) - 1).abs() < 1e-2).all())  # 1e-2: bf16 autocast


class _LossInputs(TorchFunctionMode):
    """Sees every log-softmax loss the loop calls (functional or nn.CrossEntropyLoss) and what it is given."""

    def __init__(self, watch: StepWatch):
        super().__init__()
        self.watch = watch

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in LOG_SOFTMAX_LOSSES and args:
            self.watch.loss_calls += 1
            dim = 1 if func is nn.functional.cross_entropy else kwargs.get("dim", args[1] if len(args) > 1 else -1)
            if _is_probabilities(args[0], dim if isinstance(dim, int) else -1):
                self.watch.probability_inputs.append(getattr(func, "__name__", str(func)))
        return func(*args, **kwargs)


def _output_layer(setup: Setup) -> tuple[str, nn.Module] | None:
    """The last module with parameters that runs in a forward pass: the head that makes the outputs."""
    order: list[nn.Module] = []
    names = {module: name for name, module in setup.model.named_modules()}
    handles = [module.register_forward_hook(lambda m, i, o: order.append(m))
               for module in setup.model.modules() if list(module.parameters(recurse=False))]
    images, _ = first_items(setup.val_loader, 2)
    try:
        with Snapshot(setup), torch.no_grad():
            setup.model.eval()
            setup.model(images.to(setup.device))
    finally:
        for handle in handles:
            handle.remove()
    return (names[order[-1]] or "model", order[-1]) if order else None


def _optimizer_findings(setup: Setup, evidence: dict) -> list[tuple[str, str]]:
    """The output layer trains only if the optimizer holds it; tensors it holds outside the model are a layer
    replaced after the optimizer was built."""
    held = {id(p) for group in setup.optimizer.param_groups for p in group["params"]}
    in_model = {id(p) for p in setup.model.parameters()}
    outside = sum(1 for group in setup.optimizer.param_groups for p in group["params"] if id(p) not in in_model)
    trainable_not_held = [name for name, p in setup.model.named_parameters() if p.requires_grad and id(p) not in held]
    output = _output_layer(setup)
    evidence.update({"optimizer_tensors_outside_model": outside, "trainable_not_in_optimizer": trainable_not_held[:10],
                     "output_layer": output[0] if output else None})
    head_not_held = output is not None and any(
        p.requires_grad and id(p) not in held for p in output[1].parameters(recurse=False))
    if not head_not_held and not (outside and trainable_not_held):
        return []
    what = (f"the optimizer does not hold the output layer {output[0]}, so it never trains" if head_not_held else
            f"the optimizer does not hold {len(trainable_not_held)} trainable parameters "
            f"({', '.join(trainable_not_held[:3])})")
    if outside:
        what += f", and it holds {outside} tensors that are not in the model (a layer replaced after it was built)"
    return [(what, "build the optimizer after the model is final, new head included")]


def _watch(setup: Setup, optimizer, batches: int) -> StepWatch:
    watch = StepWatch()
    model = setup.model
    trainable = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    incoming: dict[int, torch.Tensor] = {}
    applied: dict[int, float] = {}  # gradient norm each parameter had at the last step, until its next backward

    def before_forward(module, inputs):
        if not torch.is_grad_enabled():
            return  # validation inside the loop
        if module.training:
            watch.training_forwards += 1
            return
        watch.eval_forwards += 1
        for name, sub in module.named_modules():
            trains = any(p.requires_grad for p in sub.parameters(recurse=False)) or getattr(sub, "p", 0) > 0
            if isinstance(sub, MODE_DEPENDENT) and not sub.training and trains and name not in watch.eval_modules:
                watch.eval_modules.append(name)

    def before_step(opt, args, kwargs):
        watch.steps += 1
        norms = {id(p): float(p.grad.norm()) for p in trainable if p.grad is not None}
        watch.empty_steps += not any(norms.values())
        applied.clear()
        applied.update(norms)

    def arrived(parameter):
        def hook(grad):
            incoming[id(parameter)] = grad.detach().clone()
        return hook

    def accumulated(parameter):
        key = id(parameter)
        if key in applied and key in incoming and parameter.grad is not None:
            watch.backwards_after_step += 1
            left = float((parameter.grad - incoming[key]).norm())
            watch.stale_backwards += bool(applied[key]) and left > STALE_SHARE * applied[key]
            del applied[key]

    handles = [model.register_forward_pre_hook(before_forward), optimizer.register_step_pre_hook(before_step)]
    for parameter in trainable:
        handles += [parameter.register_hook(arrived(parameter)),
                    parameter.register_post_accumulate_grad_hook(accumulated)]
    try:
        with Snapshot(setup), _LossInputs(watch):
            run_epoch(setup, FewBatches(setup.train_loader, cycle(setup.train_loader, batches), batches), optimizer)
    finally:
        for handle in handles:
            handle.remove()
    return watch


def check_training_step(setup: Setup, batches: int = WATCHED_BATCHES) -> CheckResult:
    """The optimizer holds the output layer, the step runs in train mode on logits, and gradients are zeroed."""
    optimizer = setup.optimizer
    if optimizer is None:
        return CheckResult("training_step", "ok", "no optimizer given: nothing to watch", {"optimizer": None})
    evidence: dict = {}
    problems = _optimizer_findings(setup, evidence)
    watch = _watch(setup, optimizer, batches)
    evidence.update({"batches": batches, **vars(watch), "eval_modules": watch.eval_modules[:10]})
    if watch.eval_forwards and not watch.training_forwards and watch.eval_modules:
        problems.append((f"the model runs the training step in eval mode ({len(watch.eval_modules)} BatchNorm/Dropout "
                         f"modules that should train are in eval, e.g. {', '.join(watch.eval_modules[:2])})",
                         "call model.train() at the start of each training epoch (and model.eval() only to validate)"))
    if watch.probability_inputs:
        problems.append((f"{len(watch.probability_inputs)} of {watch.loss_calls} log-softmax loss calls "
                         f"({watch.probability_inputs[0]}) got probabilities: a softmax already applied, so the loss "
                         "squashes them twice and its gradient all but vanishes",
                         "give cross_entropy the raw logits: drop the softmax from the model's end or the loop"))
    if watch.stale_backwards:
        problems.append((f"gradients are never zeroed: the backward after an optimizer step added to the gradient "
                         f"that step had applied ({watch.stale_backwards} of {watch.backwards_after_step} parameter "
                         f"gradients over {watch.steps} steps)",
                         "call optimizer.zero_grad() after each optimizer.step() (accumulating over k batches: "
                         "zero after every k-th step)"))
    elif watch.steps and watch.empty_steps == watch.steps:
        problems.append((f"all {watch.steps} optimizer steps saw no gradient",
                         "call optimizer.zero_grad() before loss.backward(), not between backward and step"))
    if problems:
        return CheckResult("training_step", "problem", "; ".join(text for text, _ in problems), evidence,
                           "; ".join(fix for _, fix in problems))
    return CheckResult(
        "training_step", "ok",
        f"over {batches} batches of the loop: {watch.steps} optimizer steps holding the output layer, train mode, "
        f"logits into the loss, gradients zeroed after each step", evidence,
    )
