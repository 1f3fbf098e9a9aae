"""Model resolution (name -> files on disk) and the model manager (load, TTL, unload)."""
