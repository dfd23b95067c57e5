"""Everything that imports napari, Qt, magicgui or superqt: the plugin's reader, writer, sample data,
background worker, autosave and dock widgets. The core never imports this package."""
