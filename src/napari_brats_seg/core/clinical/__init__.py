"""Clinical studies: DICOM series discovery, series -> volume with exact geometry, sequence roles.

napari-free and torch-free. pydicom reads the headers and pixels (see the README, "Clinical studies",
for why pydicom rather than SimpleITK/GDCM or dcm2niix); the optional ``[clinical]`` extra installs it.
"""
