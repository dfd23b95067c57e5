"""The plugin's dock widgets, one per module: load, segment, correct, score, save, 3D view, views
(display), legend; ``dock`` gathers them in one workflow dock."""
