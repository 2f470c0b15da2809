"""The catalog: products and their variants (SKUs), searchable by code, name and barcode."""
