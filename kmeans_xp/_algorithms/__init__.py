"""The algorithms: the fit driver and its data preparation, the one iteration driver with its
steps (Lloyd, Hamerly, Dask map-reduce, streamed), initialisation, empty-cluster repair. They
assume checked parameters and validated data."""
