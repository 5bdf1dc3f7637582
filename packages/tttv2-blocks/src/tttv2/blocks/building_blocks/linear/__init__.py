"""Running ``nn.Linear`` layers through tttv2-hw's ``linear`` kernel."""

from tttv2.blocks.building_blocks.linear.kernel_linear import KernelLinear

__all__ = ["KernelLinear"]
