"""Readable reference implementations, one file per block family.

Written independently of tttv2.blocks (never import it here) so a shared bug cannot hide.
"""
