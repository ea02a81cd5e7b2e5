"""One module per data set; each stage function reads params and writes declared outputs."""
