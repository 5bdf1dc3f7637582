"""Building blocks: one concept per subpackage."""

from tttv2.core.moved_modules import alias_moved_modules

# the rotary rows of a pass live with RoPE now
alias_moved_modules(
    {"tttv2.blocks.building_blocks.attention.rope_rows": "tttv2.blocks.building_blocks.rope.rows"}
)
