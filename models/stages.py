"""The stages of a timm ResNet that can be frozen, and how many there are; importable without torch."""

# Stage 1 is the stem together with layer1: the stem alone is too small to be worth a knob.
STAGE_MODULE_NAMES = (("conv1", "bn1", "layer1"), ("layer2",), ("layer3",), ("layer4",))

# The most stages ``frozen_stages`` may freeze: all of them, leaving only the head to train.
RESNET_STAGES = len(STAGE_MODULE_NAMES)
