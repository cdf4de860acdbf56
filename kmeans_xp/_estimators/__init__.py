"""The estimators and their function forms: one parameter validator, the fitted-model
interface (predict, transform, score, save), KMeans, MiniBatchKMeans, kmeans, kmeans_plusplus."""
