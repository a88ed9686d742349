"""Storage: the tables (schema), the engine per dialect (engine) and the migrations."""
