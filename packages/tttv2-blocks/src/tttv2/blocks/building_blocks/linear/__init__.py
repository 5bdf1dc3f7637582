"""Running ``nn.Linear`` layers through tttv2-hw's ``linear`` kernel, and their int8 form."""

from tttv2.blocks.building_blocks.linear.int8_linear import Int8Linear
from tttv2.blocks.building_blocks.linear.kernel_linear import KernelLinear

__all__ = ["Int8Linear", "KernelLinear"]
