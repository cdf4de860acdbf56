"""The bottom layer: the one door to array-api-compat, devices, input validation, memory
budgets, memory maps and pass options. Imports nothing else from kmeans_xp but its exceptions."""
