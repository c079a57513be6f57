"""Race-free file operations below a directory descriptor: the parts `shared.paths.PathJail` is built from.

Nothing here resolves a path string: every step opens one name relative to a descriptor already
held, without following links (`steps`), and every failure becomes a client-safe error (`errors`).
On top of those: whole-file reads, lstat and atomic writes (`files`) and a bounded recursive walk
(`walk`). Which caller paths are allowed, and below which root, is `shared.paths`' concern.
"""
