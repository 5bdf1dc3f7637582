"""pytest plugin of tttv2.testing (fixtures, markers)."""
