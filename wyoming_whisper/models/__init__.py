"""The model manager (load, TTL, unload); name -> files on disk is the backend's (``resolve``)."""
