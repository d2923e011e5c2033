"""Models: the catalog, the store that downloads them, and the manager that loads them."""
