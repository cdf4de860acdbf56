"""What is built on the estimators: model files (load), metrics, the elbow method, plots, the
command line, data files and the demo."""
