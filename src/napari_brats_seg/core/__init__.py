"""The napari-free, Qt-free core: I/O, label conventions, preprocessing, models, inference, metrics."""
