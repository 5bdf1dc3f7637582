"""Building blocks: one concept per subpackage."""
