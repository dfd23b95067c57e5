"""Segmentation networks (one module per family), their registry and the one checkpoint format.

Importing this package imports torch; nothing on the reader path imports it.
"""
